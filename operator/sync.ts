import type { V1Job } from '@kubernetes/client-node';
import type { Condition, RunRecord, Sync, SyncStatus } from '../crds/index.ts';
import type { RunSummary } from '../core/summary.ts';
import { describeError } from '../core/errors.ts';
import {
  applyConditionSet,
  readyTransition,
  setCondition,
  RUNNING,
  type ConditionSet,
} from './conditions.ts';
import { statusPatch } from './cluster.ts';
import type { ReconcileContext } from './context.ts';
import {
  buildRunJob,
  COMPONENT_LABEL,
  FULL_RESYNC_ANNOTATION,
  RUN_KEY_LABEL,
  runJobName,
  STARTED_AT_ANNOTATION,
  SYNC_LABEL,
  TRIGGER_ANNOTATION,
} from './jobs.ts';
import { jobOutcome, runRecordFromOutcome, type PodProblem } from './results.ts';
import type { ReconcileResult } from './runtime/controller.ts';
import { buildRunPlan } from './run-plan.ts';
import { runnerDiffStore } from './runner-policy.ts';
import { decide, RESYNC_REQUESTED_ANNOTATION, type RunStart, type RunTrigger } from './schedule.ts';
import { finalizeSync, SNAPSHOT_FINALIZER } from './finalizer.ts';
import { readFullRunSummary } from './run-summaries.ts';
import { validateSync, type SyncReferences, type Verdict } from './validation.ts';

interface FinishedRun {
  record: RunRecord;
  summary?: RunSummary;
}

const TRIGGERS: readonly RunTrigger[] = ['schedule', 'manual', 'dependency', 'resync'];

function creationMs(job: V1Job): number {
  return new Date(String(job.metadata?.creationTimestamp ?? 0)).getTime();
}

