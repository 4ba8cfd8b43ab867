import { z } from 'zod';
import { API_ERRORS, SYNC_PATH, type ApiRoute } from './api-doc.ts';
import { apiError, runView } from './api.ts';
import { condition } from './common.ts';
import { runCounts, RUN_RESULTS } from './sync.ts';

/**
 * The read endpoints of the operator's web console (`/api/v1/syncs`, one Sync, one run's debug view),
 * served beside the run API with the same authentication: the shapes of their answers.
 */

/** The most rejected rows and request-log entries one debug answer carries; `truncated` says when more exist. */
export const CONSOLE_DEBUG_LIMIT = 500;
/** The most primary keys a request-log entry of a debug answer lists (`keyCount` has them all). */
export const CONSOLE_REQUEST_KEYS_LIMIT = 20;
/** The longest primary key a debug request may search for. */
export const CONSOLE_KEY_MAX = 1024;

export const consoleReady = z
  .object({
    status: z.enum(['True', 'False', 'Unknown']),
    reason: z.string().optional(),
    message: z.string().optional(),
  })
  .describe("The Sync's Ready condition (Unknown, without a reason, before the operator has seen it).");

export const consoleLastRun = z.object({
  id: z.string(),
  result: z.enum(RUN_RESULTS).optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  counts: runCounts.optional(),
  reason: z.string().optional(),
});

export const consoleSyncItem = z
  .object({
    namespace: z.string(),
    name: z.string(),
    ready: consoleReady,
    phase: z.string().optional().describe('status.phase: Pending, Querying, Succeeded, Failed.'),
    schedule: z.string().optional().describe('The schedule in words (status.schedule).'),
    paused: z.boolean(),
    lastRun: consoleLastRun.optional(),
    nextRunAt: z.string().optional().describe('When the next scheduled run is due (RFC 3339).'),
    model: z.string().describe('The Model (spec.modelRef.name).'),
    destination: z.string().describe('The Destination (spec.destinationRef.name).'),
    mode: z.string(),
    canTrigger: z
      .boolean()
      .describe('Whether the caller may start a run (verb trigger on syncs.syncline.io in RBAC).'),
  })
  .describe('One Sync in the list of the console.');
export type ConsoleSyncItem = z.infer<typeof consoleSyncItem>;

export const consoleSyncList = z
  .object({
    items: z.array(consoleSyncItem).describe('By namespace, then name.'),
    namespaces: z
      .array(z.string())
      .describe('The namespaces with Syncs whose Syncs the caller may list (verb list in RBAC).'),
  })
  .describe('GET /api/v1/syncs: the Syncs the caller may see.');
export type ConsoleSyncList = z.infer<typeof consoleSyncList>;

export const consoleRun = runView
  .extend({
    durationMs: z.number().int().min(0).optional().describe('From startedAt to finishedAt.'),
  })
  .describe('A run in the history of one Sync.');
export type ConsoleRun = z.infer<typeof consoleRun>;

export const consoleSyncDetail = consoleSyncItem
  .extend({
    conditions: z.array(condition),
    lastSuccessfulRunAt: z.string().optional(),
    skippedRuns: z.number().int().min(0).optional(),
    runs: z.array(consoleRun).describe('Pending and active first, then finished runs newest first.'),
  })
  .describe('GET /api/v1/namespaces/{namespace}/syncs/{name}: one Sync with its conditions and history.');
export type ConsoleSyncDetail = z.infer<typeof consoleSyncDetail>;

export const consoleStage = z.object({
  stage: z.enum(['query', 'validate', 'diff', 'deliver', 'commit', 'total']),
  ms: z.number().min(0),
});
export type ConsoleStage = z.infer<typeof consoleStage>;

export const consoleRejectedRow = z.object({
  key: z.string().describe('The primary key, as text.'),
  operation: z.string(),
  reason: z.string().describe('Why the destination rejected it (redacted by the runner).'),
});

export const consoleRequest = z
  .object({
    ts: z.string().describe('When the request was made (RFC 3339).'),
    operation: z.string(),
    method: z.string().describe('The HTTP method, or the statement kind of a database destination.'),
    url: z.string().describe('The URL or table; credentials redacted by the runner.'),
    status: z.union([z.number(), z.string()]).optional().describe('HTTP status, or timeout / error.'),
    durationMs: z.number().min(0),
    keys: z.array(z.string()).describe(`The first ${CONSOLE_REQUEST_KEYS_LIMIT} primary keys it carried.`),
    keyCount: z.number().int().min(0),
    error: z.string().optional(),
  })
  .describe('One request a destination connector made. Request and response bodies are left out.');
