// After the diff of a keys-only staging: the rows to deliver come out of the source, in the same read.
// Then each planned change gets its idempotency epoch: the run that first planned it (pending.ts).
import { committedHashSql, CURRENT_ROWS, type SnapshotHash } from '../commit.ts';
import { fetchChangedRows, type FetchOutcome } from '../fetch.ts';
import { matchEpochs, noEpochs } from '../pending.ts';
import type { RunContext } from './context.ts';
import type { Diffed } from './diff.ts';
import type { Queried } from './query.ts';
import type { Validated } from './validate.ts';

export interface Fetched {
  /** Present after a keys-only staging. */
  fetched: FetchOutcome | undefined;
  /** The hashes the next snapshot keeps. */
  snapshotHash: SnapshotHash;
}

export async function fetchChangedModelRows(
  ctx: RunContext,
  queried: Queried,
  validated: Validated,
  diffed: Diffed,
): Promise<Fetched> {
  const { staged } = queried;
  const { diff } = diffed;
  let fetched: FetchOutcome | undefined;
  if (staged.keysOnly) {
    fetched = await fetchChangedRows(ctx.conn, {
      stage: staged.keysOnly,
      primaryKey: ctx.primaryKey,
      hashes: staged.hashes ?? [],
    });
    await queried.endRead();
    // Operations of rows the source did not return again are not sent (and count as failed).
    for (const [op, n] of Object.entries(fetched.missing)) {
      const kind = op as keyof typeof diff.operations;
      diff.operations[kind] = (diff.operations[kind] ?? 0) - n;
      diff.totalOperations -= n;
    }
    if (fetched.missingCount > 0) {
      ctx.log.warn(
        { ...ctx.labels, keys: fetched.missingSample.map((m) => m.key), count: fetched.missingCount },
        'rows the model returned when its keys were read were missing when the rows were read; they are retried next run',
      );
    }
  } else {
    await ctx.conn.run(`CREATE OR REPLACE VIEW ${CURRENT_ROWS} AS SELECT * FROM valid_rows`);
  }
  const snapshotHash = {
    shape: validated.shape,
    store: validated.nextHash,
    stagedHashes: staged.hashes,
    recordIds: ctx.destination.capabilities.recordIds === true,
  };
  if (diffed.previous && diffed.pendingFile && diff.totalOperations > 0) {
    await matchEpochs(ctx.conn, { primaryKey: ctx.primaryKey, hashSql: committedHashSql(snapshotHash) });
  } else {
    await noEpochs(ctx.conn);
  }
  return { fetched, snapshotHash };
}
