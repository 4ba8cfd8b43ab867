// Commit: the next snapshot and the manifest switched to it (compare-and-swap), also when the run was
// asked to stop (SIGTERM's grace period is for exactly this) — unless nothing changed and the current
// snapshot already describes this run's rows.
import type { RunCommitter } from '../committer.ts';
import { snapshotDescribesRun } from '../snapshot-match.ts';
import type { RunContext } from './context.ts';
import type { Delivered } from './delivery.ts';
import type { Diffed } from './diff.ts';

export interface Committed {
  /** Diff-store path of the snapshot current after this run. */
  snapshot: string;
}

export async function commitRun(
  ctx: RunContext,
  diffed: Diffed,
  delivered: Delivered,
  committer: RunCommitter,
): Promise<Committed> {
  const current = ctx.stored.current;
  const { diff } = diffed;
  const unchanged =
    current !== undefined &&
    diffed.previous !== undefined &&
    !diffed.resendAll &&
    diff.totalOperations === 0 &&
    diff.added + diff.changed + diff.removed === 0 &&
    snapshotDescribesRun(current.manifest, diffed.runShape);
  if (unchanged) return { snapshot: current.manifest.snapshot };
  ctx.lease?.check();
  return { snapshot: await committer.final(ctx.conn, delivered.stopped === true, delivered.failed > 0) };
}