export type ConsoleRequest = z.infer<typeof consoleRequest>;

export const consoleRunDebug = z
  .object({
    namespace: z.string(),
    sync: z.string(),
    id: z.string(),
    key: z.string().optional().describe('The primary key the rows and requests were filtered by.'),
    result: z.enum(RUN_RESULTS),
    reason: z.string().optional(),
    stage: z.string().optional().describe('The stage a failed run failed in.'),
    message: z.string(),
    startedAt: z.string(),
    finishedAt: z.string(),
    fullResync: z.boolean(),
    counts: runCounts,
    stages: z.array(consoleStage).describe('How long each stage took.'),
    rejected: z
      .array(consoleRejectedRow)
      .describe('Rejected rows the run named (it names the first 100; counts.failed has them all).'),
    requestLogKept: z
      .boolean()
      .describe('Whether the run left a request log (none when nothing was sent, or past its retention).'),
    requests: z.array(consoleRequest),
    truncated: z
      .boolean()
      .describe(`More than ${CONSOLE_DEBUG_LIMIT} rejected rows or requests matched; the first are shown.`),
  })
  .describe(
    'GET /api/v1/namespaces/{namespace}/syncs/{name}/runs/{id}/debug[?key=]: what kubectl syncline debug ' +
      'shows of one run, read from the diff store with the operator credentials.',
  );
export type ConsoleRunDebug = z.infer<typeof consoleRunDebug>;

const SYNC = SYNC_PATH;
const errors = API_ERRORS;
const notBuilt = {
  description:
    'The operator was started without a built console (ConsoleNotBuilt): run npm run build:console.',
  schema: apiError,
};

/** The console's reads and pages (docs/api/openapi.yaml, through crds/api-routes.ts). */
export const CONSOLE_ROUTES: ApiRoute[] = [
  {
    method: 'get',
    path: '/api/v1/syncs',
    summary:
      'The Syncs of every namespace where the caller may list syncs, each with its health, last run and whether the caller may trigger it.',
    verb: 'list',
    query: {
      namespace: { description: 'Only this namespace.', schema: { type: 'string' } },
    },
    responses: { 200: { description: 'The Syncs.', schema: consoleSyncList }, ...errors },
  },
  {
    method: 'get',
    path: SYNC,
    summary: 'One Sync with its conditions and its runs (counts and durations).',
    verb: 'get',
    responses: { 200: { description: 'The Sync.', schema: consoleSyncDetail }, ...errors },
  },
  {
    method: 'get',
    path: `${SYNC}/runs/{id}/debug`,
    summary:
      "What kubectl syncline debug shows of one run: stage timings, rejected rows with reasons, the request log (read from the diff store with the operator's credentials).",
    verb: 'get',
    query: {
      key: {
        description: 'Only the rejected rows and requests of this primary key.',
        schema: { type: 'string', maxLength: CONSOLE_KEY_MAX },
      },
    },
    responses: {
      200: { description: 'The run.', schema: consoleRunDebug },
      ...errors,
      502: {
        description: 'The diff store could not be read (RunRecordUnreadable); the message says why.',
        schema: apiError,
      },
    },
  },
  {
    method: 'get',
    path: '/',
    summary: 'Redirects to the web console.',
    responses: { 302: { description: 'To /console/.' } },
  },
  {
    method: 'get',
    path: '/console',
    summary: 'Redirects to the web console.',
    responses: { 302: { description: 'To /console/.' } },
  },
  {
    method: 'get',
    path: '/console/',
    summary: 'The web console (operator/console/README.md); its pages sign in with a Kubernetes token.',
    responses: { 200: { description: 'The page (text/html).' }, 503: notBuilt },
  },
  {
    method: 'get',
    path: '/console/assets/{file}',
    summary: "The console's script, styles and icon.",
    responses: {
      200: { description: 'The file.' },
      404: { description: 'No such file (RouteNotFound).', schema: apiError },
      503: notBuilt,
    },
  },
];
