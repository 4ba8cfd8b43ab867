import type { DuckDBConnection } from '@duckdb/node-api';
import type { StagedHash } from '../core/connectors.ts';
import { rowHashSql, type LoadedPrevious } from './diff.ts';
import { ident, literal, queryOne, toCount } from './duck.ts';
import {
  SNAPSHOT_HASH,
  SNAPSHOT_KEY,
  SNAPSHOT_RECORD_ID,
  SNAPSHOT_STALE,
  type SyncShape,
} from './mappings.ts';
import { SNAPSHOT_DELETED } from '../core/diffstore/snapshot-store.ts';
import { ENGINE_HASH, hashedItems } from './snapshot-match.ts';
import { stagedHashOf, type HashFunction } from './staging.ts';

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

/** Which hash a snapshot's rows carry, and where it comes from. */
export interface SnapshotHash {
  shape: SyncShape;
  /** The function the snapshot's hashes are made with. */
  store: HashFunction;
  /** The row hashes the source stored in the staged table. */
  stagedHashes?: StagedHash[] | undefined;
  /** The snapshot keeps the destination's record ids (capabilities.recordIds): table `record_ids` holds this run's. */
  recordIds?: boolean;
}

/** Table of the record ids the destination returned in this run (column k: key text, id). */
export const RECORD_IDS = 'record_ids';

/**
 * The record id column of each part of a snapshot, when it keeps them: this run's id for a delivered key,
 * else the previous snapshot's (alias `p`); nothing for snapshots of destinations without ids.
 */
function recordIdSql(
  options: { recordIds?: boolean },
  keyText: string,
  previous: string | undefined,
): string {
  if (!options.recordIds) return '';
  const fresh = `(SELECT any_value(r.id) FROM ${RECORD_IDS} r WHERE r.k = ${keyText})`;
  return `, ${previous ? `coalesce(${fresh}, ${previous})` : fresh} AS ${SNAPSHOT_RECORD_ID}`;
}

/** SQL of the hash a current row (alias `c`, of CURRENT_ROWS) is committed with. */
export function committedHashSql(options: SnapshotHash): string {
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
  return staged ? `c.${ident(staged.column)}` : rowHashSql(items);
}

/**
 * Table UNDELIVERED_NOW, for a checkpoint or a stopped run: the keys with an operation that the
 * destination has not confirmed (not in `delivered`), and those it rejected (`failed`).
 */
export const UNDELIVERED_NOW = 'undelivered_now';
export async function collectUndelivered(conn: DuckDBConnection): Promise<void> {
  await conn.run(
    `CREATE OR REPLACE TABLE ${UNDELIVERED_NOW} AS SELECT k FROM failed UNION ` +
      `SELECT ${SNAPSHOT_KEY} FROM diff d WHERE d.op IS NOT NULL AND NOT EXISTS (SELECT 1 FROM delivered x WHERE x.k = d.${SNAPSHOT_KEY})`,
  );
}

/**
 * Write the new snapshot as Parquet: the previous snapshot with every delivered change applied. Rows of
 * the model whose key is not `undelivered` take their current hash (delivered, or needing no delivery);
 * undelivered keys (rejected, or not confirmed when the run stopped or checkpointed), and keys the model
 * now holds more than once (left out), keep their previous row and are marked stale so the next run sends
 * them again — an undelivered add, which may still have arrived, is kept stale with no hash, so that it is
 * deleted should its row leave the model; rows that left the model and were deleted, cleared or ignored
 * leave it. `undelivered` is a table of keys (column k): `failed` once every operation has a result.
 * With `delta` (a warehouse snapshot narrowed to the keys that may differ: `prev` and CURRENT_ROWS hold
 * only those), every key of `prev` is also written as a tombstone (SNAPSHOT_DELETED), so that the file
 * replaces exactly the rows of the keys the run touched. Returns the number of rows written.
 */