/** The status record of a run whose Job exists but which status does not know (a lost status write). */
function recordFromJob(job: V1Job): RunRecord {
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

function ownedBy(job: V1Job, sync: Sync): boolean {
  return (job.metadata?.ownerReferences ?? []).some((o) => o.uid === sync.metadata.uid);
}

/** The references of a Sync, from the informers' caches. */
async function references(ctx: ReconcileContext, sync: Sync): Promise<SyncReferences> {
  const namespace = sync.metadata.namespace ?? 'default';
  const destination = ctx.store.destination(namespace, sync.spec.destinationRef.name);
  const refs: SyncReferences = {
    model: ctx.store.model(namespace, sync.spec.modelRef.name),
    destination,
    dependencies: (sync.spec.dependsOn ?? []).map((d) => ({
      name: d.name,
      sync: ctx.store.sync(namespace, d.name),
    })),
    lookupSync: (name) => ctx.store.sync(namespace, name),
  };
  if (destination) {
    try {
      refs.capabilities = await ctx.capabilities(destination.spec.type);
    } catch (error) {
      refs.capabilitiesError = error;
    }
  }
  return refs;
}

/** Ready, Reconciling and Stalled of a Sync, from its validation and its runs. */
export function syncConditions(input: {
  verdict: Verdict;
  primaryKeyChanged: boolean;
  planError?: { reason: string; message: string };
  paused: boolean;
  active: RunRecord | undefined;
  lastRun: RunRecord | undefined;
  nextRunAt: string | undefined;
}): ConditionSet {
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
  if (lastRun?.result === 'Failed') {
    return {
      ready: {
        status: 'False',
        reason: lastRun.reason ?? 'RunFailed',
        message: `run ${lastRun.id} failed: ${lastRun.message ?? 'no message'}`,
      },
    };
  }
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
 * Reconciles a Sync: records the result of a finished run, validates the Sync against what it
 * references, decides whether a run starts now (schedule, annotations, dependsOn; one active run),
 * starts it as a Job, and writes status only when something changed.
 */
export async function reconcileSync(ctx: ReconcileContext, sync: Sync): Promise<ReconcileResult> {
  const namespace = sync.metadata.namespace ?? 'default';
  const name = sync.metadata.name;
  if (sync.metadata.deletionTimestamp) return finalizeSync(ctx, sync);
  ctx.metrics.syncSeen(namespace, name, sync.status?.lastSuccessfulRunAt);
  // The finalizer is needed only to delete snapshots; with retain, deletion needs no help from us.
  const finalizers = sync.metadata.finalizers ?? [];
  const wantsFinalizer = sync.spec.snapshotPolicy === 'delete';
  if (wantsFinalizer !== finalizers.includes(SNAPSHOT_FINALIZER)) {
    const nextFinalizers = wantsFinalizer
      ? [...finalizers, SNAPSHOT_FINALIZER]
      : finalizers.filter((f) => f !== SNAPSHOT_FINALIZER);
    // The update event of this write brings the Sync back to the queue.
    await ctx.cluster.setFinalizers('syncs', namespace, name, nextFinalizers, sync.metadata.resourceVersion);
    return;
  }

  const now = ctx.now();
  const status: SyncStatus = sync.status ?? {};
  const next: SyncStatus = { ...status };
  const generation = sync.metadata.generation;
  const historyLimit = sync.spec.historyLimit ?? 10;
  const jobs = ctx.store
    .jobs(namespace, { [COMPONENT_LABEL]: 'run', [SYNC_LABEL]: name })
    .filter((j) => ownedBy(j, sync));
  const finished: FinishedRun[] = [];
  const warnings: { reason: string; message: string }[] = [];
  let requeueAfterMs: number | undefined;
  let activeKey: string | undefined;
  let podStarted = false;
  const deleteAfterWrite: string[] = [];

  const finish = (run: FinishedRun) => {
    finished.push(run);
    next.lastRun = run.record;
    next.history = [run.record, ...(next.history ?? []).filter((r) => r.id !== run.record.id)].slice(
      0,
      historyLimit,
    );
    if (run.record.result !== 'Failed' && run.record.finishedAt)
      next.lastSuccessfulRunAt = run.record.finishedAt;
    if (run.summary?.modelFingerprint) next.modelFingerprint = run.summary.modelFingerprint;
    delete next.activeRun;
  };

  // 1. The active run: still going, stuck before its container started, or finished.
  let active = next.activeRun;
  if (active?.job) {
    // A cache miss right after creation is normal (the watch lags), and a deletion the informer reported may
    // be a relist's guess: the API server decides whether the Job is gone.
    const job =
      jobs.find((j) => j.metadata?.name === active?.job) ?? (await ctx.cluster.getJob(namespace, active.job));
    const live = job ? undefined : await ctx.cluster.getObject('syncs', namespace, name);
    const liveVersion = (live?.['metadata'] as { resourceVersion?: string } | undefined)?.resourceVersion;
    if (!job && live && liveVersion !== sync.metadata.resourceVersion) {
      // The cache is behind a status write (one that may have finished this run and removed its Job on
      // purpose): reconcile from the newer state rather than record a deletion that was the operator's own.
      return { requeueAfterMs: 100 };
    }
    if (!job) {
      // A run whose pod was stuck on a known problem (a missing Secret key, an image that cannot be pulled)
      // failed of that problem, whoever removed its Job: that is what a person can act on.
      const deleted = `the Job ${active.job} of the run was deleted before it finished; the next run re-sends what may be missing`;
      finish({
        record: {
          ...active,
          finishedAt: now.toISOString(),
          result: 'Failed',
          reason: active.reason ?? 'JobDeleted',
          message: active.reason ? `${active.message ?? active.reason} (${deleted})` : deleted,
        },
      });
    } else {
      const outcome = jobOutcome(job, ctx.store.podsOfJob(namespace, active.job), active);
      activeKey = job.metadata?.labels?.[RUN_KEY_LABEL];
      if (outcome.state === 'finished') {
        finish(runRecordFromOutcome(active, outcome));
      } else {
        podStarted = ctx.store
          .podsOfJob(namespace, active.job)
          .some((p) => p.status?.containerStatuses?.some((c) => c.state?.running || c.state?.terminated));
        const age = now.getTime() - creationMs(job);
        const problem: PodProblem | undefined = outcome.problem;
        if (problem?.stuck && age >= ctx.config.podStartTimeoutMs) {
          // Deleted only after the failure is in status, so that a retry never sees "JobDeleted" instead.
          deleteAfterWrite.push(active.job);
          finish({
            record: {
              ...active,
              finishedAt: now.toISOString(),
              result: 'Failed',
              reason: problem.reason,
              message: `${problem.message} (the runner pod could not start for ${Math.round(age / 1000)} s, so the run was stopped)`,
            },
          });
        } else if (problem) {
          if (active.reason !== problem.reason)
            warnings.push({ reason: problem.reason, message: problem.message });
          active = { ...active, reason: problem.reason, message: problem.message };
          next.activeRun = active;
          if (problem.stuck) requeueAfterMs = Math.max(1000, ctx.config.podStartTimeoutMs - age);
        } else if (active.reason) {
          const { reason: _reason, message: _message, ...rest } = active;
          active = rest;
          next.activeRun = active;
        }
      }
    }
  }
  if (finished.length > 0) active = undefined;
  if (!active) {
    // A Job that runs while status does not know it (the status write after its creation was lost).
    // Not a run that status records as finished (this reconcile's included): the stuck-pod path deletes
    // its Job only after writing the failure, and the Job cache may learn of that deletion after the
    // Sync's cache learns of the write. Adopting that Job again would end its run a second time, as
    // JobDeleted, over the failure that was recorded.
    const finishedJobs = new Set(
      [next.lastRun, ...(next.history ?? [])].map((r) => r?.job).filter((j) => j !== undefined),
    );
    const orphan = jobs.find(
      (j) => !finishedJobs.has(j.metadata?.name ?? '') && jobOutcome(j, []).state === 'active',
    );
    if (orphan) {
      active = recordFromJob(orphan);
      activeKey = orphan.metadata?.labels?.[RUN_KEY_LABEL];
      next.activeRun = active;
    }
  }

  // 2. Validation beyond the schema.
  const refs = await references(ctx, sync);
  const verdict = validateSync(sync, refs, ctx.config);
  const primaryKeyChanged = next.lastRun?.reason === 'PrimaryKeyChanged';
  const resyncRequest = sync.metadata.annotations?.[RESYNC_REQUESTED_ANNOTATION];
  const resyncPending = !!resyncRequest && resyncRequest !== next.handledResyncRequest;

  // 3. Schedule.
  const decision = decide({
    now,
    createdAt: new Date(sync.metadata.creationTimestamp ?? now.toISOString()),
    schedule: sync.spec.schedule,
    paused: sync.spec.paused ?? false,
    annotations: sync.metadata.annotations,
    status: next,
    active: !!active,
    ...(activeKey ? { activeKey } : {}),
    blocked: !verdict.ok || (primaryKeyChanged && !resyncPending),
    ...(sync.spec.dependsOn?.length
      ? {
          dependencies: refs.dependencies.map((d) => ({
            name: d.name,
            ...(d.sync?.status?.lastSuccessfulRunAt
              ? { lastSuccessfulRunAt: d.sync.status.lastSuccessfulRunAt }
              : {}),
          })),
        }
      : {}),
  });
  next.schedule = decision.text;
  if (decision.nextRunAt) next.nextRunAt = decision.nextRunAt.toISOString();
  else delete next.nextRunAt;
  if (decision.skipped > 0) {
    next.skippedRuns = (next.skippedRuns ?? 0) + decision.skipped;
    warnings.push({
      reason: 'RunSkipped',
      message: `a scheduled run came due while run ${active?.id ?? ''} was still active; it was skipped`,
    });
  }
  let planError: { reason: string; message: string } | undefined;
  let started: { start: RunStart; created: boolean } | undefined;
  const startRunId = decision.start ? runJobName(name, decision.start.key) : undefined;
  if (decision.start && startRunId && ctx.store.jobDeleted(namespace, startRunId)) {
    // This run's Job was created and deleted before its start reached status (a deferred or lost
    // write): the run happened. Creating the Job again would run it twice.
    finish({
      record: {
        id: startRunId,
        job: startRunId,
        trigger: decision.start.trigger,
        fullResync: decision.start.fullResync,
        startedAt: now.toISOString(),
        finishedAt: now.toISOString(),
        result: 'Failed',
        reason: 'JobDeleted',
        message: `the Job ${startRunId} of the run was deleted before its start was recorded; the next run re-sends what may be missing`,
      },
    });
    next.handledRunRequest = decision.handledRunRequest;
    next.handledResyncRequest = decision.handledResyncRequest;
  } else if (decision.start && startRunId && refs.model && refs.destination) {
    const source = ctx.store.source(namespace, refs.model.spec.sourceRef.name);
    const start = decision.start;
    const runId = startRunId;
    try {
      if (!source) throw new Error(`Source "${refs.model.spec.sourceRef.name}" disappeared`);
      const plan = buildRunPlan({
        runId,
        sync,
        model: refs.model,
        source,
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
      active = {
        id: runId,
        job: runId,
        trigger: start.trigger,
        fullResync: start.fullResync,
        startedAt: created ? now.toISOString() : recordFromJob(job).startedAt,
      };
      next.activeRun = active;
      next.handledRunRequest = decision.handledRunRequest;
      next.handledResyncRequest = decision.handledResyncRequest;
      started = { start, created };
    } catch (error) {
      const described = describeError(error, 'RunNotStarted');
      if (described.reason.startsWith('KubeApi')) throw error;
      planError = described;
    }
  } else {
    next.handledRunRequest = decision.handledRunRequest;
    next.handledResyncRequest = decision.handledResyncRequest;
  }
  if (next.handledRunRequest === undefined) delete next.handledRunRequest;
  if (next.handledResyncRequest === undefined) delete next.handledResyncRequest;

  // 4. Conditions and phase.
  const set = syncConditions({
    verdict,
    primaryKeyChanged: primaryKeyChanged && !started,
    ...(planError ? { planError } : {}),
    paused: sync.spec.paused ?? false,
    active,
    lastRun: next.lastRun,
    nextRunAt: next.nextRunAt,
  });
  let conditions = applyConditionSet(status.conditions, set, generation, now);
  conditions = setCondition(conditions, runningCondition(active), generation, now);
  next.conditions = conditions;
  next.observedGeneration = generation;
  if (active) next.phase = podStarted ? 'Querying' : 'Pending';
  else if (next.lastRun) next.phase = next.lastRun.result === 'Failed' ? 'Failed' : 'Succeeded';
  else next.phase = 'Pending';

  // 5. Write status when something changed; count and announce only what was written.
  // A scheduled run of a Sync whose status is otherwise current starts with the Job alone: its start
  // reaches status when the Job's watch event brings the Sync back (the Job is adopted from the cache,
  // with its start time from an annotation). When a thousand Syncs come due in the same second, one
  // write each instead of two is what keeps the runs on time. A Job deleted before that write is known
  // from its tombstone and never created again; a lost event is made up by the next reconcile, where
  // the due slot's create finds the Job (a no-op) and writes status.
  const deferStart =
    started?.created === true &&
    started.start.trigger === 'schedule' &&
    finished.length === 0 &&
    warnings.length === 0 &&
    !planError &&
    status.observedGeneration === generation &&
    status.activeRun === undefined;
  const patch = deferStart
    ? undefined
    : statusPatch(status as Record<string, unknown>, next as Record<string, unknown>);
  if (patch) await ctx.cluster.patchStatus('syncs', namespace, name, patch, sync.metadata.resourceVersion);
  for (const job of deleteAfterWrite) await ctx.cluster.deleteJob(namespace, job);

  if (started?.created) {
    const latenessMs = Math.max(0, now.getTime() - started.start.scheduledAt.getTime());
    ctx.log.info(
      {
        run: active?.id,
        trigger: started.start.trigger,
        scheduledAt: started.start.scheduledAt.toISOString(),
        latenessMs,
      },
      'run started',
    );
    ctx.events.normal(
      sync,
      'RunStarted',
      `started run ${active?.id} (${started.start.trigger}${started.start.fullResync ? ', full resync' : ''})`,
    );
    if (started.start.trigger === 'schedule') ctx.metrics.scheduleLateness.observe(latenessMs / 1000);
  }
  ctx.metrics.activeRuns.set({ namespace, sync: name }, active ? 1 : 0);
  if (decision.skipped > 0) ctx.metrics.skippedRuns.inc({ namespace, sync: name }, decision.skipped);
  for (const warning of warnings) ctx.events.warning(sync, warning.reason, warning.message);
  for (const run of finished) {
    ctx.metrics.runFinished(namespace, name, run.record, run.summary);
    const counts = run.record.counts;
    const rows = counts
      ? ` (${counts.delivered} delivered, ${counts.failed} failed of ${counts.queried} queried)`
      : '';
    if (run.record.result === 'Succeeded')
      ctx.events.normal(sync, 'RunSucceeded', `run ${run.record.id} succeeded${rows}`);
    else if (run.record.result === 'PartiallySucceeded') {
      ctx.events.warning(
        sync,
        'RunPartiallySucceeded',
        `run ${run.record.id} partially succeeded${rows}: ${run.record.message ?? ''}`,
      );
    } else
      ctx.events.warning(
        sync,
        run.record.reason ?? 'RunFailed',
        `run ${run.record.id} failed: ${run.record.message ?? ''}`,
      );
    await recordModelColumns(ctx, sync, run.summary);
  }
  const transition = readyTransition(status.conditions, next.conditions);
  if (transition && !verdict.ok && transition.status === 'False')
    ctx.events.warning(sync, transition.reason, transition.message);
  if (planError) ctx.events.warning(sync, planError.reason, planError.message);

  // 6. Keep `historyLimit` finished Jobs; older ones go (the TTL controller is the backstop).
  const done = jobs
    .filter((j) => j.metadata?.name !== active?.job && jobOutcome(j, []).state === 'finished')
    .sort((a, b) => creationMs(b) - creationMs(a));
  for (const old of done.slice(historyLimit))
    await ctx.cluster.deleteJob(namespace, old.metadata?.name ?? '');

  const delays = [decision.requeueAfterMs, requeueAfterMs].filter((d): d is number => d !== undefined);
  if (delays.length === 0) return;
  // Wake up right at the slot; a few ms late is better than a few ms early, which would only requeue.
  return { requeueAfterMs: Math.max(1, Math.min(...delays) + 5) };
}

/**
 * Copies the columns a run saw into the Model's status, so mappings can be checked against them. The
 * termination message has no columns; when the fingerprint changed, the full summary is read from the
 * diff store.
 */
async function recordModelColumns(
  ctx: ReconcileContext,
  sync: Sync,
  compact: RunSummary | undefined,
): Promise<void> {
  if (!compact) return;
  const namespace = sync.metadata.namespace ?? 'default';
  const model = ctx.store.model(namespace, sync.spec.modelRef.name);
  if (!model) return;
  const known = model.status?.columns?.length ? model.status.fingerprint : undefined;
  if (compact.modelFingerprint && known === compact.modelFingerprint) return;
  const summary = compact.columns.length > 0 ? compact : await readFullRunSummary(ctx, sync, compact.runId);
  if (!summary || summary.columns.length === 0) return;
  const before = { columns: model.status?.columns, fingerprint: model.status?.fingerprint };
  const after = {
    columns: summary.columns.slice(0, 2000),
    ...(summary.modelFingerprint
      ? { fingerprint: summary.modelFingerprint }
      : { fingerprint: before.fingerprint }),
  };
  const patch = statusPatch(before, after);
  if (patch)
    await ctx.cluster.patchStatus(
      'models',
      namespace,
      model.metadata.name,
      patch,
      model.metadata.resourceVersion,
    );
}
