// A narrowed staging (StagingChoice.narrow) against the Sync's warehouse snapshot (snapshot.ts): the model
// is compared with the snapshot table in PostgreSQL, in the read-only REPEATABLE READ transaction of the
// staging, and only what may differ comes out:
//   1. a checksum over every row (one aggregate, one row out): equal to the state's, nothing differs;
//   2. else the model LEFT JOIN the snapshot: the rows that may differ, each with its snapshot row and the
//      checksum terms of both; when they explain the model's checksum and row count, no key left the
//      model and none is held twice, and that is all;
//   3. else the snapshot rows whose key left the model (an anti-join), and, when the counts say a key of
//      the snapshot is duplicated in the model, every row of such keys.
// Each is a parallel plan where PostgreSQL can make one. Whatever cannot be narrowed exactly (another key
// type, a missing table) stages every row instead.
import type pg from 'pg';
import {
  STAGED_HASH_PREFIX,
  type ColumnInfo,
  type NarrowRequest,
  type StagedHash,
  type StageRequest,
} from '../../core/connectors.ts';
import {
  SNAPSHOT_HASH,
  SNAPSHOT_KEY,
  SNAPSHOT_RECORD_ID,
  SNAPSHOT_STALE,
} from '../../core/diffstore/snapshot-store.ts';
import { SynclineError } from '../../core/errors.ts';
import { rowHashExpr, unsignedHashSql } from './hash.ts';
import { snapshotKeyType } from './snapshot-commit.ts';
import { readCsvSql, type CsvField } from './snapshot-files.ts';
import type { PgWarehouseSnapshot } from './snapshot.ts';
import { checksumTerm, pgKeyType } from './snapshot-tables.ts';
import { quoteIdent, quoteLiteral } from '../shared/sql.ts';
import type { ColumnPlan } from './types.ts';
import type { CsvSizes, TransferJob } from './source.ts';

/** Key types PostgreSQL compares exactly as the engine does (bpchar, citext and name do not). */
const NARROWABLE_KEYS = new Set(['int2', 'int4', 'int8', 'text', 'varchar', 'uuid']);
const TEXT_KEYS = new Set(['text', 'varchar']);

const ROWS = 'narrow_rows';
const DUPLICATES = 'narrow_duplicates';
const REMOVED = 'narrow_removed';
// Names of the columns a narrowed COPY adds to the model's (no model column starts with the prefix).
const PRESENT = `${STAGED_HASH_PREFIX}present`;
const FRESH = `${STAGED_HASH_PREFIX}fresh`;
/** The snapshot row's columns beside the model row's, in DuckDB. */
const P = {
  keyText: quoteIdent(`${STAGED_HASH_PREFIX}p_key_text`),
  stale: quoteIdent(`${STAGED_HASH_PREFIX}p_stale`),
  key: quoteIdent(`${STAGED_HASH_PREFIX}p_key`),
  hash: quoteIdent(`${STAGED_HASH_PREFIX}p_hash`),
  recordId: quoteIdent(`${STAGED_HASH_PREFIX}p_record_id`),
  /** The checksum terms of the model row and of the snapshot row. */
  modelTerm: quoteIdent(`${STAGED_HASH_PREFIX}m_term`),
  term: quoteIdent(`${STAGED_HASH_PREFIX}p_term`),
};

/** The staging the narrowed one runs inside (source.ts). */
export interface NarrowContext {
  req: StageRequest;
  client: pg.Client;
  /** The model's SQL. */
  sql: string;
  plans: ColumnPlan[];
  /** The hashes of the plan, by the source, the i-th as its column. */
  hashes: StagedHash[];
  keyPlan: ColumnPlan;
  columns: ColumnInfo[];
  /** Create the staged table with no row. */
  stageNothing(): Promise<void>;
  transfer(table: string, job: TransferJob): Promise<string>;
  /** Let PostgreSQL hash with parallel workers in this transaction. */
  tune(): Promise<void>;
  fail(error: unknown, what: string): SynclineError;
}

export interface NarrowOutcome {
  rows: number;
  modelRows: number;
  previousRows: number;
  byChecksum: boolean;
}