export async function writeSnapshot(
  conn: DuckDBConnection,
  options: SnapshotHash & {
    primaryKey: string;
    keyType: string;
    previous: LoadedPrevious;
    file: string;
    undelivered: string;
    delta?: boolean;
  },
): Promise<number> {
  const { primaryKey, keyType } = options;
  const k = SNAPSHOT_KEY;
  const pk = ident(primaryKey);
  const u = ident(options.undelivered);
  const hash = committedHashSql(options);
  const kept = options.delta ? `, FALSE AS ${SNAPSHOT_DELETED}` : '';
  const tombstones = options.delta
    ? `
      UNION ALL
      SELECT p.${k}, TRUE, ${previousKeySql(primaryKey, keyType, options.previous)}, CAST(NULL AS UBIGINT)${options.recordIds ? ', CAST(NULL AS VARCHAR)' : ''}, TRUE
      FROM prev p`
    : '';
  // COPY answers with the number of rows it wrote.
  const written = await queryOne(
    conn,
    `
    COPY (
      SELECT CAST(c.${pk} AS VARCHAR) AS ${k}, FALSE AS ${SNAPSHOT_STALE}, c.${pk}, ${hash} AS ${SNAPSHOT_HASH}${recordIdSql(options, `CAST(c.${pk} AS VARCHAR)`, `(SELECT any_value(q.${SNAPSHOT_RECORD_ID}) FROM prev q WHERE q.${k} = CAST(c.${pk} AS VARCHAR))`)}${kept}
      FROM ${CURRENT_ROWS} c WHERE NOT EXISTS (SELECT 1 FROM ${u} f WHERE f.k = CAST(c.${pk} AS VARCHAR))
      UNION ALL
      SELECT p.${k}, TRUE, ${previousKeySql(primaryKey, keyType, options.previous)}, p.${SNAPSHOT_HASH}${recordIdSql(options, `p.${k}`, `p.${SNAPSHOT_RECORD_ID}`)}${options.delta ? ', FALSE' : ''}
      FROM prev p WHERE EXISTS (SELECT 1 FROM ${u} f WHERE f.k = p.${k})
        OR p.${k} IN (SELECT CAST(d.k AS VARCHAR) FROM duplicate_keys d)
      UNION ALL
      SELECT CAST(c.${pk} AS VARCHAR), TRUE, c.${pk}, CAST(NULL AS UBIGINT)${recordIdSql(options, `CAST(c.${pk} AS VARCHAR)`, undefined)}${options.delta ? ', FALSE' : ''}
      FROM ${CURRENT_ROWS} c WHERE EXISTS (SELECT 1 FROM ${u} f WHERE f.k = CAST(c.${pk} AS VARCHAR))
        AND NOT EXISTS (SELECT 1 FROM prev p WHERE p.${k} = CAST(c.${pk} AS VARCHAR))${tombstones}
    ) TO ${literal(options.file)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  return toCount(written['Count']);
}

/**
 * The snapshot a run's intent is committed with when the store has no readable one (a first sync, or a
 * full resync over broken state): table `prev` as loaded (empty, or the keys recovered). Returns rows.
 */
export async function writeBaseSnapshot(
  conn: DuckDBConnection,
  options: {
    primaryKey: string;
    keyType: string;
    previous: LoadedPrevious;
    file: string;
    recordIds?: boolean;
  },
): Promise<number> {
  const k = SNAPSHOT_KEY;
  const id = options.recordIds ? `, p.${SNAPSHOT_RECORD_ID}` : '';
  const written = await queryOne(
    conn,
    `COPY (SELECT p.${k}, p.${SNAPSHOT_STALE}, ${previousKeySql(options.primaryKey, options.keyType, options.previous)} AS ${ident(options.primaryKey)}, p.${SNAPSHOT_HASH}${id} FROM prev p)
     TO ${literal(options.file)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  return toCount(written['Count']);
}
