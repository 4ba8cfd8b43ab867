import type { V1Job } from '@kubernetes/client-node';
import type { RunRecord, SyncStatus } from '../crds/index.ts';
import type { ReconcileContext } from './context.ts';
import { RUN_KEY_LABEL } from './jobs.ts';
import { jobOutcome, runRecordFromOutcome } from './results.ts';
import { finishedJobNames, withFinishedRun } from './sync-history.ts';
import { creationMs, recordFromJob, type FinishedRun, type SyncRun, type Warning } from './sync-run.ts';

/** What watching the active run found. */
export interface ActiveRunState {
  /** The run still in progress (maybe with a pod problem), or undefined. */
  active?: RunRecord;
  /** Its run key (the Job's label), for the schedule's "already running" test. */
  activeKey?: string;
  /** Whether its runner container has started. */
  podStarted: boolean;
  /** The run, when it ended now. */
  finished?: FinishedRun;
  /** A new pod problem of the active run. */
  warning?: Warning;
  /** Jobs to delete once the status is written (a run stopped because its pod could not start). */
  deleteAfterWrite: string[];
  requeueAfterMs?: number;
}

/** The cache is behind a status write: reconcile again in a moment, from the newer state. */
export const CACHE_BEHIND = 'cacheBehind';

/**
 * The active run of status: still going, stuck before its container started, or finished (its Job's
 * outcome, or its Job gone). `CACHE_BEHIND` when the Job is missing because the cache has not seen a write
 * of this operator that removed it on purpose.
 */
export async function observeActiveRun(
  ctx: Pick<ReconcileContext, 'cluster' | 'store' | 'config'>,
  run: SyncRun,
): Promise<ActiveRunState | typeof CACHE_BEHIND> {
  const active = run.status.activeRun;
  if (!active?.job) return { ...(active ? { active } : {}), podStarted: false, deleteAfterWrite: [] };
  // A cache miss right after creation is normal (the watch lags), and a deletion the informer reported may
  // be a relist's guess: the API server decides whether the Job is gone.
  const job =
    run.jobs.find((j) => j.metadata?.name === active.job) ??
    (await ctx.cluster.getJob(run.namespace, active.job));
  if (job) return watchJob(ctx, run, active, job);
  const live = await ctx.cluster.getObject('syncs', run.namespace, run.name);
  const liveVersion = (live?.['metadata'] as { resourceVersion?: string } | undefined)?.resourceVersion;
  // The newer state may have finished this run and removed its Job on purpose.
  if (live && liveVersion !== run.sync.metadata.resourceVersion) return CACHE_BEHIND;
  // A run whose pod was stuck on a known problem (a missing Secret key, an image that cannot be pulled)
  // failed of that problem, whoever removed its Job: that is what a person can act on.
  const deleted = `the Job ${active.job} of the run was deleted before it finished; the next run re-sends what may be missing`;
  return {
    podStarted: false,
    deleteAfterWrite: [],
    finished: {
      record: {
        ...active,
        finishedAt: run.now.toISOString(),
        result: 'Failed',
        reason: active.reason ?? 'JobDeleted',
        message: active.reason ? `${active.message ?? active.reason} (${deleted})` : deleted,
      },
    },
  };
}

/** The active run's Job: finished, stuck past the pod-start timeout (failed), stuck, or running. */
function watchJob(
  ctx: Pick<ReconcileContext, 'store' | 'config'>,
  run: SyncRun,
  active: RunRecord,
  job: V1Job,
): ActiveRunState {
  const pods = ctx.store.podsOfJob(run.namespace, active.job ?? '');
  const outcome = jobOutcome(job, pods, active);
  const activeKey = job.metadata?.labels?.[RUN_KEY_LABEL];
  const base = { ...(activeKey ? { activeKey } : {}), deleteAfterWrite: [] as string[], podStarted: false };
  if (outcome.state === 'finished') return { ...base, finished: runRecordFromOutcome(active, outcome) };
  const podStarted = pods.some((p) =>
    p.status?.containerStatuses?.some((c) => c.state?.running || c.state?.terminated),
  );
  const age = run.now.getTime() - creationMs(job);
  const problem = outcome.problem;
  if (problem?.stuck && age >= ctx.config.podStartTimeoutMs) {
    return {
      ...base,
      // Deleted only after the failure is in status, so that a retry never sees "JobDeleted" instead.
      deleteAfterWrite: [active.job ?? ''],
      finished: {
        record: {
          ...active,
          finishedAt: run.now.toISOString(),
          result: 'Failed',
          reason: problem.reason,
          message: `${problem.message} (the runner pod could not start for ${Math.round(age / 1000)} s, so the run was stopped)`,
        },
      },
    };
  }
  if (problem) {
    return {
      ...base,
      podStarted,
      active: { ...active, reason: problem.reason, message: problem.message },
      ...(active.reason !== problem.reason
        ? { warning: { reason: problem.reason, message: problem.message } }
        : {}),
      ...(problem.stuck ? { requeueAfterMs: Math.max(1000, ctx.config.podStartTimeoutMs - age) } : {}),
    };
  }
  const { reason: _reason, message: _message, ...running } = active;
  return { ...base, podStarted, active: active.reason ? running : active };
}

/**
 * A Job that runs while status does not know it (the status write after its creation was lost). Not a
 * run that status records as finished (this reconcile's included): the stuck-pod path deletes its Job only
 * after writing the failure, and the Job cache may learn of that deletion after the Sync's cache learns of
 * the write. Adopting that Job again would end its run a second time, as JobDeleted, over the failure.
 */
export function adoptOrphan(
  run: SyncRun,
  status: { lastRun?: RunRecord; history?: RunRecord[] },
): { active: RunRecord; activeKey?: string } | undefined {
  const finished = finishedJobNames(status);
  const orphan = run.jobs.find(
    (j) => !finished.has(j.metadata?.name ?? '') && jobOutcome(j, []).state === 'active',
  );
  if (!orphan) return undefined;
  const activeKey = orphan.metadata?.labels?.[RUN_KEY_LABEL];
  return { active: recordFromJob(orphan), ...(activeKey ? { activeKey } : {}) };
}

/** The status after watching the active run: the run finished, still active, or an orphan adopted. */
export function activeRunStatus(
  run: SyncRun,
  observed: ActiveRunState,
): { next: SyncStatus; active?: RunRecord; activeKey?: string } {
  let next: SyncStatus = { ...run.status };
  if (observed.finished) next = withFinishedRun(next, observed.finished, run.historyLimit);
  else if (observed.active) {
    next.activeRun = observed.active;
    return {
      next,
      active: observed.active,
      ...(observed.activeKey ? { activeKey: observed.activeKey } : {}),
    };
  }
  const orphan = adoptOrphan(run, next);
  if (!orphan) return { next };
  next.activeRun = orphan.active;
  return { next, ...orphan };
}
