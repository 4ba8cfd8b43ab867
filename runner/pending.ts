// Pending keys: before a run sends anything it commits the list of keys it is about to touch (with the
// operation, the row hash it will commit, and the idempotency epoch), so that a run killed mid-delivery is
// followed by one that sends those keys again whatever the model says by then: a change that was sent
// and then reverted in the model is sent back (the destination may hold the intermediate value).
//
// The epoch makes idempotency keys unique across changes and stable across retries of one change: a key
// sent again with the same operation and the same row hash while it is still pending keeps the epoch
// (the run that first planned it), so an API that honours idempotency keys applies it once; any other
// change of the key gets this run's id as its epoch, so it is never mistaken for an earlier one.
import type { DuckDBConnection } from '@duckdb/node-api';
import { ident, literal, queryOne, toCount } from './duck.ts';
import { SNAPSHOT_HASH, SNAPSHOT_KEY, SNAPSHOT_RECORD_ID, SNAPSHOT_STALE } from './mappings.ts';
import { PENDING_EPOCH, PENDING_OP } from '../core/diffstore/snapshot-store.ts';

/** The previous run's pending keys, as loaded (k, typed key, op, hash, epoch); empty when none. */
export const PREVIOUS_PENDING = 'prev_pending';
/** Keys of this run whose idempotency epoch is an earlier run's (k, epoch). */
export const RUN_EPOCHS = 'run_epochs';
const EPOCH = PENDING_EPOCH;
const OP = PENDING_OP;

/** Load a pending-keys file into PREVIOUS_PENDING, or make it empty. */
export async function loadPending(
  conn: DuckDBConnection,
  options: { file: string | undefined; primaryKey: string; keyType: string },
): Promise<void> {
  const pk = ident(options.primaryKey);
  if (options.file === undefined) {
    await conn.run(
      `CREATE OR REPLACE TABLE ${PREVIOUS_PENDING} (${SNAPSHOT_KEY} VARCHAR, ${pk} ${options.keyType}, ` +
        `${OP} VARCHAR, ${SNAPSHOT_HASH} UBIGINT, ${EPOCH} VARCHAR)`,
    );
    return;
  }
  await conn.run(
    `CREATE OR REPLACE TABLE ${PREVIOUS_PENDING} AS SELECT ${SNAPSHOT_KEY}, TRY_CAST(${pk} AS ${options.keyType}) AS ${pk}, ` +
      `${OP}, ${SNAPSHOT_HASH}, ${EPOCH} FROM read_parquet(${literal(options.file)})`,
  );
}

/**
 * SQL of a snapshot relation with the pending keys applied: every pending key is stale, and a pending key
 * the snapshot lacks (an add that may have arrived) is there, stale, with no hash. `snapshot` selects
 * (k, stale[, typed key], hash); `typedKey` says whether it has the typed key column.
 */
export function withPendingSql(
  snapshot: string,
  primaryKey: string,
  typedKey: boolean,
  recordIds = false,
): string {
  const k = SNAPSHOT_KEY;
  const key = typedKey ? `, pp.${ident(primaryKey)}` : '';
  const keyOfSnapshot = typedKey ? `, s.${ident(primaryKey)}` : '';
  const id = recordIds ? `, s.${SNAPSHOT_RECORD_ID}` : '';
  const noId = recordIds ? `, CAST(NULL AS VARCHAR)` : '';
  return `
    SELECT s.${k}, s.${SNAPSHOT_STALE} OR pp.${k} IS NOT NULL AS ${SNAPSHOT_STALE}${keyOfSnapshot}, s.${SNAPSHOT_HASH}${id}
    FROM (${snapshot}) s LEFT JOIN ${PREVIOUS_PENDING} pp ON pp.${k} = s.${k}
    UNION ALL
    SELECT pp.${k}, TRUE${key}, CAST(NULL AS UBIGINT)${noId}
    FROM ${PREVIOUS_PENDING} pp WHERE NOT EXISTS (SELECT 1 FROM (${snapshot}) s WHERE s.${k} = pp.${k})`;
}

/**
 * Table RUN_EPOCHS: the keys of this run's operations that retry a still-pending change of an earlier
 * run (the key is stale in the snapshot, and the operation and row hash are the ones that run planned).
 * `hashSql` is the committed hash of a current row (alias `c`; NULL for removed rows).
 */
export async function matchEpochs(
  conn: DuckDBConnection,
  options: { primaryKey: string; hashSql: string },
): Promise<number> {
  const k = SNAPSHOT_KEY;
  const pk = ident(options.primaryKey);
  const found = await queryOne(
    conn,
    `CREATE OR REPLACE TABLE ${RUN_EPOCHS} AS
     SELECT d.${k} AS k, pp.${EPOCH} AS epoch
     FROM diff d
     JOIN ${PREVIOUS_PENDING} pp ON pp.${k} = d.${k} AND pp.${OP} = d.op
     JOIN prev p ON p.${k} = d.${k} AND p.${SNAPSHOT_STALE}
     LEFT JOIN current_rows c ON c.${pk} = d.current_key
     WHERE d.op IS NOT NULL
       AND pp.${SNAPSHOT_HASH} IS NOT DISTINCT FROM (CASE WHEN d.change <> 'removed' THEN ${options.hashSql} END)`,
  );
  return toCount(found['Count']);
}

/** Create an empty RUN_EPOCHS (a run with no earlier pending keys). */
export async function noEpochs(conn: DuckDBConnection): Promise<void> {
  await conn.run(`CREATE OR REPLACE TABLE ${RUN_EPOCHS} (k VARCHAR, epoch VARCHAR)`);
}

/** SQL of a diff row's epoch (alias `d` for the diff, `e` for RUN_EPOCHS joined on the key). */
export function epochSql(runId: string): string {
  return `coalesce(e.epoch, ${literal(runId)})`;
}

/** The LEFT JOIN that epochSql needs, after `FROM diff d`. */
export function epochJoinSql(): string {
  return `LEFT JOIN ${RUN_EPOCHS} e ON e.k = d.${SNAPSHOT_KEY}`;
}

/** Write this run's pending keys (every key with an operation) as Parquet; returns how many. */
export async function writePending(
  conn: DuckDBConnection,
  options: { primaryKey: string; hashSql: string; runId: string; file: string },
): Promise<number> {
  const k = SNAPSHOT_KEY;
  const pk = ident(options.primaryKey);
  const written = await queryOne(
    conn,
    `COPY (
       SELECT d.${k}, coalesce(d.current_key, d.previous_key) AS ${pk}, d.op AS ${OP},
         CASE WHEN d.change <> 'removed' THEN ${options.hashSql} END AS ${SNAPSHOT_HASH}, ${epochSql(options.runId)} AS ${EPOCH}
       FROM diff d ${epochJoinSql()} LEFT JOIN current_rows c ON c.${pk} = d.current_key
       WHERE d.op IS NOT NULL
     ) TO ${literal(options.file)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  return toCount(written['Count']);
}
