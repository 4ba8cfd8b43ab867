// One Snowflake session for the warehouse snapshot: statements with bind values, every value read back as
// text (hashes are 64-bit and must not pass through a JavaScript number), the rows a DML statement changed,
// and array binds that insert many rows in one request.
import type snowflake from 'snowflake-sdk';
import type { Readable } from 'node:stream';
import type { Logger } from '../../core/connectors.ts';
import { execute, FETCH_AS_STRING } from './source.ts';

export type Bind = string | number | boolean | null;

/** A row of text values keyed by column name (upper case, as Snowflake names unquoted columns). */
export type TextRow = Record<string, string | null>;

/**
 * Values per array-bind request: the SDK uploads a bind of more than CLIENT_STAGE_ARRAY_BINDING_THRESHOLD
 * (100,000) values to a stage first; below it, they travel inline in the request.
 */
export const ARRAY_BIND_VALUES = 60_000;

export class SnowflakeClient {
  readonly connection: snowflake.Connection;
  private readonly queryTag: string;

  constructor(connection: snowflake.Connection, queryTag: string) {
    this.connection = connection;
    this.queryTag = queryTag;
  }

  private options(sqlText: string, binds?: Bind[] | Bind[][]) {
    return {
      sqlText,
      ...(binds ? { binds: binds as snowflake.Binds } : {}),
      fetchAsString: [...FETCH_AS_STRING, 'JSON'] as snowflake.DataType[],
      parameters: { QUERY_TAG: this.queryTag, MULTI_STATEMENT_COUNT: 1, TIMEZONE: 'UTC' },
    };
  }

  /** Every row of a statement (small results only). */
  async rows(sqlText: string, binds?: Bind[]): Promise<TextRow[]> {
    const statement = await execute(this.connection, { ...this.options(sqlText, binds), streamResult: true });
    return new Promise((resolve, reject) => {
      const rows: TextRow[] = [];
      statement
        .streamRows()
        .on('data', (row: TextRow) => rows.push(row))
        .on('end', () => resolve(rows))
        .on('error', reject);
    });
  }

  /** Run a statement; returns the rows it inserted, updated or deleted (DML), else -1. */
  async run(sqlText: string, binds?: Bind[]): Promise<number> {
    const statement = await execute(this.connection, this.options(sqlText, binds));
    return statement.getNumUpdatedRows() ?? -1;
  }

  /** Insert rows (one array of values per row) with array binds of at most ARRAY_BIND_VALUES values. */
  async insertRows(sqlText: string, rows: Bind[][]): Promise<void> {
    if (rows.length === 0) return;
    await execute(this.connection, this.options(sqlText, rows));
  }

  /** End a failed transaction; a failure to is only logged (the session's end rolls it back too). */
  async rollback(log: Logger): Promise<void> {
    try {
      await this.run('ROLLBACK');
    } catch (error) {
      log.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'ROLLBACK failed in Snowflake',
      );
    }
  }

  /** The rows of a query as a stream of value arrays, in column order. */
  async stream(sqlText: string, binds?: Bind[]): Promise<Readable> {
    const statement = await execute(this.connection, {
      ...this.options(sqlText, binds),
      streamResult: true,
      rowMode: 'array',
    });
    return statement.streamRows();
  }
}
