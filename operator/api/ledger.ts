import { createHash } from 'node:crypto';
import { z } from 'zod';
import { RUN_TRIGGERS, type Sync } from '../../crds/index.ts';
import { runJobName } from '../jobs.ts';
import { RESYNC_REQUESTED_ANNOTATION, RUN_REQUESTED_ANNOTATION, shortHash } from '../schedule.ts';

/**
 * The run requests made through the API, webhooks and sequences, kept on the Sync itself (an annotation)
 * so that they live in the API server: every replica reads the same ledger, a request survives a leader
 * failover, and a retried request (the same Idempotency-Key) finds the run it started.
 */
export const RUN_REQUESTS_ANNOTATION = 'syncline.io/run-requests';

/** Requests older than this, or beyond the newest LEDGER_MAX, are forgotten (an idempotent retry then starts anew). */
export const LEDGER_RETENTION_MS = 24 * 60 * 60_000;
export const LEDGER_MAX = 50;

const ledgerEntry = z.object({
  /** The run ID (its Job name) the request became or joined. */
  id: z.string(),
  /** The run-requested-at (or resync-requested-at) value it set; absent when it joined a pending one. */
  value: z.string().optional(),
  resync: z.boolean().optional(),
  trigger: z.enum(RUN_TRIGGERS),
  at: z.string(),
  /** Who asked: a Kubernetes username, or `webhook:<name>`. */
  by: z.string().optional(),
  /** sha256 of the caller and the Idempotency-Key (or a webhook's delivery id); never the key itself. */
  key: z.string().optional(),
});
export type LedgerEntry = z.infer<typeof ledgerEntry>;

/** The ledger of a Sync; an annotation someone edited into nonsense reads as empty rather than failing. */
export function readLedger(sync: Sync): LedgerEntry[] {
  const text = sync.metadata.annotations?.[RUN_REQUESTS_ANNOTATION];
  if (!text) return [];
  try {
    const parsed = z.array(ledgerEntry).safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : [];
  } catch (error) {
    if (error instanceof SyntaxError) return [];
    throw error;
  }
}

/** The ledger with `entry` added, the expired and the oldest beyond LEDGER_MAX dropped. */
export function withEntry(ledger: LedgerEntry[], entry: LedgerEntry, now: Date): LedgerEntry[] {
  const since = now.getTime() - LEDGER_RETENTION_MS;
  const kept = ledger.filter((e) => Date.parse(e.at) >= since);
  return [...kept, entry].slice(-LEDGER_MAX);
}

/** The ledger's key of a caller's Idempotency-Key: a hash, so the annotation holds no caller's secret. */
export function requestKey(caller: string, idempotencyKey: string): string {
  return createHash('sha256').update(`${caller}\u0000${idempotencyKey}`).digest('hex').slice(0, 32);
}

export interface PendingRequest {
  id: string;
  value: string;
  resync: boolean;
}

/**
 * The request the operator has not acted on yet, if any: the resync request first, since a full resync
 * also satisfies a pending run request (operator/schedule.ts decides the same way).
 */
export function pendingRequest(sync: Sync): PendingRequest | undefined {
  const annotations = sync.metadata.annotations ?? {};
  const resync = annotations[RESYNC_REQUESTED_ANNOTATION];
  if (resync && resync !== sync.status?.handledResyncRequest)
    return { id: requestRunId(sync.metadata.name, resync, true), value: resync, resync: true };
  const run = annotations[RUN_REQUESTED_ANNOTATION];
  if (run && run !== sync.status?.handledRunRequest)
    return { id: requestRunId(sync.metadata.name, run, false), value: run, resync: false };
  return undefined;
}

/** The run ID the operator gives the run of a request value: the Job name of schedule.ts's run key. */
export function requestRunId(syncName: string, value: string, resync: boolean): string {
  return runJobName(syncName, `${resync ? 'r' : 'm'}-${shortHash(value)}`);
}