interface StateRow {
  generation: string;
  rows: number;
  stale: number;
  checksum: string;
  /** The snapshot table's key type (snapshot-tables.ts pgKeyType). */
  keyType: string;
}

/** The state this run read, from inside the staging's transaction; undefined when the staging cannot narrow. */
async function readState(
  ctx: NarrowContext,
  store: PgWarehouseSnapshot,
  narrow: NarrowRequest,
): Promise<StateRow | undefined> {
  const { keyPlan } = ctx;
  const duckKey = ctx.columns.find((c) => c.name === keyPlan.name)?.type ?? 'VARCHAR';
  if (!NARROWABLE_KEYS.has(keyPlan.sourceType)) return undefined;
  const keyType = pgKeyType(duckKey);
  if ((await snapshotKeyType(ctx.client, store.tables)) !== keyType) return undefined;
  const found = await ctx.client.query<StateRow>(
    `SELECT generation::text AS generation, row_count AS rows, stale_count AS stale, checksum::text AS checksum
       FROM ${store.tables.state} WHERE namespace = $1 AND sync = $2`,
    [store.namespace, store.sync],
  );
  const row = found.rows[0];
  if (row?.generation !== narrow.etag) {
    throw new SynclineError(
      'ConcurrentCommit',
      `another run of ${store.namespace}/${store.sync} committed while this one was starting (the generation of ${store.tables.state} moved); the next run diffs against it`,
    );
  }
  return { ...row, rows: Number(row.rows), stale: Number(row.stale), keyType };
}

/** SQL over the model row `m`: whether a column compared for the first time has a value. */
function freshSql(narrow: NarrowRequest): string {
  return narrow.fresh.length === 0
    ? 'FALSE'
    : narrow.fresh.map((c) => `m.${quoteIdent(c)} IS NOT NULL`).join(' OR ');
}

/** The join of the model row `m` with its snapshot row `p` (text compared byte for byte, as the engine does). */
function joinSql(ctx: NarrowContext): string {
  return `${keySql(ctx, 'p', 'key')} = ${keySql(ctx, 'm', ctx.keyPlan.name)}`;
}

function keySql(ctx: NarrowContext, alias: string, column: string): string {
  const key = `${alias}.${quoteIdent(column)}`;
  return TEXT_KEYS.has(ctx.keyPlan.sourceType) ? `${key} COLLATE "C"` : key;
}

/** The model's row count and checksum, and whether they are the snapshot's. */
interface Checksum {
  same: boolean;
  rows: number;
  checksum: bigint;
}

/** SQL over the model row `m` (with its hashes): its term of the checksum. */
function modelTermSql(ctx: NarrowContext, hash: string): string {
  return `hash_record_extended(ROW(${keySql(ctx, 'm', ctx.keyPlan.name)}, ${hash}), 0)`;
}

/** 1. The checksum: whether the model holds exactly the snapshot's keys and hashes (one row out), and its rows. */
async function checksum(ctx: NarrowContext, narrow: NarrowRequest, state: StateRow): Promise<Checksum> {
  const compare = ctx.hashes[narrow.compare] as StagedHash;
  const found = await ctx.client.query<{ n: string; keyed: string; x: string; fresh: boolean }>(
    `SELECT count(*) AS n, count(*) FILTER (WHERE keyed) AS keyed, coalesce(bit_xor(t), 0)::text AS x,
            coalesce(bool_or(f), FALSE) AS fresh
       FROM (SELECT m.${quoteIdent(ctx.keyPlan.name)} IS NOT NULL AS keyed,
                    ${modelTermSql(ctx, rowHashExpr(ctx.plans, compare.columns))} AS t,
                    (${freshSql(narrow)}) AS f
               FROM (${ctx.sql}\n) AS m) AS s`,
  );
  const r = found.rows[0];
  const n = Number(r?.n ?? 0);
  const same =
    r !== undefined &&
    n === state.rows &&
    Number(r.keyed) === n &&
    r.x === state.checksum &&
    state.stale === 0 &&
    !r.fresh;
  return { same, rows: n, checksum: BigInt(r?.x ?? 0) };
}

