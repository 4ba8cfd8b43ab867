// A narrowed staging (StagingChoice.narrow) against the Sync's warehouse snapshot in Snowflake (snapshot.ts):
// the model is compared with the snapshot table in Snowflake SQL, and only what may differ comes out:
//   1. a checksum over every row — COUNT, COUNT of keys, HASH_AGG(key text, HASH(compared columns)) and
//      whether a newly compared column holds a value: one row out; equal to the state's, nothing differs;
//   2. else one FULL OUTER JOIN of the model (with its hashes and, per key, how many rows hold it) with the
//      snapshot table: the model rows whose key is null, held more than once, new, stale in the snapshot,
//      of another hash or with a fresh value, each with its snapshot row, and the snapshot rows whose key
//      left the model.
// Keys are joined on their text (the snapshot's KEY_TEXT, DuckDB's rendering), so only keys whose text
// both write alike are narrowed: integers (NUMBER(p,0)) and strings. Anything else stages every row.
import {
  STAGED_HASH_PREFIX,
  stagedHashColumn,
  type ColumnInfo,
  type NarrowRequest,
  type StagedHash,
} from '../../core/connectors.ts';
import {
  SNAPSHOT_HASH,
  SNAPSHOT_KEY,
  SNAPSHOT_RECORD_ID,
  SNAPSHOT_STALE,
} from '../../core/diffstore/snapshot-store.ts';
import { SynclineError } from '../../core/errors.ts';
import { quoteIdent, quoteLiteral } from '../shared/sql.ts';
import type { TextColumn } from '../shared/text-stage.ts';
import { quoteName, rowHashSql, unsignedHashSql } from './hash.ts';
import { rowsIntoDuck, type TextField } from './snapshot-files.ts';
import type { SnowflakeWarehouseSnapshot } from './snapshot.ts';
import type { ChosenStaging } from './staging.ts';

const ROWS = 'narrow_rows';
// Columns a narrowed query adds to the model's (no model column starts with the prefix).
const PRESENT = `${STAGED_HASH_PREFIX}present`;
const HELD = `${STAGED_HASH_PREFIX}held`;
const P = {
  keyText: `${STAGED_HASH_PREFIX}p_key_text`,
  stale: `${STAGED_HASH_PREFIX}p_stale`,
  key: `${STAGED_HASH_PREFIX}p_key`,
  hash: `${STAGED_HASH_PREFIX}p_hash`,
  recordId: `${STAGED_HASH_PREFIX}p_record_id`,
};

export interface NarrowContext extends ChosenStaging {
  plans: TextColumn[];
  columns: ColumnInfo[];
  hashes: StagedHash[];
}

export interface NarrowOutcome {
  rows: number;
  modelRows: number;
  previousRows: number;
  byChecksum: boolean;
}

interface StateRow {
  rows: number;
  stale: number;
  checksum: string;
}

/** Whether the key's text is the same in Snowflake (CAST AS VARCHAR) and in DuckDB. */
function narrowableKey(plan: TextColumn): boolean {
  return plan.sourceType === 'VARCHAR' || /^NUMBER\(\d+,0\)$/.test(plan.sourceType);
}

async function readState(
  ctx: NarrowContext,
  store: SnowflakeWarehouseSnapshot,
  narrow: NarrowRequest,
): Promise<StateRow> {
  const [row] = await ctx.client.rows(
    `SELECT CAST(GENERATION AS VARCHAR) AS G, ROW_COUNT AS N, STALE_COUNT AS S, CAST(CHECKSUM AS VARCHAR) AS X
       FROM ${store.tables.state} WHERE NAMESPACE = ? AND SYNC = ?`,
    [store.namespace, store.sync],
  );
  if (row?.G !== narrow.etag) {
    throw new SynclineError(
      'ConcurrentCommit',
      `another run of ${store.namespace}/${store.sync} committed while this one was starting (the generation of ${store.tables.state} moved); the next run diffs against it`,
    );
  }
  return { rows: Number(row.N ?? 0), stale: Number(row.S ?? 0), checksum: row.X ?? '0' };
}

function freshSql(narrow: NarrowRequest): string {
  return narrow.fresh.length === 0
    ? 'FALSE'
    : narrow.fresh.map((c) => `m.${quoteName(c)} IS NOT NULL`).join(' OR ');
}

