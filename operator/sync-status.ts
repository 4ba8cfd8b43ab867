import { reasonKind } from '../core/reasons.ts';
import type { Condition, RunRecord, SyncStatus } from '../crds/index.ts';
import { RUNNING, type ConditionSet } from './conditions.ts';
import type { ReconcileContext } from './context.ts';
import { RESYNC_REQUESTED_ANNOTATION } from './schedule.ts';
import { writeStatus } from './status-writer.ts';
import type { SyncRun } from './sync-run.ts';
import type { Verdict } from './validation.ts';

/** Ready, Reconciling and Stalled of a Sync, from its validation and its runs. */
export function syncConditions(input: {
  verdict: Verdict;
  primaryKeyChanged: boolean;
  planError?: { reason: string; message: string };
  paused: boolean;
  active: RunRecord | undefined;
  lastRun: RunRecord | undefined;
  nextRunAt: string | undefined;
  /** When a run that failed for a transient reason is tried again. */
  retryAt?: string | undefined;
  /** The due run waits for runs of other Syncs to the same Destination (DestinationBusy). */
  busy?: { reason: string; message: string } | undefined;
}): ConditionSet {
  const set = baseConditions(input);
  // Waiting for a turn at the Destination is progress, not a problem: Ready stays what it was.
  if (input.busy && !set.stalled && !set.reconciling) return { ...set, reconciling: input.busy };
  return set;
}

function baseConditions(input: Parameters<typeof syncConditions>[0]): ConditionSet {
  const { verdict, active, lastRun } = input;
  if (!verdict.ok) {
    const problem = { reason: verdict.reason, message: verdict.message };
    return {
      ready: { status: 'False', ...problem },
      ...(verdict.stalled ? { stalled: problem } : { reconciling: problem }),
    };
  }
  if (input.planError) return { ready: { status: 'False', ...input.planError }, stalled: input.planError };
  if (input.primaryKeyChanged && !active) {
    const problem = {
      reason: 'PrimaryKeyChanged',
      message:
        `${lastRun?.message ?? "the model's primary key changed"}; request a full resync: ` +
        `kubectl annotate sync <name> ${RESYNC_REQUESTED_ANNOTATION}="$(date -u +%FT%TZ)" --overwrite`,
    };
    return { ready: { status: 'False', ...problem }, stalled: problem };
  }
  const next = input.nextRunAt ? `; next run at ${input.nextRunAt}` : '';
  if (!lastRun && active) {
    const progress = { reason: 'FirstRunInProgress', message: `the first run (${active.id}) is in progress` };
    return { ready: { status: 'Unknown', ...progress }, reconciling: progress };
  }
  if (lastRun?.result === 'Failed') return failedRunConditions(lastRun, active, input.retryAt);
  if (input.paused) {
    return {
      ready: {
        status: 'True',
        reason: 'Paused',
        message: 'the Sync is paused: set spec.paused to false to resume',
      },
    };
  }
  if (!lastRun)
    return {
      ready: { status: 'True', reason: 'Scheduled', message: `the Sync is valid and has not run yet${next}` },
    };
  const counts = lastRun.counts;
  const rows = counts
    ? `${counts.delivered} delivered, ${counts.failed} failed of ${counts.queried} queried`
    : 'no counts';
  return {
    ready: {
      status: 'True',
      reason: lastRun.result === 'PartiallySucceeded' ? 'PartiallySucceeded' : 'Succeeded',
      message: `run ${lastRun.id} ${lastRun.result === 'PartiallySucceeded' ? 'partially succeeded' : 'succeeded'} (${rows})${next}`,
    },
  };
}

/**
 * After a failed run, from its reason's kind (core/reasons.ts): a transient failure is Reconciling (it is
 * retried with backoff), one that needs a person is Stalled, a rejection of rows is Ready=False alone.
 */
function failedRunConditions(
  lastRun: RunRecord,
  active: RunRecord | undefined,
  retryAt: string | undefined,
): ConditionSet {
  const reason = lastRun.reason ?? 'RunFailed';
  const failed = `run ${lastRun.id} failed: ${lastRun.message ?? 'no message'}`;
  const kind = reasonKind(reason);
  if (kind === 'transient') {
    const retry = active ? `; run ${active.id} is trying again` : retryAt ? `; retried at ${retryAt}` : '';
    const problem = { reason, message: `${failed}${retry}` };
    return { ready: { status: 'False', ...problem }, reconciling: problem };
  }
  const problem = { reason, message: failed };
  if (kind === 'needsPerson') return { ready: { status: 'False', ...problem }, stalled: problem };
  return { ready: { status: 'False', ...problem } };
}

function runningCondition(
  active: RunRecord | undefined,
): Omit<Condition, 'lastTransitionTime' | 'observedGeneration'> {
  if (!active) return { type: RUNNING, status: 'False', reason: 'Idle', message: 'no run is in progress' };
  return {
    type: RUNNING,
    status: 'True',
    reason: active.reason ?? 'RunActive',
    message: active.message ?? `run ${active.id} (Job ${active.job}) is in progress`,
  };
}

/**
 * `status.phase`, for display: Pending until the runner container starts, Querying while it runs (the
 * runner reports nothing before it ends, so the operator cannot tell querying from diffing or
 * delivering), then the last run's Succeeded or Failed.
 */
export function syncPhase(
  active: RunRecord | undefined,
  podStarted: boolean,
  lastRun: RunRecord | undefined,
): NonNullable<SyncStatus['phase']> {
  if (active) return podStarted ? 'Querying' : 'Pending';
  if (lastRun) return lastRun.result === 'Failed' ? 'Failed' : 'Succeeded';
  return 'Pending';
}

/**
 * A scheduled run of a Sync whose status is otherwise current starts with the Job alone: its start
 * reaches status when the Job's watch event brings the Sync back (the Job is adopted from the cache, with
 * its start time from an annotation). When a thousand Syncs come due in the same second, one write each
 * instead of two is what keeps the runs on time. A Job deleted before that write is known from its
 * tombstone and never created again; a lost event is made up by the next reconcile, where the due slot's
 * create finds the Job (a no-op) and writes status.
 */
export function defersStart(
  run: SyncRun,
  input: { created: boolean; trigger: string | undefined; announcesAnything: boolean },
): boolean {
  return (
    input.created &&
    input.trigger === 'schedule' &&
    !input.announcesAnything &&
    run.status.observedGeneration === run.sync.metadata.generation &&
    run.status.activeRun === undefined
  );
}

/** Writes the Sync's status (one writer for every kind: status-writer.ts) with Ready, Running and phase. */
export async function writeSyncStatus(
  ctx: Pick<ReconcileContext, 'cluster' | 'events' | 'now'>,
  run: SyncRun,
  input: {
    next: SyncStatus;
    set: ConditionSet;
    active: RunRecord | undefined;
    podStarted: boolean;
    defer: boolean;
    announced: Iterable<string>;
  },
): Promise<SyncStatus> {
  const { status } = await writeStatus(ctx, {
    plural: 'syncs',
    object: run.sync,
    before: run.status,
    after: { ...input.next, phase: syncPhase(input.active, input.podStarted, input.next.lastRun) },
    set: input.set,
    extra: [runningCondition(input.active)],
    announced: input.announced,
    defer: input.defer,
  });
  return status;
}
