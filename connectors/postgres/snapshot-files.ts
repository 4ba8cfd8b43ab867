// Snapshot rows between the run's local Parquet files and PostgreSQL tables: DuckDB writes a file as CSV
// for COPY ... FROM STDIN, and reads COPY ... TO STDOUT back into Parquet. Row hashes are UBIGINT in the
// engine and PostgreSQL's signed bigint in the tables (shifted by 2^63, one to one); typed keys travel as
// DuckDB's text of them.
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { DuckDBConnection } from '@duckdb/node-api';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Logger } from '../../core/connectors.ts';
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
import { unsignedHashSql } from './hash.ts';
import { copyIntoDuck } from './transfer.ts';

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
async function typedKeyOf(
  duck: DuckDBConnection,
  source: string,
): Promise<{ columns: Map<string, string>; typed: string | undefined }> {
  const described = (await duck.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`)).getRowObjectsJS();
  const columns = new Map(described.map((r) => [String(r['column_name']), String(r['column_type'])]));
  return { columns, typed: [...columns.keys()].find((name) => !LAYOUT.has(name)) };
}

/** DuckDB SQL turning a UBIGINT row hash into PostgreSQL's signed bigint (the inverse of unsignedHashSql). */
function signedHashSql(column: string): string {
  return `CAST(CAST(${column} AS HUGEINT) - 9223372036854775808 AS BIGINT)`;
}

/** A snapshot file written as CSV for a table: its rows, and the DuckDB type of its typed key. */
export interface CsvSnapshot {
  file: string;
  rows: number;
  /** Undefined when the file has no typed key (the keys recovered from an old snapshot). */
  keyType: string | undefined;
}

/**
 * Write a snapshot Parquet file (a whole snapshot, or a delta with SNAPSHOT_DELETED) as CSV in the order
 * of the snapshot table: key_text, stale, key, hash, record_id[, deleted].
 */
export async function snapshotCsv(
  duck: DuckDBConnection,
  parquet: string,
  csv: string,
  delta: boolean,
): Promise<CsvSnapshot> {
  const source = `read_parquet(${quoteLiteral(parquet)})`;
  const { columns, typed } = await typedKeyOf(duck, source);
  const key = typed === undefined ? 'NULL' : `CAST(${quoteIdent(typed)} AS VARCHAR)`;
  const recordId = columns.has(SNAPSHOT_RECORD_ID) ? quoteIdent(SNAPSHOT_RECORD_ID) : 'NULL';
  const select = [
    quoteIdent(SNAPSHOT_KEY),
    quoteIdent(SNAPSHOT_STALE),
    `${key} AS key`,
    `${signedHashSql(quoteIdent(SNAPSHOT_HASH))} AS hash`,
    `${recordId} AS record_id`,
    ...(delta ? [quoteIdent(SNAPSHOT_DELETED)] : []),
  ];
  // Text is always quoted, so that '' and NULL (an unquoted empty field) stay apart.
  const written = await duck.runAndReadAll(
    `COPY (SELECT ${select.join(', ')} FROM ${source}) TO ${quoteLiteral(csv)} ` +
      `(FORMAT csv, HEADER false, FORCE_QUOTE (${quoteIdent(SNAPSHOT_KEY)}, key, record_id))`,
  );
  const rows = Number(written.getRowObjectsJS()[0]?.['Count'] ?? 0);
  return { file: csv, rows, keyType: typed === undefined ? undefined : columns.get(typed) };
}

/** A pending-keys Parquet file as CSV for the pending table: run_id, key_text, key, op, hash, epoch. */
export async function pendingCsv(
  duck: DuckDBConnection,
  parquet: string,
  csv: string,
  runId: string,
): Promise<void> {
  const source = `read_parquet(${quoteLiteral(parquet)})`;
  const { typed } = await typedKeyOf(duck, source);
  const key = typed === undefined ? 'NULL' : `CAST(${quoteIdent(typed)} AS VARCHAR)`;
  await duck.run(
    `COPY (SELECT ${quoteLiteral(runId)}, ${quoteIdent(SNAPSHOT_KEY)}, ${key} AS key, ${quoteIdent(PENDING_OP)}, ` +
      `${signedHashSql(quoteIdent(SNAPSHOT_HASH))}, ${quoteIdent(PENDING_EPOCH)} FROM ${source}) TO ${quoteLiteral(csv)} ` +
      `(FORMAT csv, HEADER false, FORCE_QUOTE (${quoteIdent(SNAPSHOT_KEY)}, key))`,
  );
}

/** A run's pending keys out of the pending table, as the engine's Parquet (the typed key as text). */
export async function pendingToParquet(input: {
  client: pg.Client;
  selectSql: string;
  duck: DuckDBConnection;
  file: string;
  keyName: string;
  dir: string;
  signal: AbortSignal;
  log: Logger;
}): Promise<void> {
  const fields: CsvField[] = [
    { type: 'VARCHAR', load: (f) => `${f} AS ${quoteIdent(SNAPSHOT_KEY)}` },
    { type: 'VARCHAR', load: (f) => `${f} AS ${quoteIdent(input.keyName)}` },
    { type: 'VARCHAR', load: (f) => `${f} AS ${quoteIdent(PENDING_OP)}` },
    { type: 'BIGINT', load: (f) => `${unsignedHashSql(f)} AS ${quoteIdent(SNAPSHOT_HASH)}` },
    { type: 'VARCHAR', load: (f) => `${f} AS ${quoteIdent(PENDING_EPOCH)}` },
  ];
  await copyIntoDuck({
    client: input.client,
    copySql: `COPY (${input.selectSql}) TO STDOUT WITH (FORMAT csv)`,
    duck: input.duck,
    table: 'syncline_pending_download',
    loadSql: (path) =>
      `COPY (${readCsvSql(path, fields)}) TO ${quoteLiteral(input.file)} (FORMAT parquet, COMPRESSION zstd)`,
    dir: input.dir,
    signal: input.signal,
    log: input.log,
  });
}

/** COPY a CSV file into PostgreSQL (`copySql` is a COPY ... FROM STDIN WITH (FORMAT csv)). */
export async function copyCsvIn(client: pg.Client, copySql: string, csv: string): Promise<void> {
  await pipeline(createReadStream(csv), client.query(copyFrom(copySql)));
}

/** A column of a COPY ... TO STDOUT read into DuckDB: the CSV field's type and the expression loading it. */
export interface CsvField {
  type: string;
  /** DuckDB SQL over the field (named f<i>), with the column's name in the file; empty: leave it out. */
  load: (field: string) => string;
}

/**
 * DuckDB's read_csv of exactly what PostgreSQL's COPY (FORMAT csv) writes: no sniffing, NULL only unquoted;
 * `sizes` for rows longer than DuckDB's default line size.
 */
export function readCsvSql(
  file: string,
  fields: CsvField[],
  sizes?: { maxLineSize: number; bufferSize: number },
): string {
  const columns = fields.map((f, i) => `${quoteLiteral(`f${i}`)}: ${quoteLiteral(f.type)}`).join(', ');
  // A field whose load is empty is read and dropped.
  const select = fields
    .map((f, i) => f.load(`f${i}`))
    .filter((sql) => sql !== '')
    .join(', ');
  return (
    `SELECT ${select} FROM read_csv(${quoteLiteral(file)}, columns = {${columns}}, header = false, ` +
    `auto_detect = false, delim = ',', quote = '"', escape = '"', new_line = '\\n', nullstr = '', ` +
    `allow_quoted_nulls = false` +
    (sizes ? `, max_line_size = ${sizes.maxLineSize}, buffer_size = ${sizes.bufferSize}` : '') +
    ')'
  );
}

/**
 * The snapshot rows a COPY out of the snapshot table selects (key_text, stale, key as text, hash,
 * record_id) as a local Parquet file in the engine's layout; `keyName`/`keyType` name and type the typed
 * key (none: the file has no typed key column). Returns the rows written.
 */
export async function snapshotRowsToParquet(input: {
  client: pg.Client;
  /** SELECT key_text, stale, key::text, hash, record_id ... (PostgreSQL). */
  selectSql: string;
  duck: DuckDBConnection;
  file: string;
  keyName: string | undefined;
  keyType: string;
  dir: string;
  signal: AbortSignal;
  log: Logger;
}): Promise<number> {
  const { keyName } = input;
  const fields: CsvField[] = [
    { type: 'VARCHAR', load: (f) => `${f} AS ${quoteIdent(SNAPSHOT_KEY)}` },
    { type: 'BOOLEAN', load: (f) => `${f} AS ${quoteIdent(SNAPSHOT_STALE)}` },
    {
      type: 'VARCHAR',
      load: (f) => (keyName === undefined ? '' : `CAST(${f} AS ${input.keyType}) AS ${quoteIdent(keyName)}`),
    },
    { type: 'BIGINT', load: (f) => `${unsignedHashSql(f)} AS ${quoteIdent(SNAPSHOT_HASH)}` },
    { type: 'VARCHAR', load: (f) => `${f} AS ${quoteIdent(SNAPSHOT_RECORD_ID)}` },
  ];
  const table = 'syncline_snapshot_download';
  await copyIntoDuck({
    client: input.client,
    copySql: `COPY (${input.selectSql}) TO STDOUT WITH (FORMAT csv)`,
    duck: input.duck,
    table,
    loadSql: (path) => `CREATE TABLE ${table} AS ${readCsvSql(path, fields)}`,
    dir: input.dir,
    signal: input.signal,
    log: input.log,
  });
  try {
    const written = await input.duck.runAndReadAll(
      `COPY ${table} TO ${quoteLiteral(input.file)} (FORMAT parquet, COMPRESSION zstd)`,
    );
    return Number(written.getRowObjectsJS()[0]?.['Count'] ?? 0);
  } finally {
    await input.duck.run(`DROP TABLE IF EXISTS ${table}`);
  }
}

/** A scratch file name in `dir`. */
export function scratch(dir: string, name: string): string {
  return join(dir, `pg-snapshot-${name}-${process.pid}-${Date.now()}`);
}
