// Validate: the mappings against the staged columns, then the primary key (null and duplicate keys fail
// the run, or are left out and reported); and which hash function the next snapshot keeps.
import { modelFingerprint, resolveShape, type SyncShape } from '../mappings.ts';
import { ENGINE_HASH, hashedItems } from '../snapshot-match.ts';
import { stagedHashOf, type HashFunction } from '../staging.ts';
import { checkPrimaryKey, type KeyCheck } from '../validate.ts';
import type { RunContext } from './context.ts';
import { STAGED_TABLE, type Queried } from './query.ts';

export interface Validated {
  shape: SyncShape;
  keys: KeyCheck;
  /** Rows left out for invalid keys (invalidPrimaryKeys: skip). */
  skipped: number;
  fingerprint: string;
  /** The function of the next snapshot's hashes. */
  nextHash: HashFunction;
}

export async function validateModel(ctx: RunContext, queried: Queried): Promise<Validated> {
  const { staged, decision } = queried;
  const shape = resolveShape({
    mappings: ctx.spec.mappings,
    columns: staged.columns,
    primaryKey: ctx.primaryKey,
    comparesAllColumns: ctx.destination.capabilities.comparesAllColumns,
    contextColumns: ctx.spec.target?.associations?.map((a) => a.from),
  });
  const keys = await checkPrimaryKey(ctx.conn, STAGED_TABLE, ctx.primaryKey, ctx.spec.invalidPrimaryKeys);
  const skipped = keys.nullCount + keys.duplicateKeys > 0 ? keys.nullCount + keys.duplicateRows : 0;
  if (skipped > 0)
    ctx.log.warn({ ...ctx.labels, skipped, sample: keys.sample }, 'rows with invalid primary keys left out');
  // The source's hashes where it stored them over the compared columns, else DuckDB's (which the engine
  // can always make, in SQL).
  const wanted = decision?.store;
  const compared = hashedItems(shape).map((item) => item.column ?? item.name);
  const nextHash =
    wanted &&
    wanted.name !== ENGINE_HASH &&
    staged.sourceHash?.name === wanted.name &&
    stagedHashOf(staged.hashes, 'source', compared)
      ? wanted
      : { name: ENGINE_HASH, probe: ctx.engineProbe };
  return { shape, keys, skipped, fingerprint: modelFingerprint(staged.columns, ctx.primaryKey), nextHash };
}
