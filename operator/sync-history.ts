import type { SyncStatus } from '../crds/index.ts';
import type { ClusterAccess } from './cluster.ts';
import { jobOutcome } from './results.ts';
import { creationMs, type FinishedRun, type SyncRun } from './sync-run.ts';

/**
 * The status after a run finished: it is the last run, first in `history` (at most `historyLimit`
 * records), the last success when it did not fail, and no longer active.
 */
export function withFinishedRun(status: SyncStatus, run: FinishedRun, historyLimit: number): SyncStatus {
  const next: SyncStatus = { ...status, lastRun: run.record };
  next.history = [run.record, ...(status.history ?? []).filter((r) => r.id !== run.record.id)].slice(
    0,
    historyLimit,
  );
  if (run.record.result !== 'Failed' && run.record.finishedAt)
    next.lastSuccessfulRunAt = run.record.finishedAt;
  if (run.summary?.modelFingerprint) next.modelFingerprint = run.summary.modelFingerprint;
  delete next.activeRun;
  return next;
}

/** The Jobs of runs status records as finished (the last run and `history`). */
export function finishedJobNames(status: SyncStatus): Set<string> {
  return new Set(
    [status.lastRun, ...(status.history ?? [])].map((r) => r?.job).filter((j) => j !== undefined),
  );
}

/** Finished Jobs beyond the newest `historyLimit`, never the active run's: the ones to delete. */
export function jobsBeyondHistory(run: SyncRun, activeJob: string | undefined): string[] {
  return run.jobs
    .filter((j) => j.metadata?.name !== activeJob && jobOutcome(j, []).state === 'finished')
    .sort((a, b) => creationMs(b) - creationMs(a))
    .slice(run.historyLimit)
    .map((j) => j.metadata?.name ?? '');
}

/** Keeps `historyLimit` finished Jobs; older ones go (the TTL controller is the backstop). */
export async function pruneHistory(
  cluster: Pick<ClusterAccess, 'deleteJob'>,
  run: SyncRun,
  activeJob: string | undefined,
): Promise<void> {
  for (const name of jobsBeyondHistory(run, activeJob)) await cluster.deleteJob(run.namespace, name);
}
