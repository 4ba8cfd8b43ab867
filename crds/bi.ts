// BI tools as sources (issue 16): the Source settings of type metabase and looker, and the Model blocks
// that name a saved question (Metabase) or a Look or query (Looker).
import { z } from 'zod';
import { localObjectReference, secret } from './common.ts';
import { withRules } from './rules.ts';

/** The Source types a BI question's SQL can run on (as: sql). */
export const BI_WAREHOUSE_TYPES = ['postgres', 'mysql', 'snowflake', 'bigquery'] as const;

const httpsUrl = (what: string) =>
  z
    .string()
    .min(1)
    .max(2048)
    .regex(/^https?:\/\/[^\s/]+/, 'must be an http:// or https:// URL')
    .describe(what);

const timeoutSeconds = z
  .number()
  .int()
  .min(1)
  .max(86400)
  .default(300)
  .describe('How long one API request (a question run or a download of its results) may take.');

export const metabaseSourceSettings = z
  .object({
    url: httpsUrl(
      'Base URL of the Metabase instance, e.g. https://metabase.example.com (the API is under /api).',
    ),
    apiKey: secret(
      'A Metabase API key (Admin settings > Authentication > API keys), sent as the x-api-key header; ' +
        'its group needs view access to the questions and, for as: results, query access to their databases.',
    ),
    downloadRowLimit: z
      .number()
      .int()
      .min(1)
      .default(1048575)
      .describe(
        "The instance's download row limit (MB_DOWNLOAD_ROW_LIMIT, by default 1,048,575): results of exactly " +
          'this many rows were cut short by Metabase and are refused.',
      ),
    timeoutSeconds,
  })
  .describe(
    'Settings for type metabase: a Metabase instance whose saved questions Models name (spec.metabase). ' +
      'Authenticates with an API key, not a session: no person, no login rate limit, no expiring session.',
  );

export const lookerSourceSettings = z
  .object({
    baseUrl: httpsUrl(
      'Base URL of the Looker API host, e.g. https://example.cloud.looker.com (or :19999 on older instances); ' +
        'the API 4.0 is under /api/4.0.',
    ),
    clientId: secret('Client ID of a Looker API key (Admin > Users > Edit keys).'),
    clientSecret: secret('Client secret of the same API key.'),
    timeoutSeconds,
  })
  .describe(
    'Settings for type looker: a Looker instance whose Looks and queries Models name (spec.looker). ' +
      'Logs in with POST /api/4.0/login (client credentials) and logs in again when the access token expires.',
  );

const as = z
  .enum(['sql', 'results'])
  .default('sql')
  .describe(
    "sql: the question's SQL as the BI tool generates it, run on the Model's Source (spec.sourceRef, the " +
      'warehouse), so the engine reads it like any query. results: the rows through the BI tool API, ' +
      'staged as they come (spec.sourceRef then names the BI tool Source itself).',
  );

const toolRef = (tool: string) =>
  localObjectReference
    .optional()
    .describe(
      `as: sql only: the Source of type ${tool} the question is read from (spec.sourceRef is the warehouse ` +
        `its SQL runs on). With as: results, spec.sourceRef names the ${tool} Source and this is not set.`,
    );

const sourceRule = (tool: string) => ({
  cel: "self.as == 'results' ? !has(self.sourceRef) : has(self.sourceRef)",
  check: (m: { as: string; sourceRef?: unknown }) =>
    m.as === 'results' ? m.sourceRef === undefined : m.sourceRef !== undefined,
  message: `${tool}.sourceRef names the ${tool} Source with as: sql; with as: results spec.sourceRef names it and ${tool}.sourceRef is not set`,
  fieldPath: '.sourceRef',
});

export const metabaseQuestionRef = withRules(
  z
    .object({
      question: z
        .number()
        .int()
        .min(1)
        .describe('ID of the saved question (card), as in the URL /question/42-customers.'),
      as,
      sourceRef: toolRef('metabase'),
    })
    .describe(
      "A Metabase saved question. Its SQL is the native query, or for a question built in Metabase's editor " +
        'the SQL Metabase compiles it to; template tags must have defaults (they are filled in by Metabase).',
    ),
  [sourceRule('metabase')],
);

export const lookerQueryRef = withRules(
  z
    .object({
      look: z.number().int().min(1).optional().describe('ID of a saved Look (its query is read).'),
      query: z
        .string()
        .min(1)
        .max(255)
        .regex(/^[A-Za-z0-9]+$/, 'must be a query id or slug')
        .optional()
        .describe('ID (digits) or slug (as in an explore URL qid=) of a saved query.'),
      as,
      sourceRef: toolRef('looker'),
    })
    .describe("A Looker Look or query. Column names are Looker's field names (view.field)."),
  [
    {
      cel: 'has(self.look) != has(self.query)',
      check: (m) => (m.look === undefined) !== (m.query === undefined),
      message: 'set exactly one of looker.look or looker.query',
    },
    sourceRule('looker'),
  ],
);
