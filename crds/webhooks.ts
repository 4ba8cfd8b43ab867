import { z } from 'zod';
import { apiError, RUN_PHASES } from './api.ts';
import type { ApiRoute } from './api-doc.ts';

/**
 * The operator's webhook receivers (`POST /webhooks/v1/{name}`): the deliveries they read and what they
 * answer. The payloads are the senders' own; only the fields Syncline reads are declared, and every other
 * field is kept (a sender adding fields breaks nothing).
 */

export const WEBHOOK_PREFIX = '/webhooks/v1';
export const WEBHOOK_TYPES = ['dbtCloud', 'fivetran'] as const;
export type WebhookType = (typeof WEBHOOK_TYPES)[number];

/** dbt Cloud and Fivetran send IDs as numbers or strings, depending on the field and the release. */
const id = z.union([z.number().int(), z.string().min(1).max(128)]);

/**
 * A dbt Cloud webhook delivery (docs.getdbt.com/docs/deploy/webhooks). It is signed in the `Authorization`
 * header: the hex HMAC-SHA256 of the raw body, keyed with the webhook's secret.
 */
export const dbtCloudWebhookEvent = z.looseObject({
  accountId: id.optional().describe('The dbt Cloud account (a number).'),
  eventId: z.string().min(1).max(256).describe('The delivery ID, the same in each retry: wev_...'),
  eventType: z
    .string()
    .min(1)
    .max(128)
    .describe('job.run.started, job.run.completed (succeeded or not) or job.run.errored.'),
  timestamp: z.string().max(64).optional(),
  webhookName: z.string().max(256).optional(),
  data: z
    .looseObject({
      accountId: id.optional().describe('Read when the top-level accountId is missing.'),
      jobId: id
        .optional()
        .describe('The job the run belongs to (a string of digits); job.run.completed has it.'),
      jobName: z.string().max(1024).optional(),
      runId: id.optional(),
      runStatus: z.string().max(64).optional().describe('Success, Error, Cancelled, Running, ...'),
      runStatusCode: z
        .number()
        .int()
        .optional()
        .describe('1 queued, 2 starting, 3 running, 10 success, 20 error, 30 cancelled.'),
      runFinishedAt: z.string().max(64).optional(),
    })
    .optional(),
});
export type DbtCloudWebhookEvent = z.infer<typeof dbtCloudWebhookEvent>;

/**
 * A Fivetran webhook delivery (fivetran.com/docs/rest-api/webhooks). With a secret it is signed in the
 * `X-Fivetran-Signature-256` header: the hex HMAC-SHA256 of the raw body (Fivetran's examples compare it
 * upper-cased; either case is accepted).
 */
export const fivetranWebhookEvent = z.looseObject({
  event: z.string().min(1).max(128).describe('sync_start, sync_end, test_event, ...'),
  created: z.string().max(64).optional().describe('When the event happened (RFC 3339).'),
  connector_id: z
    .string()
    .min(1)
    .max(256)
    .optional()
    .describe('The connector (connection) the event is about; sync_end has it.'),
  connector_type: z.string().max(256).optional(),
  connector_name: z.string().max(1024).optional(),
  sync_id: z.string().max(256).optional().describe('The sync the event is about.'),
  group_id: z.string().max(256).optional(),
  destination_group_id: z.string().max(256).optional(),
  status: z.string().max(64).optional().describe('Read when data.status is missing.'),
  data: z
    .looseObject({
      status: z
        .string()
        .max(64)
        .optional()
        .describe('sync_end: SUCCESSFUL, FAILURE, FAILURE_WITH_TASK or RESCHEDULED.'),
      reason: z.string().max(4096).nullish(),
    })
    .optional(),
});
export type FivetranWebhookEvent = z.infer<typeof fivetranWebhookEvent>;

export const webhookRun = z
  .object({
    namespace: z.string(),
    sync: z.string(),
    id: z.string().describe('The run ID: the name of its Job (GET /api/v1/.../runs/{id}).'),
    phase: z.enum(RUN_PHASES),
    replayed: z
      .boolean()
      .describe('The delivery came before (a retry): this is the run it requested then, nothing new.'),
  })
  .describe('A run a delivery requested.');
export type WebhookRun = z.infer<typeof webhookRun>;

export const webhookAnswer = z
  .object({
    runs: z.array(webhookRun).describe('One per Sync whose triggers match the event; may be empty.'),
    reason: z
      .string()
      .optional()
      .describe('Why the delivery started no run (WebhookEventIgnored), when runs is empty.'),
    message: z.string().optional(),
  })
  .describe('The answer to a valid delivery.');
export type WebhookAnswer = z.infer<typeof webhookAnswer>;

/** The webhook receivers in docs/api/openapi.yaml. */
export const WEBHOOK_ROUTES: ApiRoute[] = [
  {
    method: 'post',
    path: `${WEBHOOK_PREFIX}/{name}`,
    summary:
      'A dbt Cloud or Fivetran webhook delivery (the webhook named in the path, --webhook NAME=TYPE): requests a run of each Sync whose spec.schedule.triggers match the event.',
    headers: {
      authorization:
        'dbt Cloud webhooks: the hex HMAC-SHA256 of the raw body, keyed with the webhook secret (no token).',
      'x-fivetran-signature-256':
        'Fivetran webhooks: the hex HMAC-SHA256 of the raw body, keyed with the webhook secret.',
    },
    body: z.union([dbtCloudWebhookEvent, fivetranWebhookEvent]),
    responses: {
      200: {
        description:
          'The runs requested (one per matching Sync; replayed: a retried delivery, nothing new), or none and why (WebhookEventIgnored).',
        schema: webhookAnswer,
      },
      400: { description: 'Signed, but not the event (WebhookPayloadInvalid).', schema: apiError },
      401: {
        description: 'The signature is missing or wrong (WebhookSignatureInvalid).',
        schema: apiError,
      },
      404: { description: 'No webhook of that name (WebhookNotFound).', schema: apiError },
      409: { description: 'A Sync kept changing (RequestConflict); the sender retries.', schema: apiError },
      413: { description: 'The body is larger than 256 KiB (BodyTooLarge).', schema: apiError },
      429: { description: 'Too many deliveries from this address (RateLimited).', schema: apiError },
    },
  },
];
