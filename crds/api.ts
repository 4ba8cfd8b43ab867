import { z } from 'zod';
import { runCounts, RUN_RESULTS } from './sync.ts';

/**
 * The operator's run API (`/api/v1/...`, served by every replica): the shapes of its requests and answers.
 * `docs/api/openapi.yaml` is generated from these (`npm run generate`), so the server, the CLI, the Python
 * client and the console read one definition.
 */

export const API_PREFIX = '/api/v1';

/** What a run requested through the API, a webhook or a sequence is called in status and in answers. */
export const RUN_PHASES = ['Pending', 'Running', ...RUN_RESULTS, 'Superseded'] as const;
export type RunPhase = (typeof RUN_PHASES)[number];
export const FINISHED_PHASES: readonly RunPhase[] = [...RUN_RESULTS, 'Superseded'];

export const runRequestBody = z
  .object({
    fullResync: z
      .boolean()
      .optional()
      .describe('Ignore the previous snapshot and send every row again (a full resync).'),
  })
  .strict()
  .describe('A run request. The body may be empty.');
export type RunRequestBody = z.infer<typeof runRequestBody>;

export const runView = z
  .object({
    namespace: z.string(),
    sync: z.string(),
    id: z.string().describe('The run ID: the name of its Job.'),
    phase: z
      .enum(RUN_PHASES)
      .describe(
        'Pending: requested, not started (waiting for the active run, a turn at the Destination, or a ' +
          'reference to be Ready); Running; a result once finished; Superseded: requested while another ' +
          'request was pending, and covered by the run named in supersededBy.',
      ),
    trigger: z.string().optional().describe('What started it: api, webhook, manual, schedule, ...'),
    fullResync: z.boolean().optional(),
    requestedAt: z.string().optional().describe('When it was requested (RFC 3339).'),
    startedAt: z.string().optional(),
    finishedAt: z.string().optional(),
    reason: z.string().optional().describe('CamelCase reason of a failure (docs/reasons.md).'),
    message: z.string().optional(),
    counts: runCounts.optional(),
    supersededBy: z.string().optional().describe('The run that covered a Superseded request.'),
  })
  .describe('One run of a Sync.');
export type RunView = z.infer<typeof runView>;

export const runList = z.object({
  items: z.array(runView).describe('Pending and active first, then newest first.'),
});
export type RunList = z.infer<typeof runList>;

export const apiError = z
  .object({
    error: z.object({
      code: z.number().int().describe('The HTTP status code.'),
      reason: z.string().describe('CamelCase reason: Unauthenticated, Forbidden, NotFound, Invalid, ...'),
      message: z.string().describe('What went wrong and what to do about it.'),
    }),
  })
  .describe('Every error answer.');
export type ApiErrorBody = z.infer<typeof apiError>;

/** The longest a `wait` may hold a request open; a longer one is cut to this. */
export const MAX_WAIT_SECONDS = 120;

/** Header of an idempotent request; a retried POST with the same key (and caller) names the same run. */
export const IDEMPOTENCY_HEADER = 'idempotency-key';
export const IDEMPOTENCY_KEY_MAX = 255;
