import type {
  RunView,
  Sequence,
  SequenceRunRecord,
  SequenceStepRecord,
  StepPhase,
  Sync,
} from '../crds/index.ts';
import { isSynclineError } from '../core/errors.ts';
import { clip } from '../core/text.ts';
import { requestKey } from './api/ledger.ts';
import { requestRun, type RequestKube } from './api/request-run.ts';
import { viewRun } from './api/run-view.ts';
import type { ClusterAccess } from './cluster.ts';
import type { ReconcileContext } from './context.ts';

/** The step phases that are final: the step's Sync run finished, or it will never run in this run. */
const FINAL: readonly StepPhase[] = ['Succeeded', 'PartiallySucceeded', 'Failed', 'Skipped'];
/** How many Superseded runs a step follows to the run that covered them (each hop is a full resync). */
const MAX_SUPERSEDED_HOPS = 5;

export const isFinalStep = (step: SequenceStepRecord): boolean => FINAL.includes(step.phase);

/** A failed step whose rule ends the run. */
export const stopsRun = (step: SequenceStepRecord): boolean =>
  step.phase === 'Failed' && (step.onFailure ?? 'stop') === 'stop';

/**
 * The run API's view of the API server, over the operator's own ClusterAccess: requestRun reads the Sync
 * live (not from the cache, so a replay finds its ledger entry) and writes its annotations conditioned on
 * the resourceVersion read.
 */
export function clusterKube(cluster: Pick<ClusterAccess, 'getObject' | 'patchAnnotations'>): RequestKube {
  return {
    getSync: async (namespace, name) =>
      (await cluster.getObject('syncs', namespace, name)) as Sync | undefined,
    patchSyncAnnotations: (namespace, name, annotations, resourceVersion) =>
      cluster.patchAnnotations('syncs', namespace, name, annotations, resourceVersion),
  };
}

/** Where the active run is after this reconcile. */
export interface Progress {
  run: SequenceRunRecord;
  /** Every step is final: the run is over (run.result is set). */
  finished: boolean;
  /** What the current step waits for, in words, for the Running condition. */
  waiting?: string;
}

/** What a step of one run needs to know. */
interface StepContext {
  ctx: Pick<ReconcileContext, 'store' | 'cluster' | 'now'>;
  kube: RequestKube;
  namespace: string;
  sequence: string;
  runId: string;
  index: number;
  count: number;
}

const label = (s: StepContext, sync: string) => `step ${s.index + 1} of ${s.count} (${sync})`;

/**
 * Moves the active run on: the first step that is not final is requested (once) or observed; a step that
 * finished lets the next one go, unless it failed with onFailure stop, which skips the rest. With the
 * Sequence paused, a step not requested yet is not requested.
 */
export async function advanceRun(
  ctx: Pick<ReconcileContext, 'store' | 'cluster' | 'now'>,
  sequence: Sequence,
  run: SequenceRunRecord,
): Promise<Progress> {
  const steps = [...run.steps];
  const base = {
    ctx,
    kube: clusterKube(ctx.cluster),
    namespace: sequence.metadata.namespace ?? 'default',
    sequence: sequence.metadata.name,
    runId: run.id,
    count: steps.length,
  };
  for (let index = 0; index < steps.length; index++) {
    const step = steps[index] as SequenceStepRecord;
    if (isFinalStep(step)) continue;
    const s: StepContext = { ...base, index };
    if (!step.runId && sequence.spec.paused)
      return {
        run: { ...run, steps },
        finished: false,
        waiting: `the Sequence is paused: ${label(s, step.sync)} is not requested until spec.paused is false`,
      };
    const observed = await observeStep(s, step);
    steps[index] = observed.step;
    if (!isFinalStep(observed.step))
      return { run: { ...run, steps }, finished: false, waiting: observed.waiting };
    if (stopsRun(observed.step))
      for (let later = index + 1; later < steps.length; later++)
        steps[later] = { ...(steps[later] as SequenceStepRecord), phase: 'Skipped' };
  }
  return { run: finishedRun({ ...run, steps }, ctx.now()), finished: true };
}

/** One step: its Sync's run requested if it was not, then where that run is. */
async function observeStep(
  s: StepContext,
  step: SequenceStepRecord,
): Promise<{ step: SequenceStepRecord; waiting?: string }> {
  const cached = s.ctx.store.sync(s.namespace, step.sync);
  if (!cached) return { step: notFound(s, step) };
  let view: RunView | undefined;
  let runId = step.runId;
  if (!runId) {
    const requested = await requestStep(s, step);
    if (!requested) return { step: notFound(s, step) };
    view = requested;
    runId = requested.id;
  } else {
    view = await findRun(s, cached, runId);
  }
  for (let hop = 0; view?.phase === 'Superseded' && hop < MAX_SUPERSEDED_HOPS; hop++) {
    if (!view.supersededBy) break;
    runId = view.supersededBy;
    view = await findRun(s, cached, runId);
  }
  if (!view || view.phase === 'Superseded') return { step: lost(s, { ...step, runId }) };
  return fromView(s, { ...step, runId }, view, cached);
}

/**
 * Requests the step's run with a key of its own (the run and the step): asked again — after a status write
 * that was lost, or by the next leader — it names the same run of the Sync and writes nothing.
 */
