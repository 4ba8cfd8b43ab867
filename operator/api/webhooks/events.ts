import { createHash } from 'node:crypto';
import type { z } from 'zod';
import {
  dbtCloudWebhookEvent,
  fivetranWebhookEvent,
  type TriggerOutcome,
  type WebhookType,
} from '../../../crds/index.ts';
import { SynclineError } from '../../../core/errors.ts';

/** A verified delivery, read: what happened, to what, and whether it is the end of a run. */
export interface WebhookEvent {
  type: WebhookType;
  /** The sender's event type: job.run.completed, sync_end, ... */
  event: string;
  /** Names the delivery, the same in each retry of it: the run requests' idempotency key. */
  deliveryId: string;
  /** What the event is about, in words: dbt Cloud account 1 job 123, Fivetran connector x. */
  subject: string;
  accountId?: string;
  jobId?: string;
  connectorId?: string;
  /** How the run (dbt Cloud) or sync (Fivetran) ended. */
  outcome?: TriggerOutcome;
  /** Why the event starts no run whatever the Syncs' triggers (another event type, a sync rescheduled). */
  ignored?: string;
}

/** The only events that start runs. */
export const DBT_CLOUD_RUN_COMPLETED = 'job.run.completed';
export const FIVETRAN_SYNC_END = 'sync_end';

/** Reads a delivery whose signature was verified; throws WebhookPayloadInvalid when it is not an event. */
export function readEvent(type: WebhookType, body: Buffer): WebhookEvent {
  const json = parseJson(type, body);
  return type === 'dbtCloud' ? dbtCloudEvent(json) : fivetranEvent(json, body);
}

const SENDER: Record<WebhookType, string> = { dbtCloud: 'dbt Cloud', fivetran: 'Fivetran' };

function parseJson(type: WebhookType, body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new SynclineError(
      'WebhookPayloadInvalid',
      `the body is not JSON, so not a ${SENDER[type]} webhook event`,
    );
  }
}

function parsed<S extends z.ZodType>(type: WebhookType, schema: S, json: unknown): z.output<S> {
  const result = schema.safeParse(json);
  if (result.success) return result.data;
  const issues = result.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || 'body'}: ${i.message}`)
    .join('; ');
  throw new SynclineError(
    'WebhookPayloadInvalid',
    `the body is not a ${SENDER[type]} webhook event: ${issues}`,
  );
}

/** An ID as text, the same whether it came as a number or as a string of digits (leading zeros dropped). */
export function normalId(id: number | string): string {
  const text = String(id).trim();
  return /^\d+$/.test(text) ? text.replace(/^0+(?=\d)/, '') : text;
}

const DBT_CLOUD_STATUS_CODES: Record<number, TriggerOutcome> = {
  10: 'succeeded',
  20: 'failed',
  30: 'cancelled',
};
const DBT_CLOUD_STATUSES: Record<string, TriggerOutcome> = {
  success: 'succeeded',
  error: 'failed',
  errored: 'failed',
  cancelled: 'cancelled',
  canceled: 'cancelled',
};

function dbtCloudEvent(json: unknown): WebhookEvent {
  const e = parsed('dbtCloud', dbtCloudWebhookEvent, json);
  const base = { type: 'dbtCloud' as const, event: e.eventType, deliveryId: e.eventId };
  const data = e.data ?? {};
  if (e.eventType !== DBT_CLOUD_RUN_COMPLETED) {
    // Answered 200 whatever else it holds: a 4xx would only make dbt Cloud retry it.
    const hint =
      e.eventType === 'job.run.errored'
        ? ' (an errored run also comes as job.run.completed: a trigger with results: [failed] starts on that)'
        : '';
    return {
      ...base,
      subject: data.jobId === undefined ? 'dbt Cloud' : `dbt Cloud job ${normalId(data.jobId)}`,
      ignored: `dbt Cloud event ${e.eventType} starts no run: only ${DBT_CLOUD_RUN_COMPLETED} does${hint}`,
    };
  }
  const account = e.accountId ?? data.accountId;
  if (account === undefined || data.jobId === undefined)
    throw new SynclineError(
      'WebhookPayloadInvalid',
      `the body is not a dbt Cloud ${DBT_CLOUD_RUN_COMPLETED} event: ${account === undefined ? 'accountId' : 'data.jobId'} is missing`,
    );
  const accountId = normalId(account);
  const jobId = normalId(data.jobId);
  const subject = `dbt Cloud account ${accountId} job ${jobId}`;
  const outcome =
    (data.runStatusCode !== undefined ? DBT_CLOUD_STATUS_CODES[data.runStatusCode] : undefined) ??
    DBT_CLOUD_STATUSES[(data.runStatus ?? '').toLowerCase()];
  if (!outcome)
    return {
      ...base,
      subject,
      accountId,
      jobId,
      ignored: `the run of ${subject} has status ${data.runStatus ?? data.runStatusCode ?? 'unknown'}, not a finished run's`,
    };
  return { ...base, subject, accountId, jobId, outcome };
}

const FIVETRAN_STATUSES: Record<string, TriggerOutcome> = {
  SUCCESSFUL: 'succeeded',
  FAILURE: 'failed',
  FAILURE_WITH_TASK: 'failed',
  FAILED: 'failed',
};

function fivetranEvent(json: unknown, body: Buffer): WebhookEvent {
  const e = parsed('fivetran', fivetranWebhookEvent, json);
  const connectorId = e.connector_id;
  const subject = connectorId ? `Fivetran connector ${connectorId}` : 'Fivetran';
  const status = e.data?.status ?? e.status;
  const base = {
    type: 'fivetran' as const,
    event: e.event,
    subject,
    ...(connectorId ? { connectorId } : {}),
    // A retry is the same delivery: its sync, time and status; without a sync ID, the same bytes.
    deliveryId: e.sync_id
      ? [connectorId ?? '', e.sync_id, e.created ?? '', status ?? ''].join('/')
      : `sha256:${createHash('sha256').update(body).digest('hex')}`,
  };
  if (e.event !== FIVETRAN_SYNC_END) {
    // Answered 200 whatever else it holds: Fivetran retries a 4xx for a day, then disables the webhook.
    const test = e.event === 'test_event' ? ' (a test delivery: the webhook works)' : '';
    return {
      ...base,
      ignored: `Fivetran event ${e.event} starts no run: only ${FIVETRAN_SYNC_END} does${test}`,
    };
  }
  if (!connectorId)
    throw new SynclineError(
      'WebhookPayloadInvalid',
      `the body is not a Fivetran ${FIVETRAN_SYNC_END} event: connector_id is missing`,
    );
  const outcome = FIVETRAN_STATUSES[status ?? ''];
  if (!outcome)
    return {
      ...base,
      ignored:
        status === 'RESCHEDULED'
          ? `the sync of ${subject} was rescheduled, not finished`
          : `the sync of ${subject} ended with status ${status ?? 'unknown'}, neither a success nor a failure`,
    };
  return { ...base, outcome };
}
