import type { DuckDBConnection } from '@duckdb/node-api';
import { ident, literal, queryOne, toCount } from './duck.ts';
import { previousValueSql } from './diff.ts';
import { SNAPSHOT_KEY, SNAPSHOT_STALE, type SyncShape } from './mappings.ts';

/**
 * Write the new snapshot as Parquet: the previous snapshot with every successfully delivered change
 * applied. Rows of the model whose operation did not fail take their current values (delivered, or
 * needing no delivery); rows whose operation failed, and rows whose key the model now holds more than
 * once (left out), keep their previous values and are marked stale so the next run resends them; rows that
 * left the model and were deleted, cleared or ignored leave it.
 * Returns the number of rows written.
 */
export async function writeSnapshot(
  conn: DuckDBConnection,
  options: { shape: SyncShape; previousColumns: Map<string, string>; file: string },
): Promise<number> {
  const { shape, previousColumns } = options;
  const k = SNAPSHOT_KEY;
  const current = shape.compared.map((item) => `CAST(${item.sql} AS ${item.type}) AS ${ident(item.name)}`);
  const previous = shape.compared.map(
    (item) => `${previousValueSql(item, previousColumns)} AS ${ident(item.name)}`,
  );
  await conn.run(`
    COPY (
      SELECT c.${k}, FALSE AS ${SNAPSHOT_STALE}, ${current.join(', ')}
      FROM cur c WHERE NOT EXISTS (SELECT 1 FROM failed f WHERE f.k = c.${k})
      UNION ALL
      SELECT p.${k}, TRUE AS ${SNAPSHOT_STALE}, ${previous.join(', ')}
      FROM prev p WHERE EXISTS (SELECT 1 FROM failed f WHERE f.k = p.${k})
        OR p.${k} IN (SELECT CAST(d.k AS VARCHAR) FROM duplicate_keys d)
    ) TO ${literal(options.file)} (FORMAT parquet, COMPRESSION zstd)`);
  const row = await queryOne(conn, `SELECT count(*) AS n FROM read_parquet(${literal(options.file)})`);
  return toCount(row['n']);
}

/**
 * Before delivering: the previous snapshot plus every key this run is about to add, marked stale with no
 * values. Committed first, it makes a run killed during delivery safe for deletes: the next run sees
 * those keys (whose rows may have arrived) and, if they left the model meanwhile, deletes them.
 * Returns the number of rows written.
 */
export async function writeIntentSnapshot(conn: DuckDBConnection, file: string): Promise<number> {
  const k = SNAPSHOT_KEY;
  await conn.run(`
    COPY (
      SELECT * FROM prev
      UNION ALL BY NAME
      SELECT ${k}, TRUE AS ${SNAPSHOT_STALE} FROM diff WHERE change = 'added' AND op IS NOT NULL
    ) TO ${literal(file)} (FORMAT parquet, COMPRESSION zstd)`);
  const row = await queryOne(conn, `SELECT count(*) AS n FROM read_parquet(${literal(file)})`);
  return toCount(row['n']);
}
