// Small DuckDB helpers the connectors share.
import type { DuckDBConnection } from '@duckdb/node-api';
import type { ColumnInfo } from '../../core/connectors.ts';
import { quoteIdent } from './sql.ts';

/** The columns of a DuckDB table, in order, with their logical types. */
export async function describeTable(duck: DuckDBConnection, table: string): Promise<ColumnInfo[]> {
  const reader = await duck.runAndReadAll(`DESCRIBE ${quoteIdent(table)}`);
  return reader
    .getRowObjectsJS()
    .map((row) => ({ name: String(row.column_name), type: String(row.column_type) }));
}

export async function countRows(duck: DuckDBConnection, table: string): Promise<number> {
  const reader = await duck.runAndReadAll(`SELECT count(*) AS n FROM ${quoteIdent(table)}`);
  return Number(reader.getRowObjectsJS()[0]?.n ?? 0);
}

/** The first line of a DuckDB error message (the rest repeats the statement). */
export function duckMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0] ?? text;
}
