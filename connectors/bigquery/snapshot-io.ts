// The BigQuery calls of the warehouse snapshot: query jobs read as raw REST rows, DDL/DML jobs, rows
// streamed in with tabledata.insertAll from a local file DuckDB wrote, and rows read back into DuckDB
// through a CSV file. Every call names the IAM permission it needs, so that a 403 says which one is missing.
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import type { BigQuery, Job, QueryResultsOptions } from '@google-cloud/bigquery';
import type { DuckDBConnection } from '@duckdb/node-api';
import { SynclineError, isSynclineError } from '../../core/errors.ts';
import { quoteIdent, quoteLiteral } from '../shared/sql.ts';
import { csvLine, type TextColumn, type TextValue } from '../shared/text-stage.ts';
import type { RawCell } from './types.ts';

/** Rows per tabledata.insertAll request (BigQuery takes up to 50,000 and 10 MB). */
const INSERT_ROWS = 10_000;
const PAGE_ROWS = 10_000;

/** Where the snapshot lives, for messages and IAM names (project:dataset). */
export interface DatasetRef {
  project: string;
  dataset: string;
  location: string | undefined;
}

/** An API call and the permission it needs: a 403 is reported as that permission missing. */
export interface Needs {
  /** e.g. bigquery.tables.create */
  permission: string;
  /** What it is for, for people. */
  what: string;
  /** On the dataset (default) or on the project. */
  on?: 'project' | 'dataset';
}

interface ApiError {
  code?: number | string;
  message?: string;
  errors?: { reason?: string; message?: string }[];
}

export function apiStatus(error: unknown): number | undefined {
  const code = (error as ApiError | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** A table or dataset that is not there (404, or the emulator's words for it). */
export function isNotFound(error: unknown): boolean {
  const e = (error ?? {}) as ApiError;
  return (
    apiStatus(error) === 404 ||
    e.errors?.[0]?.reason === 'notFound' ||
    /not found|is not found/i.test(e.message ?? '')
  );
}

/** A SynclineError for a failed call: the missing permission when BigQuery denied it. */
export function snapshotError(error: unknown, ref: DatasetRef, needs: Needs): SynclineError {
  if (isSynclineError(error)) return error;
  const e = (error ?? {}) as ApiError;
  const message = (e.message ?? String(error)).split('\n')[0] ?? '';
  const status = apiStatus(error);
  if (status === 403 || e.errors?.[0]?.reason === 'accessDenied') {
    const on = needs.on === 'project' ? `project ${ref.project}` : `dataset ${ref.project}:${ref.dataset}`;
    return new SynclineError(
      'WarehouseSnapshotGrantMissing',
      `the warehouse snapshot needs permission ${needs.permission} on ${on} (${needs.what}), which the service account lacks: ` +
        `${message}. Grant it (roles/bigquery.dataEditor on the dataset has it${needs.on === 'project' ? ', or create the dataset yourself' : ''}), or set spec.snapshot.location: diffStore`,
      { cause: error },
    );
  }
  return new SynclineError(
    'SourceQueryFailed',
    `${needs.what} in BigQuery dataset ${ref.project}:${ref.dataset} failed: ${message}`,
    { cause: error, retryable: status !== undefined && status >= 500 },
  );
}

export interface QueryOptions {
  query: string;
  params?: Record<string, string>;
  labels?: Record<string, string>;
  defaultDataset?: { projectId: string; datasetId: string };
}

/** A query job, with its raw result fields and rows (every page). */
export class Jobs {
  readonly bq: BigQuery;
  readonly ref: DatasetRef;

  constructor(bq: BigQuery, ref: DatasetRef) {
    this.bq = bq;
    this.ref = ref;
  }

  async start(options: QueryOptions, needs: Needs): Promise<Job> {
    try {
      const [job] = await this.bq.createQueryJob({
        query: options.query,
        location: this.ref.location,
        useLegacySql: false,
        ...(options.params ? { params: options.params } : {}),
        ...(options.labels ? { labels: options.labels } : {}),
        ...(options.defaultDataset ? { defaultDataset: options.defaultDataset } : {}),
      });
      return job;
    } catch (error) {
      throw snapshotError(error, this.ref, needs);
    }
  }

  /** Run a statement (DDL, DML) to its end; returns BigQuery's count of rows a DML changed, when it says. */
  async exec(query: string, needs: Needs, params?: Record<string, string>): Promise<number | undefined> {
    const job = await this.start({ query, ...(params ? { params } : {}) }, needs);
    try {
      // getQueryResults answers numDmlAffectedRows itself: no jobs.get needed.
      const [, , response] = await job.getQueryResults({ maxResults: 0, autoPaginate: false });
      const affected = (response as { numDmlAffectedRows?: string } | undefined)?.numDmlAffectedRows;
      return affected === undefined ? undefined : Number(affected);
    } catch (error) {
      throw snapshotError(error, this.ref, needs);
    }
  }

  /** Every row of a query as raw cells (every page), with the result's fields. */
  async rows(
    options: QueryOptions,
    needs: Needs,
  ): Promise<{ fields: { name: string; type: string; mode?: string }[]; rows: AsyncGenerator<RawCell[]> }> {
    const job = await this.start(options, needs);
    const first = await this.page(job, undefined, needs);
    const page = this.page.bind(this);
    async function* all(): AsyncGenerator<RawCell[]> {
      let current = first;
      for (;;) {
        for (const row of current.rows) yield row.f;
        if (!current.pageToken) return;
        current = await page(job, current.pageToken, needs);
      }
    }
    return { fields: first.fields, rows: all() };
  }

  /** The cells of a query that returns at most a few rows. */
  async few(options: QueryOptions, needs: Needs): Promise<RawCell[][]> {
    const { rows } = await this.rows(options, needs);
    const out: RawCell[][] = [];
    for await (const row of rows) out.push(row);
    return out;
  }

  private async page(job: Job, pageToken: string | undefined, needs: Needs) {
    try {
      const options: QueryResultsOptions & { skipParsing: boolean } = {
        maxResults: PAGE_ROWS,
        autoPaginate: false,
        ...(pageToken ? { pageToken } : {}),
        skipParsing: true,
      };
      const [rows, , response] = await job.getQueryResults(options);
      const meta = response as
        | { schema?: { fields?: { name: string; type: string; mode?: string }[] }; pageToken?: string }
        | undefined;
      return {
        rows: rows as unknown as { f: RawCell[] }[],
        fields: meta?.schema?.fields ?? [],
        pageToken: meta?.pageToken,
      };
    } catch (error) {
      throw snapshotError(error, this.ref, needs);
    }
  }

  /** Create a table with this schema (tables.insert). */
  async createTable(table: string, fields: { name: string; type: string; mode?: string }[]): Promise<void> {
    try {
      await this.bq.dataset(this.ref.dataset).table(table).create({ schema: { fields } });
    } catch (error) {
      throw snapshotError(error, this.ref, {
        permission: 'bigquery.tables.create',
        what: `creating table ${table}`,
      });
    }
  }

  /** Drop a table; false when it was not there. */
  async dropTable(table: string): Promise<boolean> {
    try {
      await this.bq.dataset(this.ref.dataset).table(table).delete();
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw snapshotError(error, this.ref, {
        permission: 'bigquery.tables.delete',
        what: `dropping table ${table}`,
      });
    }
  }

  /** The tables of the dataset whose names start with `prefix`. */
  async tablesStartingWith(prefix: string): Promise<string[]> {
    try {
      const [tables] = await this.bq.dataset(this.ref.dataset).getTables({ autoPaginate: true });
      return tables.map((t) => t.id ?? '').filter((id) => id.startsWith(prefix));
    } catch (error) {
      throw snapshotError(error, this.ref, {
        permission: 'bigquery.tables.list',
        what: 'listing the snapshot tables',
      });
    }
  }

  /**
   * Stream the rows of a JSON-lines file (one object per line, as DuckDB's COPY ... (FORMAT json) writes)
   * into `table` with tabledata.insertAll, INSERT_ROWS at a time. Returns the rows sent.
   */
  async insertFile(table: string, file: string): Promise<number> {
    const target = this.bq.dataset(this.ref.dataset).table(table);
    let batch: { json: Record<string, unknown> }[] = [];
    let sent = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      try {
        await target.insert(batch, { raw: true, skipInvalidRows: false, ignoreUnknownValues: false });
      } catch (error) {
        const partial = (error as { name?: string; errors?: { errors?: { message?: string }[] }[] }).errors;
        const detail = partial?.[0]?.errors?.[0]?.message;
        throw snapshotError(detail ? new Error(`a row was refused: ${detail}`) : error, this.ref, {
          permission: 'bigquery.tables.updateData',
          what: `writing rows into table ${table}`,
        });
      }
      sent += batch.length;
      batch = [];
    };
    const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line.trim() === '') continue;
      batch.push({ json: JSON.parse(line) as Record<string, unknown> });
      if (batch.length >= INSERT_ROWS) await flush();
    }
    await flush();
    return sent;
  }
}

