// Staging for sources whose driver hands over each value as exact text (MySQL, Snowflake): rows stream
// through a CSV file in the run's scratch folder, which DuckDB reads with every field as VARCHAR and then
// casts to the planned column types. Nothing is parsed into a JavaScript number, so no value is rounded,
// and no more than a stream buffer of rows is ever held in memory.
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SynclineError } from '../../core/errors.ts';
import type { ColumnInfo, StageRequest, StageResult } from '../../core/connectors.ts';
import { countRows, describeTable, duckMessage } from './duck.ts';
import { quoteIdent, quoteLiteral } from './sql.ts';

/** A result column: its DuckDB type, and how its text becomes that type. */
export interface TextColumn {
  name: string;
  /** DuckDB logical type of the staged column. */
  duckType: string;
  /** The type as the source names it, for messages. */
  sourceType: string;
  /** DuckDB expression turning the VARCHAR field `field` into the staged value; by default a CAST. */
  load?: (field: string) => string;
}

/** A field value as the driver gives it: text, bytes (staged as BLOB) or SQL NULL. */
export type TextValue = string | Uint8Array | null | undefined;

function defaultLoad(duckType: string): (field: string) => string {
  if (duckType === 'VARCHAR') return (f) => f;
  if (duckType === 'BLOB') return (f) => `unhex(${f})`;
  return (f) => `CAST(${f} AS ${duckType})`;
}

/** One CSV line: every value quoted, so an unquoted empty field is unambiguously NULL. Bytes go as hex. */
export function csvLine(values: readonly TextValue[]): string {
  let line = '';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) line += ',';
    const value = values[i];
    if (value === null || value === undefined) continue;
    const text =
      typeof value === 'string'
        ? value
        : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
    line += `"${text.includes('"') ? text.replaceAll('"', '""') : text}"`;
  }
  return `${line}\n`;
}

/** Fails when a result names a column twice: the staged table needs one column per name. */
export function assertUniqueNames(names: readonly string[], what = 'the model query'): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) {
      throw new SynclineError(
        'SourceQueryFailed',
        `${what} returns the column "${name}" more than once; give each column a unique name (AS ...)`,
      );
    }
    seen.add(name);
  }
}

/**
 * The longest row DuckDB reads. read_csv's buffer defaults to 16 times this, which must fit the engine's
 * memory limit, so the buffer is set equal to it.
 */
const MAX_ROW_BYTES = 32 * 1024 * 1024;

function loadSql(table: string, file: string, columns: readonly TextColumn[]): string {
  const fields = columns.map((_c, i) => `${quoteLiteral(`c${i}`)}: 'VARCHAR'`).join(', ');
  const select = columns
    .map((c, i) => `${(c.load ?? defaultLoad(c.duckType))(quoteIdent(`c${i}`))} AS ${quoteIdent(c.name)}`)
    .join(', ');
  return (
    `CREATE TABLE ${quoteIdent(table)} AS SELECT ${select} FROM read_csv(${quoteLiteral(file)}, ` +
    `columns = {${fields}}, header = false, auto_detect = false, delim = ',', quote = '"', escape = '"', ` +
    `new_line = '\\n', nullstr = '', allow_quoted_nulls = false, max_line_size = ${MAX_ROW_BYTES}, buffer_size = ${MAX_ROW_BYTES})`
  );
}

/**
 * Create `req.table` with `columns` and fill it from `rows`, an object-mode stream (honouring
 * backpressure) of rows that `toValues` turns into values in column order. `source` names the system in
 * error messages.
 */
export async function stageTextRows(
  req: StageRequest,
  source: string,
  columns: readonly TextColumn[],
  rows: Readable | AsyncIterable<unknown>,
  options: {
    onReadError: (error: unknown) => SynclineError;
    /** Turns one row as the stream yields it into values in column order; by default the row is that already. */
    toValues?: (row: never) => readonly TextValue[];
  },
): Promise<StageResult> {
  const toValues = (options.toValues ?? ((row: readonly TextValue[]) => row)) as (
    row: unknown,
  ) => readonly TextValue[];
  if (columns.length === 0)
    throw new SynclineError('SourceQueryFailed', 'the model query returns no columns');
  assertUniqueNames(columns.map((c) => c.name));
  const file = join(req.tmpDir, `${source.toLowerCase()}-${req.table}.csv`);
  const started = Date.now();
  try {
    const toCsv = new Transform({
      writableObjectMode: true,
      writableHighWaterMark: 256,
      transform(row: unknown, _encoding, done) {
        done(null, csvLine(toValues(row)));
      },
    });
    try {
      await pipeline(rows, toCsv, createWriteStream(file, { highWaterMark: 1 << 20 }), {
        signal: req.signal,
      });
    } catch (error) {
      if (error instanceof SynclineError) throw error;
      throw options.onReadError(error);
    }
    const readMs = Date.now() - started;
    try {
      await req.duck.run(loadSql(req.table, file, columns));
    } catch (error) {
      throw new SynclineError(
        'SourceQueryFailed',
        `loading the model rows from ${source} into DuckDB failed: ${duckMessage(error)}`,
        { cause: error },
      );
    }
    const count = await countRows(req.duck, req.table);
    req.log.info({ rows: count, readMs, loadMs: Date.now() - started - readMs }, `staged ${source} rows`);
    const staged = await describeTable(req.duck, req.table);
    const described: ColumnInfo[] = staged.map((c, i) => ({ ...c, sourceType: columns[i]?.sourceType }));
    return { columns: described, rows: count };
  } finally {
    await rm(file, { force: true });
  }
}
