import { runsAfter, type RunRecord, type Sync, type SyncStatus } from '../crds/index.ts';
import { describeError } from '../core/errors.ts';
import type { ReconcileContext } from './context.ts';
import { buildRunJob, runJobName } from './jobs.ts';
import { segmentRunModel } from './model-segment.ts';
import { buildRunPlan } from './run-plan.ts';
import { runnerDiffStore } from './runner-policy.ts';
import {
  decide,
  transientRetry,
  type DependencyState,
  type RunStart,
  type ScheduleDecision,
} from './schedule.ts';
import { ownedBy, recordFromJob, type FinishedRun, type SyncRun, type Warning } from './sync-run.ts';
import type { SyncReferences } from './validation.ts';

/** The references of a Sync, from the informers' caches, and its destination's capabilities. */
export async function references(
  ctx: Pick<ReconcileContext, 'store' | 'capabilities' | 'destinationObjects'>,
  sync: Sync,
): Promise<SyncReferences> {
  const namespace = sync.metadata.namespace ?? 'default';
  const destination = ctx.store.destination(namespace, sync.spec.destinationRef.name);
  const refs: SyncReferences = {
    model: ctx.store.model(namespace, sync.spec.modelRef.name),
    destination,
    dependencies: (runsAfter(sync.spec)?.names ?? []).map((name) => ({
      name,
      sync: ctx.store.sync(namespace, name),
    })),
    lookupSync: (name) => ctx.store.sync(namespace, name),
  };
  if (destination) {
    try {
      refs.capabilities = await ctx.capabilities(destination.spec.type);
    } catch (error) {
      refs.capabilitiesError = error;
    }
    const objects = await ctx.destinationObjects(destination);
    if (objects) refs.objects = objects;
  }
  return refs;
}

/** Whether a run is due now (schedule, annotations, afterSyncs/dependsOn), given the active run and what blocks. */
export function scheduleDecision(
  run: SyncRun,
  input: {
    status: SyncStatus;
    active: boolean;
    activeKey?: string;
    blocked: boolean;
    refs: SyncReferences;
  },
): ScheduleDecision {
  const { sync, now } = run;
  const retry = transientRetry(input.status);
  const after = runsAfter(sync.spec);
  return decide({
    now,
    createdAt: new Date(sync.metadata.creationTimestamp ?? now.toISOString()),
    schedule: sync.spec.schedule,
    paused: sync.spec.paused ?? false,
    annotations: sync.metadata.annotations,
    status: input.status,
    active: input.active,
    ...(input.activeKey ? { activeKey: input.activeKey } : {}),
    blocked: input.blocked,
    ...(retry ? { retry } : {}),
    ...(after ? { dependencies: dependencyStates(input.refs), dependenciesOnFailure: after.onFailure } : {}),
  });
}

/** What the schedule needs of each Sync this one runs after: its last success and its last finish. */
function dependencyStates(refs: SyncReferences): DependencyState[] {
  return refs.dependencies.map((d) => {
    const status = d.sync?.status;
    return {
      name: d.name,
      ...(status?.lastSuccessfulRunAt ? { lastSuccessfulRunAt: status.lastSuccessfulRunAt } : {}),
      ...(status?.lastRun?.finishedAt ? { lastFinishedRunAt: status.lastRun.finishedAt } : {}),
    };
  });
}

/** The status with the decision's schedule text, next slot and skipped runs. */
export function withDecision(status: SyncStatus, decision: ScheduleDecision): SyncStatus {
  const next: SyncStatus = { ...status, schedule: decision.text };
  if (decision.nextRunAt) next.nextRunAt = decision.nextRunAt.toISOString();
  else delete next.nextRunAt;
  if (decision.skipped > 0) next.skippedRuns = (next.skippedRuns ?? 0) + decision.skipped;
  return next;
}

export function skippedWarning(active: RunRecord | undefined): Warning {
  return {
    reason: 'RunSkipped',
    message: `a scheduled run came due while run ${active?.id ?? ''} was still active; it was skipped`,
  };
}

/** What starting the due run did. */
export interface StartOutcome {
  /** The run now active, with whether this reconcile created its Job (false: adopted an existing one). */
  started?: { start: RunStart; created: boolean; active: RunRecord };
  /** The run happened already: its Job was created and deleted before its start reached status. */
  finished?: FinishedRun;
  /** The run could not start for a reason a person must fix (its plan, a foreign Job of its name). */
  planError?: { reason: string; message: string };
  /** Whether the due requests count as handled (false when they must wait: the run did not start). */
  handled: boolean;
}

/**
 * Starts the run the schedule decided on, as a Job with a deterministic name: a second create (a retry,
 * another replica) adopts the Job instead of running twice. API errors are thrown (the key is retried).
 */
export async function startRun(
  ctx: Pick<ReconcileContext, 'store' | 'cluster' | 'config'>,
  run: SyncRun,
  start: RunStart | undefined,
  refs: SyncReferences,
): Promise<StartOutcome> {
  if (!start) return { handled: true };
  const { sync, namespace, name, now } = run;
  const runId = runJobName(name, start.key);
  if (ctx.store.jobDeleted(namespace, runId)) {
    // This run's Job was created and deleted before its start reached status (a deferred or lost
    // write): the run happened. Creating the Job again would run it twice.
    const at = now.toISOString();
    const record: RunRecord = {
      ...{ id: runId, job: runId, trigger: start.trigger, fullResync: start.fullResync },
      ...{ startedAt: at, finishedAt: at, result: 'Failed', reason: 'JobDeleted' },
      message: `the Job ${runId} of the run was deleted before its start was recorded; the next run re-sends what may be missing`,
    };
    return { finished: { record }, handled: true };
  }
  if (!refs.model || !refs.destination) return { handled: true };
  try {
    const source = ctx.store.source(namespace, refs.model.spec.sourceRef.name);
    if (!source) throw new Error(`Source "${refs.model.spec.sourceRef.name}" disappeared`);
    const biRef = (refs.model.spec.metabase ?? refs.model.spec.looker)?.sourceRef;
    const biSource = biRef ? ctx.store.source(namespace, biRef.name) : undefined;
    if (biRef && !biSource) throw new Error(`Source "${biRef.name}" (the Model's BI tool) does not exist`);
    const plan = buildRunPlan({
      runId,
      sync,
      model: segmentRunModel(refs.model, ctx.store),
      source,
      ...(biSource ? { biSource } : {}),
      destination: refs.destination,
      start,
      diffStore: runnerDiffStore(ctx.config, sync),
      ...(ctx.config.runner.memoryLimit ? { memoryLimit: ctx.config.runner.memoryLimit } : {}),
    });
    const { created, job } = await ctx.cluster.createJob(
      buildRunJob({ sync, plan, start, config: ctx.config, startedAt: now }),
    );
    if (!ownedBy(job, sync)) {
      throw new Error(`a Job named ${runId} exists that does not belong to this Sync; delete it`);
    }
    const active: RunRecord = {
      id: runId,
      job: runId,
      trigger: start.trigger,
      fullResync: start.fullResync,
      startedAt: created ? now.toISOString() : recordFromJob(job).startedAt,
    };
    return { started: { start, created, active }, handled: true };
  } catch (error) {
    const described = describeError(error, 'RunNotStarted');
    if (described.reason.startsWith('KubeApi')) throw error;
    return { planError: described, handled: false };
  }
}