/** 1. The checksum of the model: whether it holds exactly the snapshot's keys and hashes, and its row count. */
async function checksum(
  ctx: NarrowContext,
  key: string,
  compare: StagedHash,
  narrow: NarrowRequest,
  state: StateRow,
): Promise<{ same: boolean; rows: number }> {
  const statement = await ctx.query(
    `SELECT COUNT(*), COUNT(m.${key}), CAST(HASH_AGG(CAST(m.${key} AS VARCHAR), ${rowHashSql(compare.columns)}) AS VARCHAR),
            COUNT_IF(${freshSql(narrow)})
       FROM (\n${ctx.sql}\n) AS m`,
  );
  const [row] = await new Promise<(string | null)[][]>((resolve, reject) => {
    const rows: (string | null)[][] = [];
    statement
      .streamRows()
      .on('data', (r: (string | null)[]) => rows.push(r))
      .on('end', () => resolve(rows))
      .on('error', reject);
  });
  const n = Number(row?.[0] ?? 0);
  const same =
    row !== undefined &&
    n === state.rows &&
    Number(row[1]) === n &&
    row[2] === state.checksum &&
    state.stale === 0 &&
    Number(row[3]) === 0;
  return { same, rows: n };
}

/** The DuckDB load of a plan's text field. */
function loadOf(plan: TextColumn): TextField {
  if (plan.load) return plan.load;
  if (plan.duckType === 'VARCHAR') return (f) => f;
  if (plan.duckType === 'BLOB') return (f) => `unhex(${f})`;
  return (f) => `CAST(${f} AS ${plan.duckType})`;
}

/** The fields of the narrowed query's rows, in DuckDB: the model's columns, its hashes, the snapshot row. */
function fields(ctx: NarrowContext): TextField[] {
  const as =
    (name: string, load: TextField): TextField =>
    (f) =>
      `${load(f)} AS ${quoteIdent(name)}`;
  return [
    ...ctx.plans.map((p) => as(p.name, loadOf(p))),
    ...ctx.hashes.map((h) => as(h.column, unsignedHashSql)),
    as(PRESENT, (f) => `CAST(${f} AS BOOLEAN)`),
    as(P.keyText, (f) => f),
    as(P.stale, (f) => `CAST(${f} AS BOOLEAN)`),
    as(P.key, (f) => f),
    as(P.hash, (f) => f),
    as(P.recordId, (f) => f),
  ];
}

/** 2. The rows that may differ, each with its snapshot row, and the snapshot rows of removed keys. */
async function differing(
  ctx: NarrowContext,
  store: SnowflakeWarehouseSnapshot,
  key: string,
  compare: StagedHash,
  narrow: NarrowRequest,
): Promise<void> {
  const hashes = ctx.hashes.map((h) => `${rowHashSql(h.columns)} AS ${quoteName(h.column)}`);
  const model =
    `SELECT m.*, ${hashes.join(', ')}, COUNT(*) OVER (PARTITION BY m.${key}) AS ${quoteName(HELD)}, ` +
    `TRUE AS ${quoteName(PRESENT)} FROM (\n${ctx.sql}\n) AS m`;
  const select = [
    ...ctx.plans.map((p) => `m.${quoteName(p.name)}`),
    ...ctx.hashes.map((h) => `CAST(m.${quoteName(h.column)} AS VARCHAR)`),
    `m.${quoteName(PRESENT)}`,
    'p.KEY_TEXT',
    'p.STALE',
    'p.KEY',
    'CAST(p.HASH AS VARCHAR)',
    'p.RECORD_ID',
  ];
  const where = [
    `m.${quoteName(PRESENT)} IS NULL`,
    'p.KEY_TEXT IS NULL',
    'p.STALE',
    `p.HASH IS DISTINCT FROM m.${quoteName(compare.column)}`,
    `m.${quoteName(HELD)} > 1`,
    `(${freshSql(narrow)})`,
  ];
  const statement = await ctx.query(
    `SELECT ${select.join(', ')} FROM (${model}) AS m FULL OUTER JOIN ${store.tables.snapshot} AS p ` +
      `ON p.KEY_TEXT = CAST(m.${key} AS VARCHAR) WHERE ${where.join(' OR ')}`,
  );
  await rowsIntoDuck({
    rows: statement.streamRows(),
    duck: ctx.req.duck,
    dir: ctx.req.tmpDir,
    signal: ctx.req.signal,
    fields: fields(ctx),
    load: (sql) => `CREATE TABLE ${ROWS} AS ${sql}`,
  });
}

