import type { RunRecord, Sync } from '../crds/index.ts';
import type { RunSummary } from '../core/summary.ts';
import { statusPatch } from './cluster.ts';
import type { ReconcileContext } from './context.ts';
import { segmentMembers } from './model-segment.ts';
import { readFullRunSummary } from './run-summaries.ts';
import type { RunStart } from './schedule.ts';
import type { FinishedRun, SyncRun, Warning } from './sync-run.ts';

/** What a reconcile of a Sync tells the world after its status is written: Events and metrics. */
export interface Announcement {
  started?: { start: RunStart; created: boolean; active: RunRecord };
  active: RunRecord | undefined;
  finished: FinishedRun[];
  warnings: Warning[];
  skipped: number;
}

/** The Ready reason a finished run leads to: its own Event says it, so the status writer adds none. */
export function readyReasonOf(record: RunRecord): string {
  if (record.result === 'Succeeded') return 'Succeeded';
  if (record.result === 'PartiallySucceeded') return 'PartiallySucceeded';
  return record.reason ?? 'RunFailed';
}

/** Reasons a successful run may give (runner/stages/snapshot-location.ts), and the Event each makes. */
const SUCCESS_NOTICES: Record<string, 'Normal' | 'Warning'> = {
  SnapshotMoved: 'Normal',
  WarehouseSnapshotLost: 'Warning',
};

/** The Event of a finished run: RunSucceeded, RunPartiallySucceeded, or its failure's reason. */
export function runEvent(record: RunRecord): { type: 'Normal' | 'Warning'; reason: string; message: string } {
  const counts = record.counts;
  const rows = counts
    ? ` (${counts.delivered} delivered, ${counts.failed} failed of ${counts.queried} queried)`
    : '';
  if (record.result === 'Succeeded' && record.reason !== undefined && record.reason in SUCCESS_NOTICES) {
    const message = `run ${record.id} succeeded${rows}: ${record.message ?? ''}`;
    return { type: SUCCESS_NOTICES[record.reason] ?? 'Normal', reason: record.reason, message };
  }
  if (record.result === 'Succeeded')
    return { type: 'Normal', reason: 'RunSucceeded', message: `run ${record.id} succeeded${rows}` };
  if (record.result === 'PartiallySucceeded') {
    const message = `run ${record.id} partially succeeded${rows}: ${record.message ?? ''}`;
    return { type: 'Warning', reason: 'RunPartiallySucceeded', message };
  }
  const message = `run ${record.id} failed: ${record.message ?? ''}`;
  return { type: 'Warning', reason: record.reason ?? 'RunFailed', message };
}

/** Events and metrics of what was written: a started run, warnings, finished runs (and their columns). */
export async function announce(ctx: ReconcileContext, run: SyncRun, what: Announcement): Promise<void> {
  const { sync, namespace, name, now } = run;
  const started = what.started;
  if (started?.created) {
    const latenessMs = Math.max(0, now.getTime() - started.start.scheduledAt.getTime());
    const scheduledAt = started.start.scheduledAt.toISOString();
    ctx.log.info(
      { run: started.active.id, trigger: started.start.trigger, scheduledAt, latenessMs },
      'run started',
    );
    const full = started.start.fullResync ? ', full resync' : '';
    ctx.events.normal(
      sync,
      'RunStarted',
      `started run ${started.active.id} (${started.start.trigger}${full})`,
    );
    if (started.start.trigger === 'schedule') ctx.metrics.scheduleLateness.observe(latenessMs / 1000);
  }
  ctx.metrics.activeRuns.set({ namespace, sync: name }, what.active ? 1 : 0);
  if (what.skipped > 0) ctx.metrics.skippedRuns.inc({ namespace, sync: name }, what.skipped);
  for (const warning of what.warnings) ctx.events.warning(sync, warning.reason, warning.message);
  for (const finished of what.finished) {
    ctx.metrics.runFinished(namespace, name, finished.record, finished.summary);
    const event = runEvent(finished.record);
    if (event.type === 'Normal') ctx.events.normal(sync, event.reason, event.message);
    else ctx.events.warning(sync, event.reason, event.message);
    await recordModelColumns(ctx, sync, finished.summary);
  }
}

/**
 * Copies the columns a run saw into the Model's status, so mappings can be checked against them. The
 * termination message has no columns; when the fingerprint changed, the full summary is read from the
 * diff store.
 */
export async function recordModelColumns(
  ctx: ReconcileContext,
  sync: Sync,
  compact: RunSummary | undefined,
): Promise<void> {
  if (!compact) return;
  const namespace = sync.metadata.namespace ?? 'default';
  const model = ctx.store.model(namespace, sync.spec.modelRef.name);
  if (!model) return;
  // A segment's size preview goes in the same patch as the columns (one resourceVersion per patch).
  const members = segmentMembers(model, compact);
  const segment = members ? { segment: model.status?.segment } : {};
  const known = model.status?.columns?.length ? model.status.fingerprint : undefined;
  const same = compact.modelFingerprint !== undefined && known === compact.modelFingerprint;
  const summary = same
    ? undefined
    : compact.columns.length > 0
      ? compact
      : await readFullRunSummary(ctx, sync, compact.runId);
  if (!members && (!summary || summary.columns.length === 0)) return;
  const before = { columns: model.status?.columns, fingerprint: model.status?.fingerprint, ...segment };
  if (!summary || summary.columns.length === 0) {
    const patch = statusPatch(before, { ...before, segment: members });
    if (patch)
      await ctx.cluster.patchStatus(
        'models',
        namespace,
        model.metadata.name,
        patch,
        model.metadata.resourceVersion,
      );
    return;
  }
  const after = {
    ...(members ? { segment: members } : {}),
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