/** The CSV fields of a narrowed COPY: the model's columns, the hashes, presence, the snapshot row. */
function fields(ctx: NarrowContext): CsvField[] {
  return [
    ...ctx.plans.map((p) => ({
      type: p.csvType,
      load: (f: string) => `${p.loadExpr(f)} AS ${quoteIdent(p.name)}`,
    })),
    ...ctx.hashes.map((h) => ({
      type: 'BIGINT',
      load: (f: string) => `${unsignedHashSql(f)} AS ${quoteIdent(h.column)}`,
    })),
    { type: 'BOOLEAN', load: (f: string) => `${f} AS ${quoteIdent(PRESENT)}` },
    { type: 'VARCHAR', load: (f: string) => `${f} AS ${P.keyText}` },
    { type: 'BOOLEAN', load: (f: string) => `${f} AS ${P.stale}` },
    { type: 'VARCHAR', load: (f: string) => `${f} AS ${P.key}` },
    { type: 'BIGINT', load: (f: string) => `${f} AS ${P.hash}` },
    { type: 'VARCHAR', load: (f: string) => `${f} AS ${P.recordId}` },
    { type: 'BIGINT', load: (f: string) => `${f} AS ${P.modelTerm}` },
    { type: 'BIGINT', load: (f: string) => `${f} AS ${P.term}` },
  ];
}

/** The model's rows with their hashes and presence (`m`, aliased `m`), `where` over the model row. */
function hashedModel(ctx: NarrowContext, narrow: NarrowRequest, where = ''): string {
  const hashes = ctx.hashes.map((h) => `${rowHashExpr(ctx.plans, h.columns)} AS ${quoteIdent(h.column)}`);
  return (
    `(SELECT m.*, ${hashes.join(', ')}, (${freshSql(narrow)}) AS ${quoteIdent(FRESH)}, TRUE AS ${quoteIdent(PRESENT)} ` +
    `FROM (${ctx.sql}\n) AS m${where ? ` WHERE ${where}` : ''}) AS m`
  );
}

/**
 * A COPY of `from` in the layout of fields(): the model row `m` (unless `snapshotOnly`) with its snapshot
 * row `p`, and the checksum terms of both.
 */
function copyOf(
  ctx: NarrowContext,
  input: { from: string; where: string; keyType: string; compare: StagedHash; snapshotOnly?: boolean },
): string {
  const model = input.snapshotOnly
    ? [...ctx.plans.map(() => 'NULL'), ...ctx.hashes.map(() => 'NULL'), 'NULL']
    : [
        ...ctx.plans.map((p) => p.copyExpr),
        ...ctx.hashes.map((h) => `m.${quoteIdent(h.column)}`),
        `m.${quoteIdent(PRESENT)}`,
      ];
  const modelTerm = input.snapshotOnly ? 'NULL' : modelTermSql(ctx, `m.${quoteIdent(input.compare.column)}`);
  const select = [
    ...model,
    'p.key_text',
    'p.stale',
    'p.key::text',
    'p.hash',
    'p.record_id',
    modelTerm,
    `CASE WHEN p.key_text IS NOT NULL THEN ${checksumTerm('p', input.keyType)} END`,
  ];
  return `COPY (SELECT ${select.join(', ')} FROM ${input.from} WHERE ${input.where}) TO STDOUT WITH (FORMAT csv)`;
}

function job(ctx: NarrowContext, table: string, copySql: string): TransferJob {
  return {
    copySql,
    loadSql: (path: string, sizes: CsvSizes) =>
      `CREATE TABLE ${table} AS ${readCsvSql(path, fields(ctx), sizes)}`,
  };
}

/** 2. The model rows that may differ, each with its snapshot row. */
async function differing(
  ctx: NarrowContext,
  store: PgWarehouseSnapshot,
  narrow: NarrowRequest,
  keyType: string,
): Promise<void> {
  const compare = ctx.hashes[narrow.compare] as StagedHash;
  const from = `${hashedModel(ctx, narrow)} LEFT JOIN ${store.tables.snapshot} p ON ${joinSql(ctx)}`;
  const where =
    `p.key_text IS NULL OR p.stale OR p.hash IS DISTINCT FROM m.${quoteIdent(compare.column)} ` +
    `OR m.${quoteIdent(FRESH)}`;
  await ctx.transfer(ROWS, job(ctx, ROWS, copyOf(ctx, { from, where, keyType, compare })));
}

