// Commit: the next snapshot and the manifest switched to it (compare-and-swap), also when the run was
// asked to stop (SIGTERM's grace period is for exactly this) — unless nothing changed and the current
// snapshot already describes this run's rows.
import { isWarehouseSnapshot, type SnapshotRejection } from '../../core/connectors.ts';
import { redact } from '../../core/redact.ts';
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
  const snapshot = await committer.final(ctx.conn, delivered.stopped === true, delivered.failed > 0);
  // A stopped run did not try every key: the table keeps the last complete run's rejections.
  if (isWarehouseSnapshot(ctx.snapshots) && delivered.stopped !== true)
    await ctx.snapshots.recordRejections(await rejectionsOf(ctx));
  return { snapshot };
}

/** The most rows a rejections table is given (the run summary's sample names the first few either way). */
export const REJECTIONS_LIMIT = 100_000;

/** The keys this run could not deliver and why, cleaned of every secret the run resolved. */
async function rejectionsOf(ctx: RunContext): Promise<SnapshotRejection[]> {
  const reader = await ctx.conn.runAndReadAll(
    `SELECT k, any_value(reason) FROM failed GROUP BY k ORDER BY k LIMIT ${REJECTIONS_LIMIT}`,
  );
  return reader.getRowsJson().map(([key, message]) => ({
    key: String(key),
    reason: 'RowsRejected',
    message: redact(String(message ?? 'not delivered'), ctx.secrets.resolved),
    runId: ctx.plan.runId,
  }));
}
