import type { Sync } from '../crds/index.ts';
import type { DiffStore } from '../core/diffstore/index.ts';
import { describeError } from '../core/errors.ts';
import { runSummary, type RunSummary } from '../core/summary.ts';
import type { ReconcileContext } from './context.ts';
import { syncDiffStoreUrl } from './runner-policy.ts';

const READ_TIMEOUT_MS = 10_000;

/**
 * The diff store of one Sync (`core/diffstore`, which owns the layout under `<namespace>/<sync>/`), on the
 * store at `url` with the operator's own credentials. `url` must have passed `syncDiffStoreUrl`: never
 * outside the Sync's namespace prefix, since the operator's credential reaches every namespace's.
 */
export async function openSyncDiffStore(
  ctx: Pick<ReconcileContext, 'config' | 'secrets'>,
  sync: Sync,
  url: string,
): Promise<DiffStore> {
  const [{ openBlobStore }, { DiffStore }] = await Promise.all([
    import('../core/storage/index.ts'),
    import('../core/diffstore/index.ts'),
  ]);
  const blob = openBlobStore(url, {
    ...(ctx.config.diffStore.s3 ? { s3: ctx.config.diffStore.s3 } : {}),
    ...(ctx.config.diffStore.gcs ? { gcs: ctx.config.diffStore.gcs } : {}),
    secrets: ctx.secrets,
  });
  return new DiffStore(blob, sync.metadata.namespace ?? 'default', sync.metadata.name);
}

/**
 * The full run summary from the diff store (`DiffStore.readRunSummary`). The termination message carries
 * a compact one without the model's columns; this one has them. Undefined when the store cannot be read
 * (or the run id is not one, e.g. a path out of the Sync's folder): the columns are a convenience for
 * validation, never a reason to fail a reconcile.
 */
export async function readFullRunSummary(
  ctx: Pick<ReconcileContext, 'config' | 'secrets' | 'log'>,
  sync: Sync,
  runId: string,
): Promise<RunSummary | undefined> {
  try {
    const store = await openSyncDiffStore(ctx, sync, syncDiffStoreUrl(ctx.config, sync));
    // A read that takes too long is cancelled, not left running.
    const found = await store.readRunSummary(runId, { signal: AbortSignal.timeout(READ_TIMEOUT_MS) });
    if (found === undefined) return undefined;
    const parsed = runSummary.safeParse(found);
    return parsed.success ? parsed.data : undefined;
  } catch (error) {
    ctx.log.warn(
      { runId, err: describeError(error).message },
      'could not read the run summary from the diff store',
    );
    return undefined;
  }
}