/** Whether the rows of step 2 explain the model's row count and checksum (from the snapshot's). */
async function explained(ctx: NarrowContext, state: StateRow, model: Checksum): Promise<boolean> {
  const reader = await ctx.req.duck.runAndReadAll(
    `SELECT (SELECT count(*) FROM ${ROWS}) AS m, (SELECT coalesce(bit_xor(${P.modelTerm}), 0) FROM ${ROWS}) AS mx,
            count(*) AS p, coalesce(bit_xor(t), 0) AS px
       FROM (SELECT DISTINCT ${P.keyText}, ${P.term} AS t FROM ${ROWS} WHERE ${P.keyText} IS NOT NULL)`,
  );
  const r = reader.getRowObjectsJS()[0] ?? {};
  const rows = state.rows - Number(r['p'] ?? 0) + Number(r['m'] ?? 0);
  const x = BigInt.asIntN(
    64,
    BigInt(state.checksum) ^ BigInt(String(r['px'] ?? 0)) ^ BigInt(String(r['mx'] ?? 0)),
  );
  return rows === model.rows && x === model.checksum;
}

/** 3a. The snapshot rows whose key is no longer in the model. */
async function removedRows(
  ctx: NarrowContext,
  store: PgWarehouseSnapshot,
  narrow: NarrowRequest,
  keyType: string,
): Promise<number> {
  const compare = ctx.hashes[narrow.compare] as StagedHash;
  const from = `${store.tables.snapshot} p`;
  const where = `NOT EXISTS (SELECT 1 FROM (${ctx.sql}\n) AS m WHERE ${joinSql(ctx)})`;
  await ctx.transfer(
    REMOVED,
    job(ctx, REMOVED, copyOf(ctx, { from, where, keyType, compare, snapshotOnly: true })),
  );
  const duck = ctx.req.duck;
  const n = await countOf(ctx, `SELECT count(*) AS n FROM ${REMOVED}`);
  await duck.run(`INSERT INTO ${ROWS} SELECT * FROM ${REMOVED}`);
  await duck.run(`DROP TABLE ${REMOVED}`);
  return n;
}

/** 3b. Every row of the keys the model holds more than once (with the snapshot row of each). */
async function duplicates(
  ctx: NarrowContext,
  store: PgWarehouseSnapshot,
  narrow: NarrowRequest,
  keyType: string,
): Promise<void> {
  const pk = quoteIdent(ctx.keyPlan.name);
  const compare = ctx.hashes[narrow.compare] as StagedHash;
  const held = `m.${pk} IN (SELECT d.${pk} FROM (${ctx.sql}\n) AS d WHERE d.${pk} IS NOT NULL GROUP BY d.${pk} HAVING count(*) > 1)`;
  const from = `${hashedModel(ctx, narrow, held)} LEFT JOIN ${store.tables.snapshot} p ON ${joinSql(ctx)}`;
  await ctx.transfer(
    DUPLICATES,
    job(ctx, DUPLICATES, copyOf(ctx, { from, where: 'TRUE', keyType, compare })),
  );
  const duck = ctx.req.duck;
  await duck.run(
    `DELETE FROM ${ROWS} WHERE ${quoteIdent(PRESENT)} AND ${pk} IN (SELECT ${pk} FROM ${DUPLICATES})`,
  );
  await duck.run(`INSERT INTO ${ROWS} SELECT * FROM ${DUPLICATES}`);
  await duck.run(`DROP TABLE ${DUPLICATES}`);
}

async function countOf(ctx: NarrowContext, sql: string): Promise<number> {
  const reader = await ctx.req.duck.runAndReadAll(sql);
  return Number(reader.getRowObjectsJS()[0]?.['n'] ?? 0);
}

