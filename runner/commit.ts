import type { DuckDBConnection } from '@duckdb/node-api';
import type { StagedHash } from '../connectors/types.ts';
import { rowHashSql, type LoadedPrevious } from './diff.ts';
import { ident, literal, queryOne, toCount } from './duck.ts';
import { SNAPSHOT_HASH, SNAPSHOT_KEY, SNAPSHOT_STALE, type SyncShape } from './mappings.ts';
import { ENGINE_HASH, hashedItems, stagedHashOf, type HashFunction } from './staging.ts';

/** The model's current rows (every valid key, with its staged hashes), as the commit reads them. */
export const CURRENT_ROWS = 'current_rows';

// A snapshot (version 2) has one row per key the destination holds: the key as text, a stale flag (the
// row must be sent again), the typed key (to join on, and to address a record after its row left the
// model) and the hash of the compared columns as they were last delivered.

/** The previous snapshot's typed key as the current key type, or NULL where it has none. */
function previousKeySql(primaryKey: string, keyType: string, previous: LoadedPrevious): string {
  if (previous.keyType === undefined) return `CAST(NULL AS ${keyType})`;
  const key = `p.${ident(primaryKey)}`;
  return previous.keyType === keyType ? key : `TRY_CAST(${key} AS ${keyType})`;
}

/**
 * Write the new snapshot as Parquet: the previous snapshot with every successfully delivered change
 * applied. Rows of the model whose operation did not fail take their current hash (delivered, or needing
 * no delivery); rows whose operation failed, and rows whose key the model now holds more than once (left
 * out), keep their previous hash and are marked stale so the next run resends them; rows that left the
 * model and were deleted, cleared or ignored leave it.
 * Returns the number of rows written.
 */
export async function writeSnapshot(
  conn: DuckDBConnection,
  options: {
    shape: SyncShape;
    primaryKey: string;
    keyType: string;
    previous: LoadedPrevious;
    file: string;
    /** The function the snapshot's hashes are made with. */
    store: HashFunction;
    /** The row hashes the source stored in the staged table. */
    stagedHashes?: StagedHash[] | undefined;
  },
): Promise<number> {
  const { primaryKey, keyType } = options;
  const k = SNAPSHOT_KEY;
  const pk = ident(primaryKey);
  const items = hashedItems(options.shape);
  const by = options.store.name === ENGINE_HASH ? 'engine' : 'source';
  const staged = stagedHashOf(
    options.stagedHashes,
    by,
    items.map((i) => i.column ?? i.name),
  );
  if (!staged && by === 'source') {
    throw new Error(`the source stored no ${options.store.name} hash of the compared columns`);
  }
  const hash = staged ? `c.${ident(staged.column)}` : rowHashSql(items);
  // COPY answers with the number of rows it wrote.
  const written = await queryOne(
    conn,
    `
    COPY (
      SELECT CAST(c.${pk} AS VARCHAR) AS ${k}, FALSE AS ${SNAPSHOT_STALE}, c.${pk}, ${hash} AS ${SNAPSHOT_HASH}
      FROM ${CURRENT_ROWS} c WHERE NOT EXISTS (SELECT 1 FROM failed f WHERE f.k = CAST(c.${pk} AS VARCHAR))
      UNION ALL
      SELECT p.${k}, TRUE, ${previousKeySql(primaryKey, keyType, options.previous)}, p.${SNAPSHOT_HASH}
      FROM prev p WHERE EXISTS (SELECT 1 FROM failed f WHERE f.k = p.${k})
        OR p.${k} IN (SELECT CAST(d.k AS VARCHAR) FROM duplicate_keys d)
    ) TO ${literal(options.file)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  return toCount(written['Count']);
}

/**
 * Before delivering: the previous snapshot plus every key this run is about to add, marked stale with no
 * hash. Committed first, it makes a run killed during delivery safe for deletes: the next run sees those
 * keys (whose rows may have arrived) and, if they left the model meanwhile, deletes them. Rows whose
 * compared constants changed are marked stale too, as the manifest written with it carries the new ones.
 * Returns the number of rows written.
 */
export async function writeIntentSnapshot(
  conn: DuckDBConnection,
  options: { primaryKey: string; keyType: string; previous: LoadedPrevious; file: string },
): Promise<number> {
  const k = SNAPSHOT_KEY;
  const pk = ident(options.primaryKey);
  // COPY answers with the number of rows it wrote.
  const written = await queryOne(
    conn,
    `
    COPY (
      SELECT p.${k}, p.${SNAPSHOT_STALE} OR ${options.previous.constantsChanged} AS ${SNAPSHOT_STALE},
        ${previousKeySql(options.primaryKey, options.keyType, options.previous)} AS ${pk}, p.${SNAPSHOT_HASH}
      FROM prev p
      UNION ALL
      SELECT ${k}, TRUE, current_key, CAST(NULL AS UBIGINT) FROM diff WHERE change = 'added' AND op IS NOT NULL
    ) TO ${literal(options.file)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  return toCount(written['Count']);
}
