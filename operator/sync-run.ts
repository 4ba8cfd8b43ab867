import type { V1Job } from '@kubernetes/client-node';
import { RUN_TRIGGERS, type RunRecord, type Sync, type SyncStatus } from '../crds/index.ts';
import type { RunSummary } from '../core/summary.ts';
import { FULL_RESYNC_ANNOTATION, STARTED_AT_ANNOTATION, TRIGGER_ANNOTATION } from './jobs.ts';
import type { RunTrigger } from './schedule.ts';

/**
 * What every step of a Sync's reconcile reads: the Sync, its status as read, its run Jobs and the time.
 * The steps return what they found (sync-active.ts, sync-start.ts) and `reconcileSync` folds it into the
 * status to write (sync-status.ts) and what to announce (sync-announce.ts).
 */
export interface SyncRun {
  sync: Sync;
  namespace: string;
  name: string;
  now: Date;
  /** Status as read from the cache. */
  status: SyncStatus;
  /** Run Jobs of this Sync (owned by it), from the cache. */
  jobs: V1Job[];
  historyLimit: number;
}

/** A run that ended in this reconcile, with the compact summary from its termination message. */
export interface FinishedRun {
  record: RunRecord;
  summary?: RunSummary;
}

/** A Warning Event to record once the status is written. */
export interface Warning {
  reason: string;
  message: string;
}

const TRIGGERS: readonly RunTrigger[] = RUN_TRIGGERS;

export function creationMs(job: V1Job): number {
  return new Date(String(job.metadata?.creationTimestamp ?? 0)).getTime();
}

export function ownedBy(job: V1Job, sync: Sync): boolean {
  return (job.metadata?.ownerReferences ?? []).some((o) => o.uid === sync.metadata.uid);
}

/** The status record of a run whose Job exists but which status does not know (a lost status write). */
export function recordFromJob(job: V1Job): RunRecord {
  const trigger = job.metadata?.annotations?.[TRIGGER_ANNOTATION] as RunTrigger | undefined;
  const name = job.metadata?.name ?? '';
  const startedAt = Date.parse(job.metadata?.annotations?.[STARTED_AT_ANNOTATION] ?? '');
  return {
    id: name,
    job: name,
    ...(trigger && TRIGGERS.includes(trigger) ? { trigger } : {}),
    fullResync: job.metadata?.annotations?.[FULL_RESYNC_ANNOTATION] === 'true',
    startedAt: new Date(Number.isNaN(startedAt) ? creationMs(job) : startedAt).toISOString(),
  };
}