/** The staged table and the previous rows' file, from the narrowed rows (none: both empty). */
async function finish(ctx: NarrowContext, narrow: NarrowRequest, fromRows: boolean): Promise<number> {
  const duck = ctx.req.duck;
  const pk = quoteIdent(ctx.keyPlan.name);
  const keyType = ctx.columns.find((c) => c.name === ctx.keyPlan.name)?.type ?? 'VARCHAR';
  const previous = fromRows
    ? `SELECT DISTINCT ${P.keyText} AS ${quoteIdent(SNAPSHOT_KEY)}, ${P.stale} AS ${quoteIdent(SNAPSHOT_STALE)}, ` +
      `CAST(${P.key} AS ${keyType}) AS ${pk}, ${unsignedHashSql(P.hash)} AS ${quoteIdent(SNAPSHOT_HASH)}, ` +
      `${P.recordId} AS ${quoteIdent(SNAPSHOT_RECORD_ID)} FROM ${ROWS} WHERE ${P.keyText} IS NOT NULL`
    : `SELECT CAST(NULL AS VARCHAR) AS ${quoteIdent(SNAPSHOT_KEY)}, CAST(NULL AS BOOLEAN) AS ${quoteIdent(SNAPSHOT_STALE)}, ` +
      `CAST(NULL AS ${keyType}) AS ${pk}, CAST(NULL AS UBIGINT) AS ${quoteIdent(SNAPSHOT_HASH)}, ` +
      `CAST(NULL AS VARCHAR) AS ${quoteIdent(SNAPSHOT_RECORD_ID)} WHERE FALSE`;
  const written = await duck.runAndReadAll(
    `COPY (${previous}) TO ${quoteLiteral(narrow.previousFile)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  if (fromRows) {
    const columns = [...ctx.plans.map((p) => p.name), ...ctx.hashes.map((h) => h.column)].map(quoteIdent);
    await duck.run(
      `CREATE TABLE ${quoteIdent(ctx.req.table)} AS SELECT ${columns.join(', ')} FROM ${ROWS} WHERE ${quoteIdent(PRESENT)}`,
    );
    await duck.run(`DROP TABLE ${ROWS}`);
  } else {
    await ctx.stageNothing();
  }
  return Number(written.getRowObjectsJS()[0]?.['Count'] ?? 0);
}

/**
 * Stage the rows that may differ from the warehouse snapshot; undefined (nothing staged) when this
 * staging cannot be narrowed exactly, so the caller stages every row.
 */
export async function stageNarrowed(
  ctx: NarrowContext,
  store: PgWarehouseSnapshot,
  narrow: NarrowRequest,
): Promise<NarrowOutcome | undefined> {
  if (!ctx.hashes[narrow.compare]) return undefined;
  let state: StateRow | undefined;
  try {
    state = await readState(ctx, store, narrow);
  } catch (error) {
    throw ctx.fail(error, 'reading the warehouse snapshot');
  }
  if (!state) return undefined;
  await ctx.tune();
  const steps: Record<string, number> = {};
  const step = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await run();
    } finally {
      steps[name] = Math.round(performance.now() - started);
    }
  };
  let summed: Checksum;
  try {
    summed = await step('checksumMs', () => checksum(ctx, narrow, state));
  } catch (error) {
    throw ctx.fail(error, 'the checksum of the model');
  }
  const modelRows = summed.rows;
  if (summed.same) {
    const previousRows = await finish(ctx, narrow, false);
    ctx.req.log.debug({ ...steps }, 'narrowed staging');
    return { rows: 0, modelRows, previousRows, byChecksum: true };
  }
  await step('joinMs', () => differing(ctx, store, narrow, state.keyType));
  if (!(await explained(ctx, state, summed))) {
    const removed = await step('removedMs', () => removedRows(ctx, store, narrow, state.keyType));
    const added = await countOf(
      ctx,
      `SELECT count(*) AS n FROM ${ROWS} WHERE ${quoteIdent(PRESENT)} AND ${P.keyText} IS NULL`,
    );
    // Model rows of keys in the snapshot against the snapshot's keys still in the model: more rows than
    // keys means a key of the snapshot is duplicated in the model (unchanged copies do not come out).
    if (modelRows - added !== state.rows - removed)
      await step('duplicatesMs', () => duplicates(ctx, store, narrow, state.keyType));
  }
  const previousRows = await step('finishMs', () => finish(ctx, narrow, true));
  const rows = await countOf(ctx, `SELECT count(*) AS n FROM ${quoteIdent(ctx.req.table)}`);
  ctx.req.log.debug({ rows, previousRows, ...steps }, 'narrowed staging');
  return { rows, modelRows, previousRows, byChecksum: false };
}
