// Snapshot rows between the run's local Parquet files and Snowflake tables. Out of Snowflake: a query's
// rows (text values) stream into a CSV file that DuckDB reads into Parquet. Into Snowflake: DuckDB reads
// the Parquet file as text rows, which go up in INSERT ... VALUES requests with array binds. Row hashes are
// UBIGINT in the engine and Snowflake's signed NUMBER(19,0) in the tables (shifted by 2^63, one to one);
// typed keys travel as DuckDB's text of them.
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import {
  PENDING_EPOCH,
  PENDING_OP,
  SNAPSHOT_DELETED,
  SNAPSHOT_HASH,
  SNAPSHOT_KEY,
  SNAPSHOT_RECORD_ID,
  SNAPSHOT_STALE,
} from '../../core/diffstore/snapshot-store.ts';
import { quoteIdent, quoteLiteral } from '../shared/sql.ts';
import { csvLine, type TextValue } from '../shared/text-stage.ts';
import { ARRAY_BIND_VALUES, type Bind, type SnowflakeClient } from './client.ts';
import { signedHashSql, unsignedHashSql } from './hash.ts';

const LAYOUT = new Set([
  SNAPSHOT_KEY,
  SNAPSHOT_STALE,
  SNAPSHOT_HASH,
  SNAPSHOT_RECORD_ID,
  SNAPSHOT_DELETED,
  PENDING_OP,
  PENDING_EPOCH,
]);

/** The typed key column of a snapshot or pending-keys file (the one not of the layout), with its type. */
export async function typedKeyOf(
  duck: DuckDBConnection,
  source: string,
): Promise<{ columns: Map<string, string>; typed: string | undefined }> {
  const described = (await duck.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`)).getRowObjectsJS();
  const columns = new Map(described.map((r) => [String(r['column_name']), String(r['column_type'])]));
  return { columns, typed: [...columns.keys()].find((name) => !LAYOUT.has(name)) };
}

/** A DuckDB query's rows as text values, `batch` rows at a time (a table numbered by row for the ranges). */
async function* textBatches(duck: DuckDBConnection, select: string, batch: number): AsyncGenerator<Bind[][]> {
  const table = `sf_upload_${process.pid}_${Date.now()}`;
  await duck.run(`CREATE TEMP TABLE ${table} AS SELECT row_number() OVER () AS n, * FROM (${select})`);
  try {
    const total = Number(
      (await duck.runAndReadAll(`SELECT count(*) AS c FROM ${table}`)).getRowObjectsJS()[0]?.['c'] ?? 0,
    );
    for (let from = 0; from < total; from += batch) {
      const reader = await duck.runAndReadAll(
        `SELECT * EXCLUDE (n) FROM ${table} WHERE n > ${from} AND n <= ${from + batch} ORDER BY n`,
      );
      yield reader.getRowsJS().map((row) => row.map((v) => (v === null ? null : String(v))));
    }
  } finally {
    await duck.run(`DROP TABLE IF EXISTS ${table}`);
  }
}

/** Insert the rows of a DuckDB query (text columns in the order of `insertSql`'s VALUES) into Snowflake. */
async function upload(
  client: SnowflakeClient,
  duck: DuckDBConnection,
  select: string,
  insertSql: string,
  columns: number,
): Promise<number> {
  let rows = 0;
  for await (const batch of textBatches(duck, select, Math.floor(ARRAY_BIND_VALUES / columns))) {
    await client.insertRows(insertSql, batch);
    rows += batch.length;
  }
  return rows;
}

/** The rows of a snapshot file (whole, or a delta with SNAPSHOT_DELETED) into the upload table, for a run. */
export async function uploadSnapshotRows(input: {
  client: SnowflakeClient;
  duck: DuckDBConnection;
  parquet: string;
  table: string;
  runId: string;
  delta: boolean;
}): Promise<{ rows: number; keyType: string | undefined }> {
  const source = `read_parquet(${quoteLiteral(input.parquet)})`;
  const { columns, typed } = await typedKeyOf(input.duck, source);
  const key = typed === undefined ? 'NULL' : `CAST(${quoteIdent(typed)} AS VARCHAR)`;
  const recordId = columns.has(SNAPSHOT_RECORD_ID) ? quoteIdent(SNAPSHOT_RECORD_ID) : 'NULL';
  const select = [
    quoteLiteral(input.runId),
    quoteIdent(SNAPSHOT_KEY),
    `CAST(${quoteIdent(SNAPSHOT_STALE)} AS VARCHAR)`,
    key,
    signedHashSql(quoteIdent(SNAPSHOT_HASH)),
    `CAST(${recordId} AS VARCHAR)`,
    input.delta ? `CAST(${quoteIdent(SNAPSHOT_DELETED)} AS VARCHAR)` : "'false'",
  ];
  const rows = await upload(
    input.client,
    input.duck,
    `SELECT ${select.join(', ')} FROM ${source}`,
    `INSERT INTO ${input.table} (RUN_ID, KEY_TEXT, STALE, KEY, HASH, RECORD_ID, DELETED) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    select.length,
  );
  return { rows, keyType: typed === undefined ? undefined : columns.get(typed) };
}