/** DuckDB's read of a CSV file that csvLine wrote: every field VARCHAR, then each column's load. */
function readCsv(file: string, columns: readonly TextColumn[]): string {
  const fields = columns.map((_c, i) => `${quoteLiteral(`c${i}`)}: 'VARCHAR'`).join(', ');
  const select = columns
    .map((c, i) => {
      const f = quoteIdent(`c${i}`);
      const load = c.load ? c.load(f) : c.duckType === 'VARCHAR' ? f : `CAST(${f} AS ${c.duckType})`;
      return `${load} AS ${quoteIdent(c.name)}`;
    })
    .join(', ');
  return (
    `SELECT ${select} FROM read_csv(${quoteLiteral(file)}, columns = {${fields}}, header = false, ` +
    `auto_detect = false, delim = ',', quote = '"', escape = '"', new_line = '\\n', nullstr = '', ` +
    `allow_quoted_nulls = false, max_line_size = 33554432, buffer_size = 33554432)`
  );
}

/**
 * Write raw rows through a CSV file into DuckDB: `into(select)` is the statement that consumes the
 * read_csv SELECT (CREATE TABLE t AS ..., COPY (...) TO 'file.parquet'). Returns the rows written.
 */
export async function rowsIntoDuck(input: {
  duck: DuckDBConnection;
  dir: string;
  name: string;
  columns: readonly TextColumn[];
  rows: AsyncIterable<RawCell[]>;
  convert: (cells: RawCell[]) => readonly TextValue[];
  into: (select: string) => string;
}): Promise<number> {
  const file = join(input.dir, `bq-${input.name}-${process.pid}-${Date.now()}.csv`);
  const out = createWriteStream(file, { highWaterMark: 1 << 20 });
  let count = 0;
  try {
    for await (const cells of input.rows) {
      if (!out.write(csvLine(input.convert(cells)))) await once(out, 'drain');
      count++;
    }
    out.end();
    await once(out, 'finish');
    await input.duck.run(input.into(readCsv(file, input.columns)));
    return count;
  } finally {
    out.destroy();
    await rm(file, { force: true });
  }
}

/** The text of a raw scalar cell (NULL stays null). */
export function cellText(cell: RawCell | undefined): string | null {
  const v = cell?.v;
  return v === null || v === undefined ? null : String(v);
}
