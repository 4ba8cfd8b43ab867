import { DEFAULT_HISTORY_LIMIT, type Sync } from '../crds/index.ts';
import { isTransientReason } from '../core/reasons.ts';
import type { ReconcileContext } from './context.ts';
import { COMPONENT_LABEL, runJobName, SYNC_LABEL } from './jobs.ts';
import type { ReconcileResult } from './runtime/controller.ts';
import { RESYNC_REQUESTED_ANNOTATION } from './schedule.ts';
import { finalizeSync, SNAPSHOT_FINALIZER } from './finalizer.ts';
import { activeRunStatus, CACHE_BEHIND, observeActiveRun } from './sync-active.ts';
import { announce, readyReasonOf } from './sync-announce.ts';
import { pruneHistory, withFinishedRun } from './sync-history.ts';
import { ownedBy, type FinishedRun, type SyncRun, type Warning } from './sync-run.ts';
import { references, scheduleDecision, skippedWarning, startRun, withDecision } from './sync-start.ts';
import { defersStart, syncConditions, writeSyncStatus } from './sync-status.ts';
import { unmappedRequiredFields, validateSync } from './validation.ts';
import { busyMessage, destinationBusy, maxConcurrentRuns } from './destination-runs.ts';

/** How often a run waiting for its Destination checks again when no Job event brought it back. */
const BUSY_RECHECK_MS = 30_000;

export { syncConditions } from './sync-status.ts';

/**
 * Adds or removes the snapshot finalizer as `snapshotPolicy` asks; true when it wrote (the update event of
 * that write brings the Sync back to the queue). With retain, deletion needs no help from us.
 */
async function ensureFinalizer(ctx: ReconcileContext, sync: Sync): Promise<boolean> {
  const finalizers = sync.metadata.finalizers ?? [];
  const wantsFinalizer = sync.spec.snapshotPolicy === 'delete';
  if (wantsFinalizer === finalizers.includes(SNAPSHOT_FINALIZER)) return false;
  const next = wantsFinalizer
    ? [...finalizers, SNAPSHOT_FINALIZER]
    : finalizers.filter((f) => f !== SNAPSHOT_FINALIZER);
  const namespace = sync.metadata.namespace ?? 'default';
  await ctx.cluster.setFinalizers(
    'syncs',
    namespace,
    sync.metadata.name,
    next,
    sync.metadata.resourceVersion,
  );
  return true;
}

/**
 * Reconciles a Sync: records the result of a finished run (sync-active.ts), validates the Sync against
 * what it references, decides whether a run starts now and starts it as a Job (sync-start.ts), writes
 * status only when something changed (sync-status.ts), then announces it (sync-announce.ts) and trims
 * the Jobs kept (sync-history.ts).
 */
