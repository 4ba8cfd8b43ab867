// Snapshot rows between the run's local Parquet files and BigQuery tables. DuckDB writes a file as JSON
// lines for tabledata.insertAll (hashes and keys as strings, so no value passes through a JavaScript
// number), and raw rows read back go through CSV into Parquet. Row hashes are UBIGINT in the engine and
// BigQuery's signed INT64 in the tables (shifted by 2^63, one to one).
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
import type { TextColumn } from '../shared/text-stage.ts';
import { signedHashSql, unsignedHashSql } from './hash.ts';
import { cellText, rowsIntoDuck } from './snapshot-io.ts';
import type { RawCell } from './types.ts';

const LAYOUT = new Set([
  SNAPSHOT_KEY,
  SNAPSHOT_STALE,
  SNAPSHOT_HASH,
  SNAPSHOT_RECORD_ID,
  SNAPSHOT_DELETED,
  PENDING_OP,
  PENDING_EPOCH,
]);

/** The columns of a local Parquet file, and its typed key column (the one not of the layout). */
export async function typedKeyOf(
  duck: DuckDBConnection,
  parquet: string,
): Promise<{ columns: Map<string, string>; typed: string | undefined }> {
  const described = (
    await duck.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${quoteLiteral(parquet)})`)
  ).getRowObjectsJS();
  const columns = new Map(described.map((r) => [String(r['column_name']), String(r['column_type'])]));
  return { columns, typed: [...columns.keys()].find((name) => !LAYOUT.has(name)) };
}

/** A snapshot file (whole, or a delta) as JSON lines in the layout of the snapshot (or delta) table. */
export async function snapshotJson(
  duck: DuckDBConnection,
  parquet: string,
  json: string,
  delta: boolean,
): Promise<{ rows: number; keyType: string | undefined }> {
  const { columns, typed } = await typedKeyOf(duck, parquet);
  const select = [
    `${quoteIdent(SNAPSHOT_KEY)} AS key_text`,
    `${quoteIdent(SNAPSHOT_STALE)} AS stale`,
    `${typed === undefined ? 'NULL' : `CAST(${quoteIdent(typed)} AS VARCHAR)`} AS key`,
    `CAST(${signedHashSql(quoteIdent(SNAPSHOT_HASH))} AS VARCHAR) AS row_hash`,
    `${columns.has(SNAPSHOT_RECORD_ID) ? quoteIdent(SNAPSHOT_RECORD_ID) : 'NULL'} AS record_id`,
    ...(delta ? [`${quoteIdent(SNAPSHOT_DELETED)} AS deleted`] : []),
  ];
  const written = await duck.runAndReadAll(
    `COPY (SELECT ${select.join(', ')} FROM read_parquet(${quoteLiteral(parquet)})) TO ${quoteLiteral(json)} (FORMAT json)`,
  );
  return {
    rows: Number(written.getRowObjectsJS()[0]?.['Count'] ?? 0),
    keyType: typed === undefined ? undefined : columns.get(typed),
  };
}

/** A pending-keys file as JSON lines for a pending table. */
export async function pendingJson(duck: DuckDBConnection, parquet: string, json: string): Promise<void> {
  const { typed } = await typedKeyOf(duck, parquet);
  const key = typed === undefined ? 'NULL' : `CAST(${quoteIdent(typed)} AS VARCHAR)`;
  await duck.run(
    `COPY (SELECT ${quoteIdent(SNAPSHOT_KEY)} AS key_text, ${key} AS key, ${quoteIdent(PENDING_OP)} AS op, ` +
      `CAST(${signedHashSql(quoteIdent(SNAPSHOT_HASH))} AS VARCHAR) AS row_hash, ${quoteIdent(PENDING_EPOCH)} AS epoch ` +
      `FROM read_parquet(${quoteLiteral(parquet)})) TO ${quoteLiteral(json)} (FORMAT json)`,
  );
}

const text = (cells: RawCell[]) => cells.map(cellText);

/**
 * Snapshot rows (key_text, stale, key as text, row_hash, record_id) into a local Parquet file in the
 * engine's layout; `keyName`/`keyType` name and type the typed key (none: left out). Returns the rows.
 */
export async function snapshotRowsToParquet(input: {
  duck: DuckDBConnection;
  dir: string;
  rows: AsyncIterable<RawCell[]>;
  file: string;
  keyName: string | undefined;
  keyType: string;
}): Promise<number> {
  const { keyName } = input;
  const columns: TextColumn[] = [
    { name: SNAPSHOT_KEY, duckType: 'VARCHAR', sourceType: 'STRING' },
    { name: SNAPSHOT_STALE, duckType: 'BOOLEAN', sourceType: 'BOOL' },
    { name: keyName ?? '__key', duckType: input.keyType, sourceType: 'STRING' },
    { name: SNAPSHOT_HASH, duckType: 'UBIGINT', sourceType: 'INT64', load: unsignedHashSql },
    { name: SNAPSHOT_RECORD_ID, duckType: 'VARCHAR', sourceType: 'STRING' },
  ];
  const keep = columns.filter((_c, i) => i !== 2 || keyName !== undefined).map((c) => quoteIdent(c.name));
  await rowsIntoDuck({
    duck: input.duck,
    dir: input.dir,
    name: 'snapshot',
    columns,
    rows: input.rows,
    convert: text,
    into: (select) =>
      `COPY (SELECT ${keep.join(', ')} FROM (${select})) TO ${quoteLiteral(input.file)} (FORMAT parquet, COMPRESSION zstd)`,
  });
  const counted = await input.duck.runAndReadAll(
    `SELECT count(*) AS n FROM read_parquet(${quoteLiteral(input.file)})`,
  );
  return Number(counted.getRowObjectsJS()[0]?.['n'] ?? 0);
}

/** A run's pending keys (key_text, key, op, row_hash, epoch) as the engine's Parquet (typed key as text). */
export async function pendingRowsToParquet(input: {
  duck: DuckDBConnection;
  dir: string;
  rows: AsyncIterable<RawCell[]>;
  file: string;
  keyName: string;
}): Promise<void> {
  const columns: TextColumn[] = [
    { name: SNAPSHOT_KEY, duckType: 'VARCHAR', sourceType: 'STRING' },
    { name: input.keyName, duckType: 'VARCHAR', sourceType: 'STRING' },
    { name: PENDING_OP, duckType: 'VARCHAR', sourceType: 'STRING' },
    { name: SNAPSHOT_HASH, duckType: 'UBIGINT', sourceType: 'INT64', load: unsignedHashSql },
    { name: PENDING_EPOCH, duckType: 'VARCHAR', sourceType: 'STRING' },
  ];
  await rowsIntoDuck({
    duck: input.duck,
    dir: input.dir,
    name: 'pending',
    columns,
    rows: input.rows,
    convert: text,
    into: (select) => `COPY (${select}) TO ${quoteLiteral(input.file)} (FORMAT parquet, COMPRESSION zstd)`,
  });
}