/** A pending-keys file into the pending table, for a run. */
export async function uploadPendingRows(input: {
  client: SnowflakeClient;
  duck: DuckDBConnection;
  parquet: string;
  table: string;
  runId: string;
}): Promise<number> {
  const source = `read_parquet(${quoteLiteral(input.parquet)})`;
  const { typed } = await typedKeyOf(input.duck, source);
  const key = typed === undefined ? 'NULL' : `CAST(${quoteIdent(typed)} AS VARCHAR)`;
  const select = [
    quoteLiteral(input.runId),
    quoteIdent(SNAPSHOT_KEY),
    key,
    quoteIdent(PENDING_OP),
    signedHashSql(quoteIdent(SNAPSHOT_HASH)),
    quoteIdent(PENDING_EPOCH),
  ];
  return upload(
    input.client,
    input.duck,
    `SELECT ${select.join(', ')} FROM ${source}`,
    `INSERT INTO ${input.table} (RUN_ID, KEY_TEXT, KEY, OP, HASH, EPOCH) VALUES (?, ?, ?, ?, ?, ?)`,
    select.length,
  );
}

/** A column of rows read out of Snowflake: its DuckDB expression over the text field (empty: leave it out). */
export type TextField = (field: string) => string;

/**
 * Stream text rows (value arrays) into a CSV file, then run `load(readCsvSql)` in DuckDB, where readCsvSql
 * selects `fields` over the file's text columns.
 */
export async function rowsIntoDuck(input: {
  rows: Readable;
  duck: DuckDBConnection;
  dir: string;
  signal: AbortSignal;
  fields: TextField[];
  load: (select: string) => string;
}): Promise<void> {
  const file = join(input.dir, `sf-snapshot-${process.pid}-${Date.now()}-${Math.random()}.csv`);
  try {
    const toCsv = new Transform({
      writableObjectMode: true,
      transform(row: TextValue[], _encoding, done) {
        done(null, csvLine(row));
      },
    });
    await pipeline(input.rows, toCsv, createWriteStream(file), { signal: input.signal });
    const columns = input.fields.map((_f, i) => `${quoteLiteral(`f${i}`)}: 'VARCHAR'`).join(', ');
    const select = input.fields
      .map((f, i) => f(`f${i}`))
      .filter((sql) => sql !== '')
      .join(', ');
    await input.duck.run(
      input.load(
        `SELECT ${select} FROM read_csv(${quoteLiteral(file)}, columns = {${columns}}, header = false, ` +
          `auto_detect = false, delim = ',', quote = '"', escape = '"', new_line = '\\n', nullstr = '', ` +
          `allow_quoted_nulls = false)`,
      ),
    );
  } finally {
    await rm(file, { force: true });
  }
}

/** Snapshot rows (KEY_TEXT, STALE, KEY, HASH, RECORD_ID as text) as the engine's layout. */
export function snapshotFields(keyName: string | undefined, keyType: string): TextField[] {
  return [
    (f) => `${f} AS ${quoteIdent(SNAPSHOT_KEY)}`,
    (f) => `CAST(${f} AS BOOLEAN) AS ${quoteIdent(SNAPSHOT_STALE)}`,
    (f) => (keyName === undefined ? '' : `CAST(${f} AS ${keyType}) AS ${quoteIdent(keyName)}`),
    (f) => `${unsignedHashSql(f)} AS ${quoteIdent(SNAPSHOT_HASH)}`,
    (f) => `${f} AS ${quoteIdent(SNAPSHOT_RECORD_ID)}`,
  ];
}

/** Pending rows (KEY_TEXT, KEY, OP, HASH, EPOCH as text) as the engine's layout. */
export function pendingFields(keyName: string): TextField[] {
  return [
    (f) => `${f} AS ${quoteIdent(SNAPSHOT_KEY)}`,
    (f) => `${f} AS ${quoteIdent(keyName)}`,
    (f) => `${f} AS ${quoteIdent(PENDING_OP)}`,
    (f) => `${unsignedHashSql(f)} AS ${quoteIdent(SNAPSHOT_HASH)}`,
    (f) => `${f} AS ${quoteIdent(PENDING_EPOCH)}`,
  ];
}

/** The Parquet file of a query's rows: `COPY (select) TO file`. */
export function parquetOf(file: string): (select: string) => string {
  return (select) => `COPY (${select}) TO ${quoteLiteral(file)} (FORMAT parquet, COMPRESSION zstd)`;
}
