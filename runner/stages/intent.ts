// Intent: every key this run is about to touch is committed as pending before the first request, so that
// a run killed mid-delivery is followed by one that sends those keys again whatever the model then says.
import type { DestinationCapabilities } from '../../core/connectors.ts';
import type { RunPlan } from '../../core/plan.ts';
import { RunCommitter } from '../committer.ts';
import type { RunContext } from './context.ts';
import type { Diffed } from './diff.ts';
import type { Fetched } from './fetch.ts';

/** The committer of this run; the intent is committed when the run needs one (see needsIntent). */
export async function commitIntent(ctx: RunContext, diffed: Diffed, fetched: Fetched): Promise<RunCommitter> {
  const current = ctx.stored.current;
  const committer = new RunCommitter({
    store: ctx.snapshots,
    conn: ctx.conn,
    dir: ctx.duck.dir,
    runId: ctx.plan.runId,
    primaryKey: ctx.primaryKey,
    keyType: diffed.keyType,
    previous: diffed.diff.previous,
    hash: fetched.snapshotHash,
    current: diffed.hadSnapshot && current ? current.manifest : undefined,
    etag: ctx.stored.etag,
    shape: diffed.runShape,
    delta: diffed.narrowed,
  });
  if (
    diffed.diff.totalOperations > 0 &&
    needsIntent(ctx.plan, ctx.destination.capabilities, diffed.hadSnapshot)
  )
    await committer.intent();
  return committer;
}

/**
 * Whether the run must commit its pending keys before sending. Always once state is committed (a crash
 * followed by a model that changes back must resend). Before the first commit a killed run is followed
 * by another first sync that sends every row anyway; the intent then only matters to delete rows that
 * may have arrived and left the model since, and to keep idempotency keys stable for an API that takes
 * them.
 */
export function needsIntent(plan: RunPlan, caps: DestinationCapabilities, committed: boolean): boolean {
  const { deleteBehavior, mode } = plan.sync.spec;
  return committed || deleteBehavior !== 'ignore' || mode === 'all' || caps.idempotencyKeys === true;
}
