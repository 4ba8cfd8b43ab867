import { reasonKind } from '../core/reasons.ts';
import type {
  Condition,
  Sequence,
  SequenceRunRecord,
  SequenceStatus,
  SequenceStepRecord,
} from '../crds/index.ts';
import { RUNNING, type ConditionSet } from './conditions.ts';
import type { ReconcileContext } from './context.ts';
import type { ScheduleDecision } from './schedule.ts';
import { isFinalStep } from './sequence-steps.ts';

/** Ready, Reconciling and Stalled of a Sequence: its problem, else its last run, as for a Sync. */
export function sequenceConditions(input: {
  problem: { reason: string; message: string } | undefined;
  paused: boolean;
  active: SequenceRunRecord | undefined;
  lastRun: SequenceRunRecord | undefined;
  nextRunAt: string | undefined;
}): ConditionSet {
  const { problem, active, lastRun } = input;
  if (problem) return { ready: { status: 'False', ...problem }, stalled: problem };
  const next = input.nextRunAt ? `; next run at ${input.nextRunAt}` : '';
  if (!lastRun && active) {
    const progress = { reason: 'FirstRunInProgress', message: `the first run (${active.id}) is in progress` };
    return { ready: { status: 'Unknown', ...progress }, reconciling: progress };
  }
  if (lastRun?.result === 'Failed') {
    // A sequence run is not retried: a failure that needs a person stalls, any other waits for the next run.
    const failed = {
      reason: lastRun.reason ?? 'RunFailed',
      message: `run ${lastRun.id}: ${lastRun.message}`,
    };
    if (reasonKind(failed.reason) === 'needsPerson')
      return { ready: { status: 'False', ...failed }, stalled: failed };
    return { ready: { status: 'False', ...failed } };
  }
  if (input.paused)
    return {
      ready: {
        status: 'True',
        reason: 'Paused',
        message: 'the Sequence is paused: set spec.paused to false to resume',
      },
    };
  if (!lastRun)
    return {
      ready: {
        status: 'True',
        reason: 'Scheduled',
        message: `the Sequence is valid and has not run yet${next}`,
      },
    };
  const partial = lastRun.result === 'PartiallySucceeded';
  return {
    ready: {
      status: 'True',
      reason: partial ? 'PartiallySucceeded' : 'Succeeded',
      message: `run ${lastRun.id} ${partial ? 'partially succeeded' : 'succeeded'}: ${lastRun.message}${next}`,
    },
  };
}

/** The current step of a run: the first that is not final. */
function currentStep(run: SequenceRunRecord): { step: SequenceStepRecord; index: number } | undefined {
  const index = run.steps.findIndex((s) => !isFinalStep(s));
  const step = run.steps[index];
  return step ? { step, index } : undefined;
}

/** Running: True while a run is active, saying which step it is at and what that step waits for. */
export function runningCondition(
  active: SequenceRunRecord | undefined,
  waiting: string | undefined,
): Omit<Condition, 'lastTransitionTime' | 'observedGeneration'> {
  if (!active) return { type: RUNNING, status: 'False', reason: 'Idle', message: 'no run is in progress' };
  const current = currentStep(active);
  const at = current
    ? `step ${current.index + 1} of ${active.steps.length} (${current.step.sync})`
    : 'its last step';
  return {
    type: RUNNING,
    status: 'True',
    reason: 'RunActive',
    message: `run ${active.id} is at ${at}${waiting ? `; ${waiting}` : ''}`,
  };
}

/** `status.phase`, for display. */
export function sequencePhase(
  active: SequenceRunRecord | undefined,
  lastRun: SequenceRunRecord | undefined,
): NonNullable<SequenceStatus['phase']> {
  if (active) return 'Running';
  return lastRun?.result ?? 'Pending';
}

/** The status with the decision's schedule text, next slot and skipped runs. */
export function withSchedule(status: SequenceStatus, decision: ScheduleDecision): SequenceStatus {
  const next: SequenceStatus = { ...status, schedule: decision.text };
  if (decision.nextRunAt) next.nextRunAt = decision.nextRunAt.toISOString();
  else delete next.nextRunAt;
  if (decision.skipped > 0) next.skippedRuns = (next.skippedRuns ?? 0) + decision.skipped;
  return next;
}

/** The status after a run finished: the last run, first in `history` (at most historyLimit), not active. */
export function withFinishedRun(
  status: SequenceStatus,
  run: SequenceRunRecord,
  historyLimit: number,
): SequenceStatus {
  const next: SequenceStatus = { ...status, lastRun: run };
  next.history = [run, ...(status.history ?? []).filter((r) => r.id !== run.id)].slice(0, historyLimit);
  delete next.activeRun;
  return next;
}

/** The Ready reason a finished run leads to: its own Event says it, so the status writer adds none. */
export function readyReasonOf(run: SequenceRunRecord): string {
  if (run.result === 'Succeeded') return 'Succeeded';
  if (run.result === 'PartiallySucceeded') return 'PartiallySucceeded';
  return run.reason ?? 'RunFailed';
}

/** Events of what was written: a run started, a due run skipped, a run finished (as a Sync's runs). */
export function announceSequence(
  ctx: Pick<ReconcileContext, 'events' | 'log'>,
  sequence: Sequence,
  what: { started?: SequenceRunRecord; finished?: SequenceRunRecord; skipped: number; activeId?: string },
): void {
  const { started, finished } = what;
  if (started) {
    ctx.log.info({ run: started.id, trigger: started.trigger }, 'sequence run started');
    const steps = started.steps.map((s) => s.sync).join(', ');
    ctx.events.normal(sequence, 'RunStarted', `started run ${started.id} (${started.trigger}): ${steps}`);
  }
  if (what.skipped > 0)
    ctx.events.warning(
      sequence,
      'RunSkipped',
      `a scheduled run came due while run ${what.activeId ?? ''} was still active; it was skipped`,
    );
  if (!finished) return;
  ctx.log.info({ run: finished.id, result: finished.result }, 'sequence run finished');
  if (finished.result === 'Succeeded')
    ctx.events.normal(sequence, 'RunSucceeded', `run ${finished.id} succeeded: ${finished.message}`);
  else if (finished.result === 'PartiallySucceeded')
    ctx.events.warning(
      sequence,
      'RunPartiallySucceeded',
      `run ${finished.id} partially succeeded: ${finished.message}`,
    );
  else
    ctx.events.warning(
      sequence,
      finished.reason ?? 'RunFailed',
      `run ${finished.id} failed: ${finished.message}`,
    );
}
