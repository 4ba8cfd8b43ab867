// A narrowed staging (StagingChoice.narrow) against the Sync's BigQuery warehouse snapshot (snapshot.ts):
// the model is compared with the snapshot table in BigQuery SQL, and only what may differ comes out:
//   1. a checksum (one row out): the model's row count, keyed rows and BIT_XOR of the fingerprint of
//      (key, row hash), beside the snapshot table's and the state's generation; equal, with no stale row
//      and no value in a newly compared column, nothing differs;
//   2. else the model (hashed, each key's count) FULL JOIN the snapshot table on the typed key: the rows
//      whose key is null, held more than once, new, stale, of another hash or with a value in a fresh
//      column, with their snapshot rows, and the snapshot rows whose key left the model.
// BigQuery runs both as single queries, so there is no third step: a FULL JOIN costs it what a LEFT JOIN
// does. A key type BigQuery does not compare as the engine does stages every row instead.
import {
  STAGED_HASH_PREFIX,
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
import { quoteIdent, quoteLiteral } from '../shared/sql.ts';
import type { TextColumn } from '../shared/text-stage.ts';
import { checksumTermSql, quoteBq, rowHashExpr, unsignedHashSql } from './hash.ts';
import type { BqWarehouseSnapshot } from './snapshot.ts';
import { cellText, isNotFound, rowsIntoDuck, type QueryOptions } from './snapshot-io.ts';
import { NARROWABLE_KEYS, STATE_TABLE, tableSql } from './snapshot-tables.ts';
import type { BigQueryColumnPlan, BigQueryField, RawCell } from './types.ts';

const ROWS = 'bq_narrow_rows';
const PRESENT = `${STAGED_HASH_PREFIX}present`;
const P = {
  keyText: `${STAGED_HASH_PREFIX}p_key_text`,
  stale: `${STAGED_HASH_PREFIX}p_stale`,
  key: `${STAGED_HASH_PREFIX}p_key`,
  hash: `${STAGED_HASH_PREFIX}p_hash`,
  recordId: `${STAGED_HASH_PREFIX}p_record_id`,
};

/** The staging the narrowed one runs inside (source.ts). */
export interface NarrowContext {
  req: StageRequest;
  /** The model's SQL. */
  sql: string;
  fields: BigQueryField[];
  plans: BigQueryColumnPlan[];
  hashes: StagedHash[];
  /** The model's primary key and its DuckDB type. */
  key: { name: string; duckType: string };
  /** Labels and default dataset of the model's jobs. */
  job: Omit<QueryOptions, 'query'>;
  /** Create the staged table with no row. */
  stageNothing(): Promise<void>;
}

export interface NarrowOutcome {
  rows: number;
  modelRows: number;
  previousRows: number;
  byChecksum: boolean;
}

const READ = {
  permission: 'bigquery.tables.getData',
  what: 'comparing the model with the warehouse snapshot',
};

function concurrent(store: BqWarehouseSnapshot): SynclineError {
  return new SynclineError(
    'ConcurrentCommit',
    `another run of ${store.namespace}/${store.sync} committed while this one was starting (the generation of ${store.ref.dataset}.${STATE_TABLE} moved); the next run diffs against it`,
  );
}

/** SQL over the model row `m`: whether a column compared for the first time has a value. */
function freshSql(narrow: NarrowRequest): string {
  return narrow.fresh.length === 0
    ? 'FALSE'
    : narrow.fresh.map((c) => `m.${quoteBq(c)} IS NOT NULL`).join(' OR ');
}

function model(ctx: NarrowContext): string {
  return `(\n${ctx.sql}\n) AS m`;
}

/** 1. Whether the model holds exactly the snapshot's keys and hashes, and how many rows it has. */
async function checksum(
  ctx: NarrowContext,
  store: BqWarehouseSnapshot,
  narrow: NarrowRequest,
  table: string,
): Promise<{ same: boolean; rows: number }> {
  const compare = ctx.hashes[narrow.compare] as StagedHash;
  const pk = `m.${quoteBq(ctx.key.name)}`;
  const term = checksumTermSql(pk, rowHashExpr(ctx.fields, compare.columns));
  const found = await store.jobs.few(
    {
      ...ctx.job,
      query: `SELECT CAST(mm.n AS STRING), CAST(mm.keyed AS STRING), CAST(IFNULL(mm.x, 0) AS STRING), IFNULL(mm.f, FALSE),
                     CAST(pp.n AS STRING), CAST(pp.s AS STRING), CAST(IFNULL(pp.x, 0) AS STRING),
                     (SELECT CAST(MAX(generation) AS STRING) FROM ${tableSql(store.ref.dataset, STATE_TABLE)}
                       WHERE namespace = @namespace AND sync = @sync)
                FROM (SELECT COUNT(*) AS n, COUNTIF(${pk} IS NOT NULL) AS keyed, BIT_XOR(${term}) AS x,
                             LOGICAL_OR(${freshSql(narrow)}) AS f FROM ${model(ctx)}) AS mm
               CROSS JOIN (SELECT COUNT(*) AS n, COUNTIF(p.stale) AS s, BIT_XOR(${checksumTermSql('p.key', 'p.row_hash')}) AS x
                             FROM ${tableSql(store.ref.dataset, table)} AS p) AS pp`,
      params: { namespace: store.namespace, sync: store.sync },
    },
    READ,
  );
  const r = (found[0] ?? []).map(cellText);
  if (r[7] !== narrow.etag) throw concurrent(store);
  const rows = Number(r[0] ?? 0);
  const same =
    rows === Number(r[4]) && Number(r[1]) === rows && r[2] === r[6] && r[5] === '0' && r[3] === 'false';
  return { same, rows };
}

/** The CSV columns of the diff's result: the model's, its hashes, presence, the snapshot row. */
function columns(ctx: NarrowContext): TextColumn[] {
  return [
    ...ctx.plans,
    ...ctx.hashes.map((h) => ({
      name: h.column,
      duckType: 'UBIGINT',
      sourceType: 'INT64',
      load: unsignedHashSql,
    })),
    { name: PRESENT, duckType: 'BOOLEAN', sourceType: 'BOOL' },
    { name: P.keyText, duckType: 'VARCHAR', sourceType: 'STRING' },
    { name: P.stale, duckType: 'BOOLEAN', sourceType: 'BOOL' },
    { name: P.key, duckType: 'VARCHAR', sourceType: 'STRING' },
    { name: P.hash, duckType: 'UBIGINT', sourceType: 'INT64', load: unsignedHashSql },
    { name: P.recordId, duckType: 'VARCHAR', sourceType: 'STRING' },
  ];
}

/** 2. The rows that may differ and the snapshot rows of their keys and of the keys that left the model. */
function diffSql(ctx: NarrowContext, narrow: NarrowRequest, table: string, dataset: string): string {
  const compare = ctx.hashes[narrow.compare] as StagedHash;
  const pk = quoteBq(ctx.key.name);
  const hashes = ctx.hashes.map((h) => `${rowHashExpr(ctx.fields, h.columns)} AS ${quoteBq(h.column)}`);
  const inner =
    `SELECT m.*, ${hashes.join(', ')}, (${freshSql(narrow)}) AS __syncline_fresh, TRUE AS ${quoteBq(PRESENT)}, ` +
    // Partitioned by a never-null text of the key: the emulator crashes on a NULL partition key.
    `COUNT(*) OVER (PARTITION BY IF(m.${pk} IS NULL, 'n', CONCAT('v', CAST(m.${pk} AS STRING)))) AS __syncline_n ` +
    `FROM ${model(ctx)}`;
  const select = [
    ...ctx.fields.map((f) => `m.${quoteBq(f.name)}`),
    ...ctx.hashes.map((h) => `CAST(m.${quoteBq(h.column)} AS STRING)`),
    `m.${quoteBq(PRESENT)}`,
    'p.key_text',
    'p.stale',
    'CAST(p.key AS STRING)',
    'CAST(p.row_hash AS STRING)',
    'p.record_id',
  ];
  const where = [
    `m.${quoteBq(PRESENT)} IS NULL`,
    `m.${pk} IS NULL`,
    'm.__syncline_n > 1',
    'p.key_text IS NULL',
    'p.stale',
    `p.row_hash IS DISTINCT FROM m.${quoteBq(compare.column)}`,
    'm.__syncline_fresh',
  ];
  return (
    `SELECT ${select.join(', ')} FROM (${inner}) AS m FULL OUTER JOIN ${tableSql(dataset, table)} AS p ` +
    `ON p.key = m.${pk} WHERE ${where.join(' OR ')}`
  );
}

/** The staged table and the previous rows' file, from the diff's rows (none: both empty). */
async function finish(ctx: NarrowContext, narrow: NarrowRequest, fromRows: boolean): Promise<number> {
  const duck = ctx.req.duck;
  const pk = quoteIdent(ctx.key.name);
  const keyType = ctx.key.duckType;
  const previous = fromRows
    ? `SELECT DISTINCT ${quoteIdent(P.keyText)} AS ${quoteIdent(SNAPSHOT_KEY)}, ${quoteIdent(P.stale)} AS ${quoteIdent(SNAPSHOT_STALE)}, ` +
      `CAST(${quoteIdent(P.key)} AS ${keyType}) AS ${pk}, ${quoteIdent(P.hash)} AS ${quoteIdent(SNAPSHOT_HASH)}, ` +
      `${quoteIdent(P.recordId)} AS ${quoteIdent(SNAPSHOT_RECORD_ID)} FROM ${ROWS} WHERE ${quoteIdent(P.keyText)} IS NOT NULL`
    : `SELECT CAST(NULL AS VARCHAR) AS ${quoteIdent(SNAPSHOT_KEY)}, CAST(NULL AS BOOLEAN) AS ${quoteIdent(SNAPSHOT_STALE)}, ` +
      `CAST(NULL AS ${keyType}) AS ${pk}, CAST(NULL AS UBIGINT) AS ${quoteIdent(SNAPSHOT_HASH)}, ` +
      `CAST(NULL AS VARCHAR) AS ${quoteIdent(SNAPSHOT_RECORD_ID)} WHERE FALSE`;
  const written = await duck.runAndReadAll(
    `COPY (${previous}) TO ${quoteLiteral(narrow.previousFile)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  if (fromRows) {
    const kept = [...ctx.plans.map((p) => p.name), ...ctx.hashes.map((h) => h.column)].map(quoteIdent);
    await duck.run(
      `CREATE TABLE ${quoteIdent(ctx.req.table)} AS SELECT ${kept.join(', ')} FROM ${ROWS} WHERE ${quoteIdent(PRESENT)}`,
    );
    await duck.run(`DROP TABLE ${ROWS}`);
  } else {
    await ctx.stageNothing();
  }
  return Number(written.getRowObjectsJS()[0]?.['Count'] ?? 0);
}

/** Stage the rows that may differ from the warehouse snapshot; undefined when this staging cannot narrow. */
export async function stageNarrowed(
  ctx: NarrowContext,
  store: BqWarehouseSnapshot,
  narrow: NarrowRequest,
): Promise<NarrowOutcome | undefined> {
  if (!ctx.hashes[narrow.compare] || !NARROWABLE_KEYS.has(ctx.key.duckType)) return undefined;
  const state = await store.stateRow();
  if (state === undefined || String(state.generation) !== narrow.etag) throw concurrent(store);
  if (!state.snapshotTable || state.keyType !== ctx.key.duckType) return undefined;
  const table = state.snapshotTable;
  try {
    const summed = await checksum(ctx, store, narrow, table);
    if (summed.same) {
      const previousRows = await finish(ctx, narrow, false);
      return { rows: 0, modelRows: summed.rows, previousRows, byChecksum: true };
    }
    const { rows } = await store.jobs.rows(
      { ...ctx.job, query: diffSql(ctx, narrow, table, store.ref.dataset) },
      READ,
    );
    const plans = ctx.plans;
    const width = plans.length;
    await rowsIntoDuck({
      duck: ctx.req.duck,
      dir: ctx.req.tmpDir,
      name: 'narrow',
      columns: columns(ctx),
      rows,
      convert: (cells: RawCell[]) => [
        ...plans.map((plan, i) => plan.convert(cells[i] ?? { v: null })),
        ...cells.slice(width).map(cellText),
      ],
      into: (select) => `CREATE TABLE ${ROWS} AS ${select}`,
    });
    const previousRows = await finish(ctx, narrow, true);
    const staged = await ctx.req.duck.runAndReadAll(`SELECT count(*) AS n FROM ${quoteIdent(ctx.req.table)}`);
    const stagedRows = Number(staged.getRowObjectsJS()[0]?.['n'] ?? 0);
    return { rows: stagedRows, modelRows: summed.rows, previousRows, byChecksum: false };
  } catch (error) {
    // The table this run read was replaced by another run's commit meanwhile.
    if (isNotFound((error as { cause?: unknown }).cause) && /Table/i.test(String((error as Error).message)))
      throw concurrent(store);
    throw error;
  }
}
