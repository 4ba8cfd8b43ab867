import { scheduleProblem } from '../crds/checks.ts';
import {
  DEFAULT_HISTORY_LIMIT,
  type Sequence,
  type SequenceRunRecord,
  type SequenceStatus,
} from '../crds/index.ts';
import type { ReconcileContext } from './context.ts';
import { runJobName } from './jobs.ts';
import type { ReconcileResult } from './runtime/controller.ts';
import { decide, RUN_REQUESTED_ANNOTATION, type RunStart, type ScheduleDecision } from './schedule.ts';
import {
  announceSequence,
  readyReasonOf,
  runningCondition,
  sequenceConditions,
  sequencePhase,
  withFinishedRun,
  withSchedule,
} from './sequence-status.ts';
import { advanceRun } from './sequence-steps.ts';
import { writeStatus } from './status-writer.ts';

/**
 * How often an active run looks at its step again when no event of the step's Sync brought it back (the
 * Sync-to-Sequences index does, on every status change of the Sync).
 */
const ACTIVE_RECHECK_MS = 60_000;

/** After a run finished, how soon the Sequence looks again (a request made meanwhile runs after it). */
const AFTER_FINISH_MS = 1_000;

/**
 * What keeps a Sequence from starting runs, for Stalled: a schedule the operator cannot evaluate, or a
 * step naming a Sync that does not exist.
 */
export function sequenceProblem(
  ctx: Pick<ReconcileContext, 'store'>,
  sequence: Sequence,
): { reason: string; message: string } | undefined {
  const schedule = scheduleProblem(sequence.spec.schedule);
  if (schedule) return { reason: schedule.reason, message: schedule.message };
  const namespace = sequence.metadata.namespace ?? 'default';
  const missing = sequence.spec.steps
    .map((step, index) => ({ step, index }))
    .filter(({ step }) => !ctx.store.sync(namespace, step.sync));
  if (missing.length === 0) return undefined;
  const named = missing.map(({ step, index }) => `step ${index + 1} (${step.sync})`).join(', ');
  return {
    reason: 'SequenceStepNotFound',
    message:
      `${named} of ${sequence.spec.steps.length} ${missing.length === 1 ? 'names a Sync that does' : 'name Syncs that do'} ` +
      `not exist in namespace ${namespace}: create ${missing.length === 1 ? 'it' : 'them'}, or fix spec.steps[].sync`,
  };
}

/** A new run, every step Waiting, named `<sequence>-<run key>`: the same on every replica and retry. */
export function newRun(sequence: Sequence, start: RunStart, now: Date): SequenceRunRecord {
  return {
    id: runJobName(sequence.metadata.name, start.key),
    trigger: start.trigger,
    startedAt: now.toISOString(),
    steps: sequence.spec.steps.map((step) => ({
      sync: step.sync,
      phase: 'Waiting',
      onFailure: step.onFailure ?? 'stop',
      ...(step.fullResync ? { fullResync: true } : {}),
    })),
  };
}

/** Whether a run is due (schedule or the run-requested-at annotation), by the Syncs' own decision. */
function scheduleDecision(
  sequence: Sequence,
  status: SequenceStatus,
  input: { now: Date; blocked: boolean },
): ScheduleDecision {
  const request = sequence.metadata.annotations?.[RUN_REQUESTED_ANNOTATION];
  return decide({
    now: input.now,
    createdAt: new Date(sequence.metadata.creationTimestamp ?? input.now.toISOString()),
    schedule: sequence.spec.schedule,
    paused: sequence.spec.paused ?? false,
    // Only run requests: a Sequence has no full resync of its own (its steps say fullResync).
    annotations: request ? { [RUN_REQUESTED_ANNOTATION]: request } : {},
    status: {
      ...(status.nextRunAt ? { nextRunAt: status.nextRunAt } : {}),
      ...(status.schedule ? { schedule: status.schedule } : {}),
      ...(status.handledRunRequest ? { handledRunRequest: status.handledRunRequest } : {}),
      ...(status.lastRun ? { lastRun: { id: status.lastRun.id, startedAt: status.lastRun.startedAt } } : {}),
    },
    active: status.activeRun !== undefined,
    blocked: input.blocked,
  });
}

/**
 * Reconciles a Sequence: starts a run when one is due (one at a time; a slot due meanwhile is skipped),
 * moves the active run on by one step at a time (sequence-steps.ts: each step's Sync run requested as the
 * run API does, with a key that makes a repeated request name the same run), records a finished run in
 * lastRun/history, and writes status through the one status writer, then its Events.
 */
export async function reconcileSequence(ctx: ReconcileContext, sequence: Sequence): Promise<ReconcileResult> {
  if (sequence.metadata.deletionTimestamp) return;
  const now = ctx.now();
  const status: SequenceStatus = sequence.status ?? {};
  const problem = sequenceProblem(ctx, sequence);
  const decision = scheduleDecision(sequence, status, { now, blocked: problem !== undefined });
  const order = sequence.spec.steps.map((s) => s.sync).join(', ');
  let next = withSchedule({ ...status, order }, decision);

  let active = status.activeRun;
  let started: SequenceRunRecord | undefined;
  if (decision.start && !active) {
    active = started = newRun(sequence, decision.start, now);
    if (decision.handledRunRequest) next.handledRunRequest = decision.handledRunRequest;
  }
  let finished: SequenceRunRecord | undefined;
  let waiting: string | undefined;
  if (active) {
    const progress = await advanceRun(ctx, sequence, active);
    if (progress.finished) {
      finished = progress.run;
      active = undefined;
      next = withFinishedRun(next, finished, sequence.spec.historyLimit ?? DEFAULT_HISTORY_LIMIT);
    } else {
      next.activeRun = active = progress.run;
      waiting = progress.waiting;
    }
  }

  await writeStatus(ctx, {
    plural: 'sequences',
    object: sequence,
    before: status,
    after: { ...next, phase: sequencePhase(active, next.lastRun) },
    set: sequenceConditions({
      problem,
      paused: sequence.spec.paused ?? false,
      active,
      lastRun: next.lastRun,
      nextRunAt: next.nextRunAt,
    }),
    extra: [runningCondition(active, waiting)],
    announced: finished ? [readyReasonOf(finished)] : [],
  });
  announceSequence(ctx, sequence, {
    ...(started ? { started } : {}),
    ...(finished ? { finished } : {}),
    skipped: decision.skipped,
    ...(status.activeRun ? { activeId: status.activeRun.id } : {}),
  });
  const delays = [
    decision.requeueAfterMs,
    active ? ACTIVE_RECHECK_MS : undefined,
    finished ? AFTER_FINISH_MS : undefined,
  ].filter((d) => d !== undefined);
  return delays.length ? { requeueAfterMs: Math.max(1, Math.min(...delays) + 5) } : undefined;
}