async function requestStep(s: StepContext, step: SequenceStepRecord): Promise<RunView | undefined> {
  try {
    const outcome = await requestRun(s.kube, {
      namespace: s.namespace,
      name: step.sync,
      fullResync: step.fullResync ?? false,
      trigger: 'sequence',
      caller: `sequence:${s.sequence}`,
      key: requestKey(`sequence:${s.namespace}/${s.sequence}`, `${s.runId}/${s.index}`),
      now: s.ctx.now,
    });
    return outcome.run;
  } catch (error) {
    if (isSynclineError(error) && error.reason === 'SyncNotFound') return undefined;
    throw error;
  }
}

/** A run of the Sync from the cache, or (the cache may not show a request just made) read live. */
async function findRun(s: StepContext, cached: Sync, runId: string): Promise<RunView | undefined> {
  const view = viewRun(cached, runId);
  if (view) return view;
  const live = await s.kube.getSync(s.namespace, cached.metadata.name);
  return live ? viewRun(live, runId) : undefined;
}

function fromView(
  s: StepContext,
  step: SequenceStepRecord,
  view: RunView,
  sync: Sync,
): { step: SequenceStepRecord; waiting?: string } {
  const times = {
    ...(view.startedAt ? { startedAt: view.startedAt } : {}),
    ...(view.finishedAt ? { finishedAt: view.finishedAt } : {}),
  };
  if (view.phase === 'Pending')
    return {
      step: { ...step, phase: 'Pending' },
      waiting: `${label(s, step.sync)}: ${pendingWhy(sync, view)}`,
    };
  if (view.phase === 'Running')
    return {
      step: { ...step, phase: 'Running', ...times },
      waiting: `${label(s, step.sync)}: run ${view.id} is running`,
    };
  const phase = view.phase as StepPhase;
  return {
    step: {
      ...step,
      phase,
      ...times,
      ...(phase !== 'Succeeded' && view.reason ? { reason: view.reason } : {}),
      ...(phase !== 'Succeeded' && view.message ? { message: clip(view.message, 4096) } : {}),
      ...(phase === 'Failed' && !view.reason ? { reason: 'RunFailed' } : {}),
    },
  };
}

/** Why a step's run has not started: its Sync is paused or stalled, or it waits its turn. */
function pendingWhy(sync: Sync, view: RunView): string {
  const name = sync.metadata.name;
  if (sync.spec.paused)
    return `the Sync ${name} is paused: its run ${view.id} waits until its spec.paused is false`;
  const stalled = sync.status?.conditions?.find((c) => c.type === 'Stalled' && c.status === 'True');
  if (stalled)
    return `the Sync ${name} is Stalled (${stalled.reason}: ${stalled.message}): its run ${view.id} waits for the fix`;
  return `run ${view.id} of the Sync is pending`;
}

function notFound(s: StepContext, step: SequenceStepRecord): SequenceStepRecord {
  return failedStep(s, step, {
    reason: 'SequenceStepNotFound',
    message: `no Sync ${step.sync} in namespace ${s.namespace}: create it, or fix spec.steps[${s.index}].sync of the Sequence`,
  });
}

function lost(s: StepContext, step: SequenceStepRecord): SequenceStepRecord {
  return failedStep(s, step, {
    reason: 'SequenceStepRunLost',
    message: `the Sync ${step.sync} no longer knows run ${step.runId ?? '(none)'} (past its historyLimit, or the Sync was recreated); its result is unknown`,
  });
}

function failedStep(
  s: StepContext,
  step: SequenceStepRecord,
  problem: { reason: string; message: string },
): SequenceStepRecord {
  return { ...step, phase: 'Failed', finishedAt: s.ctx.now().toISOString(), ...problem };
}

/**
 * The run once every step is final: Failed when a step with onFailure stop failed (its reason, a message
 * naming it); PartiallySucceeded when a step partially succeeded or failed with onFailure continue;
 * Succeeded otherwise. It finished when its last step did.
 */
export function finishedRun(run: SequenceRunRecord, now: Date): SequenceRunRecord {
  const count = run.steps.length;
  const at = (i: number) => `step ${i + 1} of ${count} (${run.steps[i]?.sync})`;
  const times = run.steps.map((s) => Date.parse(s.finishedAt ?? '')).filter((t) => !Number.isNaN(t));
  const finishedAt = new Date(times.length ? Math.max(...times) : now.getTime()).toISOString();
  const stop = run.steps.findIndex(stopsRun);
  if (stop >= 0) {
    const step = run.steps[stop] as SequenceStepRecord;
    const skipped = count - stop - 1;
    const rest = skipped > 0 ? `; the ${skipped} step(s) after it did not run` : '';
    const message = `${at(stop)} failed: ${step.message ?? step.reason ?? 'no message'}${rest}`;
    return {
      ...run,
      finishedAt,
      result: 'Failed',
      reason: step.reason ?? 'RunFailed',
      message: clip(message, 4096),
    };
  }
  const partial = run.steps.flatMap((s, i) =>
    s.phase === 'Failed' || s.phase === 'PartiallySucceeded'
      ? [
          `${at(i)} ${s.phase === 'Failed' ? 'failed (onFailure: continue)' : 'partially succeeded'}${s.reason ? `: ${s.reason}` : ''}`,
        ]
      : [],
  );
  if (partial.length > 0)
    return { ...run, finishedAt, result: 'PartiallySucceeded', message: clip(partial.join('; '), 4096) };
  return { ...run, finishedAt, result: 'Succeeded', message: `all ${count} step(s) succeeded` };
}
