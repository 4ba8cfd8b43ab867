// The second half of a keys-only staging (see staging.ts): once the diff knows which keys were added or
// changed, their rows come from the source, and delivery reads those while the commit reads every key.
import type { DuckDBConnection } from '@duckdb/node-api';
import type { KeysOnlyStage, RowOperation, StagedHash } from '../core/connectors.ts';
import { CURRENT_ROWS } from './commit.ts';
import { ident, queryAll, queryOne, toCount } from './duck.ts';
import { SynclineError } from '../core/errors.ts';
import { SNAPSHOT_KEY } from './mappings.ts';

export const FETCHED_TABLE = 'fetched_rows';
const SAMPLE = 20;

export interface FetchOutcome {
  /** Rows the source returned. */
  rows: number;
  /** Row operations taken out of the diff because the source did not return their row again, by kind. */
  missing: Record<string, number>;
  /** The first 20 of them. */
  missingSample: { key: string; operation: RowOperation }[];
  missingCount: number;
}

/** The keys whose rows delivery needs: rows still in the model that get an operation. */
const WANTED = `SELECT current_key FROM diff WHERE op IS NOT NULL AND change IN ('added', 'changed')`;

/**
 * Fetch the rows of the added and changed keys into FETCHED_TABLE; then view `valid_rows` (what delivery
 * reads) shows those rows, view CURRENT_ROWS (what the commit reads) every valid key with its hash, the
 * fetched row's where there is one (the row as delivered). A key the source does not return again (a
 * model that is not deterministic) is taken out of the diff: nothing is sent for it, and the caller counts
 * it as failed, so that the next run tries again.
 */
export async function fetchChangedRows(
  conn: DuckDBConnection,
  options: { stage: KeysOnlyStage; primaryKey: string; hashes: StagedHash[] },
): Promise<FetchOutcome> {
  const pk = ident(options.primaryKey);
  const wanted = toCount((await queryOne(conn, `SELECT count(*) AS n FROM (${WANTED})`))['n']);
  const { rows } = await options.stage.fetch({ table: FETCHED_TABLE, keysSql: WANTED, keyCount: wanted });
  const distinct = toCount(
    (await queryOne(conn, `SELECT count(DISTINCT ${pk}) AS n FROM ${FETCHED_TABLE}`))['n'],
  );
  if (distinct !== rows) {
    throw new SynclineError(
      'SourceQueryFailed',
      `the model returned a primary key more than once when its changed rows were read, though every key was unique ` +
        `when its keys were read just before; a model query whose rows vary from one read to the next ` +
        `(random(), LIMIT without ORDER BY) cannot be synced by difference. Nothing was delivered.`,
    );
  }
  const hashes = options.hashes.map((h) => ident(h.column));
  await conn.run('ALTER VIEW valid_rows RENAME TO valid_keys');
  await conn.run(
    `CREATE VIEW ${CURRENT_ROWS} AS SELECT k.${pk}` +
      hashes.map((h) => `, coalesce(f.${h}, k.${h}) AS ${h}`).join('') +
      ` FROM valid_keys k LEFT JOIN ${FETCHED_TABLE} f ON f.${pk} = k.${pk}`,
  );
  await conn.run(`CREATE VIEW valid_rows AS SELECT * FROM ${FETCHED_TABLE}`);

  await conn.run(
    `CREATE OR REPLACE TABLE unfetched AS SELECT d.${SNAPSHOT_KEY} AS k, d.op FROM diff d ` +
      `WHERE d.op IS NOT NULL AND d.change IN ('added', 'changed') ` +
      `AND NOT EXISTS (SELECT 1 FROM ${FETCHED_TABLE} f WHERE f.${pk} = d.current_key)`,
  );
  const groups = await queryAll(conn, 'SELECT op, count(*) AS n FROM unfetched GROUP BY op');
  const missing = Object.fromEntries(groups.map((g) => [String(g['op']), toCount(g['n'])]));
  const missingCount = Object.values(missing).reduce((a, b) => a + b, 0);
  let missingSample: FetchOutcome['missingSample'] = [];
  if (missingCount > 0) {
    await conn.run(`DELETE FROM diff WHERE ${SNAPSHOT_KEY} IN (SELECT k FROM unfetched)`);
    missingSample = (await queryAll(conn, `SELECT k, op FROM unfetched ORDER BY k LIMIT ${SAMPLE}`)).map(
      (r) => ({ key: String(r['k']), operation: r['op'] as RowOperation }),
    );
  }
  return { rows, missing, missingSample, missingCount };
}

/** After delivery: the keys fetchChangedRows took out of the diff count as failed (table `failed`). */
export async function recordUnfetched(conn: DuckDBConnection): Promise<void> {
  await conn.run(
    "INSERT INTO failed SELECT k, 'the source did not return this row when the changed rows were read' FROM unfetched",
  );
}