export async function reconcileSync(ctx: ReconcileContext, sync: Sync): Promise<ReconcileResult> {
  const namespace = sync.metadata.namespace ?? 'default';
  const name = sync.metadata.name;
  if (sync.metadata.deletionTimestamp) return finalizeSync(ctx, sync);
  ctx.metrics.syncSeen(namespace, name, sync.status?.lastSuccessfulRunAt);
  if (await ensureFinalizer(ctx, sync)) return;
  const run: SyncRun = {
    sync,
    namespace,
    name,
    now: ctx.now(),
    status: sync.status ?? {},
    jobs: ctx.store
      .jobs(namespace, { [COMPONENT_LABEL]: 'run', [SYNC_LABEL]: name })
      .filter((j) => ownedBy(j, sync)),
    historyLimit: sync.spec.historyLimit ?? DEFAULT_HISTORY_LIMIT,
  };

  // The active run: still going, stuck before its container started, or finished.
  const observed = await observeActiveRun(ctx, run);
  if (observed === CACHE_BEHIND) return { requeueAfterMs: 100 };
  const finished: FinishedRun[] = observed.finished ? [observed.finished] : [];
  const warnings: Warning[] = observed.warning ? [observed.warning] : [];
  const state = activeRunStatus(run, observed);
  const activeKey = state.activeKey;
  let { next, active } = state;

  // Validation beyond the schema, and whether (and when) a run is due.
  const refs = await references(ctx, sync);
  const verdict = validateSync(sync, refs, ctx.config);
  const primaryKeyChanged = next.lastRun?.reason === 'PrimaryKeyChanged';
  const resyncRequest = sync.metadata.annotations?.[RESYNC_REQUESTED_ANNOTATION];
  const resyncPending = !!resyncRequest && resyncRequest !== next.handledResyncRequest;
  const blocked = !verdict.ok || (primaryKeyChanged && !resyncPending);
  const decide = (busyNow: boolean) =>
    scheduleDecision(run, {
      status: next,
      active: !!active,
      ...(activeKey ? { activeKey } : {}),
      blocked: blocked || busyNow,
      refs,
    });
  let decision = decide(false);

  // A due run waits while the Destination has maxConcurrentRuns runs of other Syncs (kept pending, as
  // for a blocked Sync: it starts when one ends, which brings this Sync back).
  const destinationKey = `${namespace}/${sync.spec.destinationRef.name}`;
  const busy =
    decision.start && refs.destination
      ? destinationBusy(ctx, sync, refs.destination, refs.capabilities, run.now)
      : undefined;
  if (busy) {
    decision = decide(true);
    ctx.runs.wait(destinationKey, `${namespace}/${name}`);
  } else ctx.runs.stopWaiting(destinationKey, `${namespace}/${name}`);
  next = withDecision(next, decision);
  if (decision.skipped > 0) warnings.push(skippedWarning(active));

  // Starting the due run; a bounded Destination counts it before its Job reaches the cache.
  const start = decision.start;
  const bounded =
    start && refs.destination && maxConcurrentRuns(refs.destination, refs.capabilities) !== undefined;
  const runJob = start ? runJobName(name, start.key) : '';
  if (bounded) ctx.runs.reserve(destinationKey, { sync: name, job: runJob }, run.now.getTime());
  const outcome = await startRun(ctx, run, start, refs);
  if (bounded && !outcome.started) ctx.runs.release(destinationKey, runJob);
  if (outcome.started?.created) {
    const unmapped = unmappedRequiredFields(sync, refs.objects);
    if (unmapped) warnings.push(unmapped);
  }
  if (outcome.finished) {
    finished.push(outcome.finished);
    next = withFinishedRun(next, outcome.finished, run.historyLimit);
  }
  if (outcome.started) next.activeRun = active = outcome.started.active;
  if (outcome.handled) {
    next.handledRunRequest = decision.handledRunRequest;
    next.handledResyncRequest = decision.handledResyncRequest;
  }
  if (next.handledRunRequest === undefined) delete next.handledRunRequest;
  if (next.handledResyncRequest === undefined) delete next.handledResyncRequest;

  // Status, then what to announce of it (a run's own Event makes a second one for Ready needless).
  const { planError, started } = outcome;
  const set = syncConditions({
    verdict,
    primaryKeyChanged: primaryKeyChanged && !started,
    ...(planError ? { planError } : {}),
    paused: sync.spec.paused ?? false,
    active,
    lastRun: next.lastRun,
    nextRunAt: next.nextRunAt,
    retryAt: decision.retryAt?.toISOString(),
    busy: busy
      ? { reason: 'DestinationBusy', message: busyMessage(sync.spec.destinationRef.name, busy) }
      : undefined,
  });
  const announcesAnything = finished.length > 0 || warnings.length > 0 || !!planError;
  await writeSyncStatus(ctx, run, {
    next,
    set,
    active,
    podStarted: observed.podStarted,
    defer: defersStart(run, {
      created: !!started?.created,
      trigger: started?.start.trigger,
      announcesAnything,
    }),
    announced: finished.map((f) => readyReasonOf(f.record)),
  });
  for (const job of observed.deleteAfterWrite) await ctx.cluster.deleteJob(namespace, job);
  await announce(ctx, run, {
    ...(started ? { started } : {}),
    active,
    finished,
    warnings,
    skipped: decision.skipped,
  });
  await pruneHistory(ctx.cluster, run, active?.job);

  // No event follows a capability probe that gave no answer: re-probe with backoff.
  if (!verdict.ok && refs.capabilitiesError && isTransientReason(verdict.reason))
    return { requeueWithBackoff: true };
  // A waiting run is brought back by the end of a run it waits for; this is the safety net.
  const delays = [
    decision.requeueAfterMs,
    observed.requeueAfterMs,
    busy ? BUSY_RECHECK_MS : undefined,
  ].filter((d) => d !== undefined);
  if (delays.length === 0) return;
  // Wake up right at the slot; a few ms late is better than a few ms early, which would only requeue.
  return { requeueAfterMs: Math.max(1, Math.min(...delays) + 5) };
}
