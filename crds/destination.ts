import { z } from 'zod';
import {
  connectionStatus,
  gcsCredentials,
  s3Credentials,
  secret,
  tlsSettings,
  valueOrSecret,
} from './common.ts';
import { celString, withRules } from './rules.ts';
import { exactlyTheSettingsOf } from './settings-rule.ts';
import { sftpConnection, sftpRules } from './source.ts';

export const DESTINATION_TYPES = ['http', 'postgres', 'files', 'hubspot', 'salesforce', 'sftp'] as const;
export type DestinationType = (typeof DESTINATION_TYPES)[number];

export const ROW_OPERATIONS = ['insert', 'update', 'upsert', 'delete', 'clear', 'archive'] as const;
export type RowOperation = (typeof ROW_OPERATIONS)[number];

const httpMethod = z.enum(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Header names that carry credentials: their values must come from a Secret, never sit in a resource kept
 * in Git. (Idempotency-Key is the engine's own header, not a credential.)
 */
const CREDENTIAL_HEADER_RE =
  '^((proxy-)?authorization|(set-)?cookie|.*(key|token|secret|password|passwd|credentials?|auth))$';
const NOT_A_CREDENTIAL_RE = '^(x-)?idempotency-key$';
const CREDENTIAL_HEADER = new RegExp(CREDENTIAL_HEADER_RE, 'i');
const NOT_A_CREDENTIAL = new RegExp(NOT_A_CREDENTIAL_RE, 'i');

export function isCredentialHeader(name: string): boolean {
  return CREDENTIAL_HEADER.test(name) && !NOT_A_CREDENTIAL.test(name);
}

const httpHeader = withRules(
  valueOrSecret.extend({
    name: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be a valid HTTP header name')
      .describe('Header name.'),
  }),
  [
    {
      cel: 'has(self.value) != has(self.valueFrom)',
      check: (h) => (h.value !== undefined) !== (h.valueFrom !== undefined),
      message: 'set exactly one of value or valueFrom.secretKeyRef for each header',
    },
    {
      cel: `!has(self.value) || !self.name.matches(${celString(`(?i)${CREDENTIAL_HEADER_RE}`)}) || self.name.matches(${celString(`(?i)${NOT_A_CREDENTIAL_RE}`)})`,
      check: (h) => h.value === undefined || !isCredentialHeader(h.name),
      message:
        'a header whose name carries a credential (Authorization, Proxy-Authorization, Cookie, *-Key, *-Token, *-Secret, ...) must not have a plain value: put the value in a Secret and use valueFrom.secretKeyRef',
      fieldPath: '.value',
    },
  ],
);

const httpRequest = z.object({
  method: httpMethod.optional().describe('HTTP method for this operation.'),
  url: z
    .string()
    .min(1)
    .max(2048)
    .optional()
    .describe(
      'URL for this operation; a Liquid template over the row, e.g. https://api.example.com/users/{{ row.id }}.',
    ),
});

export const httpDestinationSettings = z
  .object({
    url: z
      .string()
      .min(1)
      .max(2048)
      .regex(/^https?:\/\//, 'must be an http:// or https:// URL')
      .describe(
        'Request URL; a Liquid template over the row, e.g. https://api.example.com/users/{{ row.id }}.',
      ),
    method: httpMethod.default('POST').describe('HTTP method.'),
    headers: z
      .array(httpHeader)
      .max(64)
      .optional()
      .describe('Headers sent with each request; values may come from Secrets.'),
    body: z
      .enum(['row', 'batch'])
      .default('row')
      .describe(
        'row: one request per row operation; batch: one request with a JSON array of row operations.',
      ),
    batchSize: z
      .number()
      .int()
      .min(1)
      .max(10000)
      .default(100)
      .describe('Rows per request when body is batch.'),
    operations: z
      .object(
        Object.fromEntries(
          ROW_OPERATIONS.map((op) => [
            op,
            httpRequest.optional().describe(`Method and URL of ${op} requests.`),
          ]),
        ),
      )
      .optional()
      .describe(
        'Per-operation overrides of method and URL. With body row, deletes default to DELETE on url, which must then address one record.',
      ),
    idempotencyKeyHeader: z
      .string()
      .max(256)
      .default('Idempotency-Key')
      .describe(
        'Header carrying a key unique to each row operation, so that retries are safe. Empty to omit.',
      ),
    timeoutSeconds: z.number().int().min(1).max(600).default(30).describe('Timeout of one request.'),
    // Optional rather than defaulted, so specs written before it still type-check; the connector defaults it.
    treatNotFoundAsDeleted: z
      .boolean()
      .optional()
      .describe(
        'Count a delete answered 404 Not Found or 410 Gone as done: the record is already gone. Default true.',
      ),
  })
  .describe('A custom HTTP API: one JSON request per row operation, or per batch.');

export const postgresDestinationSettings = z
  .object({
    host: z.string().min(1).max(253).describe('Host name or IP address of the server.'),
    port: z.number().int().min(1).max(65535).default(5432).describe('TCP port.'),
    database: z.string().min(1).max(63).describe('Database to write to.'),
    user: z.string().min(1).max(63).describe('User to connect as.'),
    password: secret('Password of the user.').optional(),
    tls: tlsSettings.optional(),
    schema: z.string().min(1).max(63).default('public').describe('Schema of the target tables.'),
  })
  .describe(
    'A PostgreSQL table: rows are written with COPY into a temporary table and one statement per operation.',
  );

export const filesDestinationSettings = z
  .object({
    url: z
      .string()
      .min(1)
      .max(2048)
      .describe('Folder to write to: a local path or file:// URL, s3://bucket/prefix or gs://bucket/prefix.'),
    format: z.enum(['csv', 'jsonl', 'parquet']).default('jsonl').describe('File format.'),
    s3: s3Credentials.optional(),
    gcs: gcsCredentials.optional(),
  })
  .describe('Files: each run writes its row operations (or, in mode all, the whole model) as one file.');

/** The placeholders an sftp Destination's fileName may use. */
export const SFTP_FILE_NAME_FIELDS = ['runId', 'date', 'time', 'namespace', 'sync'] as const;
const SFTP_FILE_NAME_RE_SOURCE = `^([A-Za-z0-9._-]|\\{\\{ ?(${SFTP_FILE_NAME_FIELDS.join('|')}) ?\\}\\})+$`;

export const sftpDestinationSettings = withRules(
  z
    .object({
      ...sftpConnection,
      path: z
        .string()
        .min(1)
        .max(4096)
        .default('.')
        .describe(
          "Folder on the server to drop the files in, absolute or relative to the login's directory; it must exist (Syncline does not create it).",
        ),
      fileName: z
        .string()
        .min(1)
        .max(255)
        .regex(
          new RegExp(SFTP_FILE_NAME_RE_SOURCE),
          'letters, digits, . _ - and {{ runId }}, {{ date }}, {{ time }}, {{ namespace }}, {{ sync }}',
        )
        .default('{{ sync }}-{{ runId }}.csv')
        .describe(
          'Name of the file each run drops: a template with {{ runId }}, {{ date }} (YYYYMMDD) and {{ time }} (YYYYMMDDTHHMMSSZ, in UTC, ' +
            'when the run starts delivering), {{ namespace }}, {{ sync }} for one file per run, or a fixed name (customers.csv) that each run replaces. ' +
            'Uploaded as .NAME.partial and renamed to NAME once complete, so readers never see half a file.',
        ),
      format: z
        .enum(['csv', 'jsonl'])
        .default('csv')
        .describe('File format: csv (with a header line) or jsonl (one JSON object per line).'),
    })
    .describe(
      'File drops on an SFTP server: each run writes its row operations (in mode all, the whole model) as one file, ' +
        'each record with _operation and _key, then the mapped fields.',
    ),
  [
    ...sftpRules(),
    {
      cel: "!self.fileName.startsWith('.') && !self.fileName.endsWith('.partial')",
      check: (s) => !s.fileName.startsWith('.') && !s.fileName.endsWith('.partial'),
      message:
        'fileName may not start with "." nor end with ".partial": those are the names of files being uploaded',
      fieldPath: '.fileName',
    },
  ],
);

const oauthRefresh = z
  .object({
    clientId: z.string().min(1).max(512).describe('OAuth client id of the app.'),
    clientSecret: secret('OAuth client secret of the app.'),
    refreshToken: secret('A refresh token the app was granted.'),
  })
  .describe(
    'OAuth 2.0 refresh-token flow: an access token is obtained at the start of a run, and again when it expires.',
  );

export const hubspotDestinationSettings = withRules(
  z
    .object({
      baseUrl: z
        .string()
        .url()
        .max(2048)
        .default('https://api.hubapi.com')
        .describe('HubSpot API base URL (change only to reach a proxy or a test server).'),
      privateAppToken: secret(
        'Access token of a HubSpot private app (scopes: crm.objects.*.read/write, crm.schemas.*.read).',
      ).optional(),
      oauth: oauthRefresh.optional(),
    })
    .describe(
      'HubSpot CRM: contacts, companies, deals, tickets and custom objects through the CRM v3 batch API.',
    ),
  [
    {
      cel: 'has(self.privateAppToken) != has(self.oauth)',
      check: (h) => (h.privateAppToken !== undefined) !== (h.oauth !== undefined),
      message: 'set exactly one of privateAppToken or oauth',
    },
  ],
);

export const salesforceDestinationSettings = withRules(
  z
    .object({
      loginUrl: z
        .string()
        .url()
        .max(2048)
        .default('https://login.salesforce.com')
        .describe(
          'Where tokens are issued: https://login.salesforce.com, https://test.salesforce.com for sandboxes, or My Domain.',
        ),
      jwt: z
        .object({
          consumerKey: z.string().min(1).max(512).describe('Consumer key of the connected app.'),
          username: z.string().min(1).max(320).describe('The Salesforce user the app acts as.'),
          privateKey: secret('PEM private key whose certificate is uploaded to the connected app.'),
        })
        .optional()
        .describe(
          'OAuth 2.0 JWT bearer flow (a connected app with a certificate): no password, no refresh token.',
        ),
      oauth: oauthRefresh.optional(),
      bulkThreshold: z
        .number()
        .int()
        .min(1)
        .max(10_000_000)
        .default(2000)
        .describe(
          'Row operations of one kind in a run from which Bulk API 2.0 is used instead of sObject Collections.',
        ),
    })
    .describe(
      'Salesforce: any sObject, through sObject Collections for small change sets and Bulk API 2.0 for large ones.',
    ),
  [
    {
      cel: 'has(self.jwt) != has(self.oauth)',
      check: (s) => (s.jwt !== undefined) !== (s.oauth !== undefined),
      message: 'set exactly one of jwt or oauth',
    },
  ],
);

/** Requests (batches) in flight at once, unless the Destination's rateLimit says otherwise. */
export const DEFAULT_CONCURRENCY = 4;

export const rateLimit = z
  .object({
    requestsPerSecond: z
      .number()
      .min(0.01)
      .max(100000)
      .optional()
      .describe('Most requests started per second.'),
    concurrency: z
      .number()
      .int()
      .min(1)
      .max(256)
      .default(DEFAULT_CONCURRENCY)
      .describe('Most requests in flight at once.'),
    maxConcurrentRuns: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .optional()
      .describe(
        'Most runs of Syncs to this Destination at once; a due run waits (Reconciling, DestinationBusy) until one ends. ' +
          'Default 1 for destinations with a shared API quota (hubspot, salesforce), unbounded otherwise.',
      ),
  })
  .describe('Limits that protect the destination; a Sync may lower them, never raise them.');

export const destinationSpec = exactlyTheSettingsOf(
  z
    .object({
      type: z.enum(DESTINATION_TYPES).describe('Kind of tool or service the rows are sent to.'),
      http: httpDestinationSettings.optional(),
      postgres: postgresDestinationSettings.optional(),
      files: filesDestinationSettings.optional(),
      sftp: sftpDestinationSettings.optional(),
      hubspot: hubspotDestinationSettings.optional(),
      salesforce: salesforceDestinationSettings.optional(),
      rateLimit: rateLimit.optional(),
    })
    .describe('A tool or service to send rows to. Set type and the settings block of the same name.'),
  DESTINATION_TYPES,
);
export type DestinationSpec = z.infer<typeof destinationSpec>;

export const destinationStatus = connectionStatus.describe('Observed state of the Destination.');
export type DestinationStatus = z.infer<typeof destinationStatus>;