async function count(ctx: NarrowContext, sql: string): Promise<number> {
  return Number((await ctx.req.duck.runAndReadAll(sql)).getRowObjectsJS()[0]?.['n'] ?? 0);
}

/** The staged table and the previous rows' file from the narrowed rows (none: both empty). */
async function finish(ctx: NarrowContext, narrow: NarrowRequest, fromRows: boolean): Promise<number> {
  const duck = ctx.req.duck;
  const keyName = ctx.req.model.primaryKey ?? '';
  const keyType = ctx.columns.find((c) => c.name === keyName)?.type ?? 'VARCHAR';
  const previous =
    `SELECT DISTINCT ${quoteIdent(P.keyText)} AS ${quoteIdent(SNAPSHOT_KEY)}, ${quoteIdent(P.stale)} AS ${quoteIdent(SNAPSHOT_STALE)}, ` +
    `CAST(${quoteIdent(P.key)} AS ${keyType}) AS ${quoteIdent(keyName)}, ${unsignedHashSql(quoteIdent(P.hash))} AS ${quoteIdent(SNAPSHOT_HASH)}, ` +
    `${quoteIdent(P.recordId)} AS ${quoteIdent(SNAPSHOT_RECORD_ID)} FROM ${ROWS} WHERE ${quoteIdent(P.keyText)} IS NOT NULL`;
  const model = [...ctx.plans.map((p) => p.name), ...ctx.hashes.map((h) => h.column)].map(quoteIdent);
  if (!fromRows) {
    const empty = [...ctx.plans.map((p) => p.duckType), ...ctx.hashes.map(() => 'UBIGINT')];
    const layout = [
      ...empty.map((type, i) => `CAST(NULL AS ${type}) AS ${model[i]}`),
      `NULL::BOOLEAN AS ${quoteIdent(PRESENT)}`,
      ...Object.values(P).map(
        (name) => `CAST(NULL AS ${name === P.stale ? 'BOOLEAN' : 'VARCHAR'}) AS ${quoteIdent(name)}`,
      ),
    ];
    await duck.run(`CREATE TABLE ${ROWS} AS SELECT ${layout.join(', ')} WHERE FALSE`);
  }
  const written = await duck.runAndReadAll(
    `COPY (${previous}) TO ${quoteLiteral(narrow.previousFile)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  await duck.run(
    `CREATE TABLE ${quoteIdent(ctx.req.table)} AS SELECT ${model.join(', ')} FROM ${ROWS} WHERE ${quoteIdent(PRESENT)} IS NOT DISTINCT FROM TRUE`,
  );
  await duck.run(`DROP TABLE ${ROWS}`);
  return Number(written.getRowObjectsJS()[0]?.['Count'] ?? 0);
}

/**
 * Stage the rows that may differ from the warehouse snapshot; undefined (nothing staged) when this staging
 * cannot be narrowed exactly, so the caller stages every row.
 */
export async function stageNarrowed(
  ctx: NarrowContext,
  store: SnowflakeWarehouseSnapshot,
  narrow: NarrowRequest,
): Promise<NarrowOutcome | undefined> {
  const compare = ctx.hashes.find((h) => h.column === stagedHashColumn(narrow.compare));
  const keyPlan = ctx.plans.find((p) => p.name === ctx.req.model.primaryKey);
  if (!compare || !keyPlan || !narrowableKey(keyPlan)) return undefined;
  const key = quoteName(keyPlan.name);
  let state: StateRow;
  try {
    state = await readState(ctx, store, narrow);
  } catch (error) {
    throw store.failed(error, 'reading the warehouse snapshot');
  }
  const summed = await checksum(ctx, key, compare, narrow, state);
  if (summed.same) {
    const previousRows = await finish(ctx, narrow, false);
    return { rows: 0, modelRows: summed.rows, previousRows, byChecksum: true };
  }
  await differing(ctx, store, key, compare, narrow);
  const previousRows = await finish(ctx, narrow, true);
  const rows = await count(ctx, `SELECT count(*) AS n FROM ${quoteIdent(ctx.req.table)}`);
  return { rows, modelRows: summed.rows, previousRows, byChecksum: false };
}
