import type { Sync } from '../crds/index.ts';
import { describeError } from '../core/errors.ts';
import type { ReconcileContext } from './context.ts';
import { COMPONENT_LABEL, SYNC_LABEL } from './jobs.ts';
import { dropPlanOf, dropWarehouseSnapshot } from './finalizer-warehouse.ts';
import { jobOutcome } from './results.ts';
import { syncDiffStoreUrl } from './runner-policy.ts';
import { openSyncDiffStore } from './run-summaries.ts';
import type { ReconcileResult } from './runtime/controller.ts';

export const SNAPSHOT_FINALIZER = 'syncline.io/snapshots';
const CLEANUP_ATTEMPT_MS = 30_000;
const RETRY_MS = 5_000;

/**
 * What the finalizer does next: clean up now, retry later, or give up and let the deletion through.
 * Pure, so that "never blocks deletion forever" is a property of this function.
 */
export function finalizerStep(input: {
  policy: 'retain' | 'delete';
  deletionTimestamp: string;
  now: Date;
  timeoutMs: number;
}): 'release' | 'cleanup' | 'abandon' {
  if (input.policy !== 'delete') return 'release';
  const waited = input.now.getTime() - new Date(input.deletionTimestamp).getTime();
  return waited >= input.timeoutMs ? 'abandon' : 'cleanup';
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Deletion of a Sync: its Jobs go by owner reference (garbage collector); with snapshotPolicy delete,
 * its diff-store folder is removed first. A store that cannot be reached delays deletion by at most
 * `finalizerTimeoutMs`, then the folder is left behind with a Warning Event naming it.
 */
export async function finalizeSync(ctx: ReconcileContext, sync: Sync): Promise<ReconcileResult> {
  const finalizers = sync.metadata.finalizers ?? [];
  if (!finalizers.includes(SNAPSHOT_FINALIZER)) return;
  const namespace = sync.metadata.namespace ?? 'default';
  const name = sync.metadata.name;
  let url: string;
  try {
    url = syncDiffStoreUrl(ctx.config, sync);
  } catch (error) {
    // The operator's credential reaches every namespace's snapshots: it deletes only within the Sync's own.
    const { reason, message } = describeError(error, 'InvalidDiffStoreUrl');
    ctx.events.warning(sync, 'SnapshotCleanupRefused', `deleted nothing (${reason}: ${message})`);
    return releaseFinalizer(ctx, sync);
  }
  const step = finalizerStep({
    policy: sync.spec.snapshotPolicy ?? 'retain',
    deletionTimestamp: sync.metadata.deletionTimestamp ?? ctx.now().toISOString(),
    now: ctx.now(),
    timeoutMs: ctx.config.finalizerTimeoutMs,
  });
  if (step === 'cleanup') {
    // A run still writing would commit into the folder after it is gone: stop it first.
    for (const job of ctx.store.jobs(namespace, { [COMPONENT_LABEL]: 'run', [SYNC_LABEL]: name })) {
      if (jobOutcome(job, []).state === 'active')
        await ctx.cluster.deleteJob(namespace, job.metadata?.name ?? '');
    }
    const waiting = await dropInWarehouse(ctx, sync);
    if (waiting) return waiting;
    const folder = `${url}/${namespace}/${name}/`;
    try {
      const store = await openSyncDiffStore(ctx, sync, url);
      const removed = await withTimeout(store.deleteAll(), CLEANUP_ATTEMPT_MS, 'deleting snapshots');
      ctx.events.normal(sync, 'SnapshotsDeleted', `deleted ${removed} objects under ${folder}`);
    } catch (error) {
      const { reason, message } = describeError(error, 'SnapshotCleanupFailed');
      ctx.events.warning(
        sync,
        'SnapshotCleanupFailed',
        `could not delete ${folder} (${reason}: ${message}); retrying, and giving up ` +
          `${Math.round(ctx.config.finalizerTimeoutMs / 1000)} s after the deletion was requested`,
      );
      return { requeueAfterMs: RETRY_MS };
    }
  } else if (step === 'abandon') {
    const plan = dropPlanOf(ctx, sync);
    const tables =
      plan && !('problem' in plan)
        ? ` and its warehouse snapshot tables in schema ${plan.schema} of Source ${plan.source.name}`
        : '';
    ctx.events.warning(
      sync,
      'SnapshotCleanupAbandoned',
      `gave up deleting ${url}/${namespace}/${name}/${tables} after ${Math.round(ctx.config.finalizerTimeoutMs / 1000)} s; ` +
        'the Sync is deleted and they are left behind: delete them by hand',
    );
  }
  await releaseFinalizer(ctx, sync);
}

/** The warehouse tables first (a runner Job drops them): a result to return while that is not done. */
async function dropInWarehouse(ctx: ReconcileContext, sync: Sync): Promise<ReconcileResult | undefined> {
  const drop = await dropWarehouseSnapshot(ctx, sync);
  if (!drop.done) {
    if ('failed' in drop) {
      ctx.events.warning(
        sync,
        'SnapshotCleanupFailed',
        `could not drop the warehouse snapshot tables (${drop.failed}); retrying, and giving up ` +
          `${Math.round(ctx.config.finalizerTimeoutMs / 1000)} s after the deletion was requested`,
      );
    }
    return { requeueAfterMs: RETRY_MS };
  }
  if ('problem' in drop) {
    ctx.events.warning(
      sync,
      'SnapshotCleanupAbandoned',
      `left the warehouse snapshot tables in place: ${drop.problem}; drop them by hand`,
    );
  } else if (drop.message) {
    ctx.events.normal(sync, 'WarehouseSnapshotDropped', drop.message);
  }
  return undefined;
}

async function releaseFinalizer(ctx: ReconcileContext, sync: Sync): Promise<void> {
  const namespace = sync.metadata.namespace ?? 'default';
  await ctx.cluster.setFinalizers(
    'syncs',
    namespace,
    sync.metadata.name,
    (sync.metadata.finalizers ?? []).filter((f) => f !== SNAPSHOT_FINALIZER),
    sync.metadata.resourceVersion,
  );
  ctx.metrics.forget(namespace, sync.metadata.name);
}
