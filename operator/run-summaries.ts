import type { Sync } from '../crds/index.ts';
import { describeError } from '../core/errors.ts';
import { runSummary, type RunSummary } from '../core/summary.ts';
import type { ReconcileContext } from './context.ts';
import { snapshotPrefix } from './finalizer.ts';
import { syncDiffStoreUrl } from './runner-policy.ts';

const READ_TIMEOUT_MS = 10_000;

/**
 * The full run summary from the diff store (`<namespace>/<sync>/runs/<runId>.json`). The termination
 * message carries a compact one without the model's columns; this one has them. Undefined when the store
 * cannot be read: the columns are a convenience for validation, never a reason to fail a reconcile.
 */
export async function readFullRunSummary(
  ctx: ReconcileContext,
  sync: Sync,
  runId: string,
): Promise<RunSummary | undefined> {
  try {
    // Never outside the Sync's namespace prefix: the operator's credential reaches every namespace's.
    const url = syncDiffStoreUrl(ctx.config, sync);
    const { openBlobStore } = await import('../core/storage/index.ts');
    const store = openBlobStore(url, {
      ...(ctx.config.diffStore.s3 ? { s3: ctx.config.diffStore.s3 } : {}),
      ...(ctx.config.diffStore.gcs ? { gcs: ctx.config.diffStore.gcs } : {}),
      secrets: ctx.secrets,
    });
    const found = await Promise.race([
      store.get(`${snapshotPrefix(sync)}runs/${runId}.json`),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), READ_TIMEOUT_MS).unref()),
    ]);
    if (!found) return undefined;
    const parsed = runSummary.safeParse(JSON.parse(found.body.toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch (error) {
    ctx.log.warn(
      { runId, err: describeError(error).message },
      'could not read the run summary from the diff store',
    );
    return undefined;
  }
}
