// PostgreSQL as a Source: find the model's columns with a LIMIT 0 probe, stream the rows with
// COPY (SELECT ...) TO STDOUT (FORMAT csv) into DuckDB (see transfer.ts), loaded with
// DuckDB's read_csv with every column's type declared. No row is ever held in JavaScript memory. A model
// with a row longer than the small read buffers allow is staged again, from the start, with large ones.
import type pg from 'pg';
import type { SourceSpec } from '../../crds/index.ts';
import { SynclineError, isSynclineError } from '../../runner/errors.ts';
import { countRows, describeTable, duckMessage } from '../shared/duck.ts';
import {
  connectPg,
  describePgError,
  isPgConnectionError,
  pgConnectError,
  type PgConnectionSettings,
} from '../shared/pg.ts';
import { quoteIdent, quoteLiteral, quoteQualifiedName } from '../shared/sql.ts';
import {
  STAGED_ROW_HASH,
  type ColumnInfo,
  type ConnectorContext,
  type SourceConnector,
  type StageRequest,
  type StageResult,
} from '../types.ts';
import { copyIntoDuck, TransferError } from './transfer.ts';
import { planColumn, type ColumnPlan, type PgTypeInfo } from './types.ts';

type Settings = NonNullable<SourceSpec['postgres']>;

function settingsOf(spec: SourceSpec): Settings {
  if (!spec.postgres) throw new SynclineError('InvalidSource', 'a postgres Source needs the postgres block');
  return spec.postgres;
}

function sessionSettings(settings: Settings, applicationName?: string): Record<string, string> {
  const session: Record<string, string> = {};
  if (settings.statementTimeoutSeconds !== undefined)
    session.statement_timeout = String(settings.statementTimeoutSeconds * 1000);
  if (applicationName !== undefined) session.application_name = applicationName.slice(0, 63);
  return session;
}

/** The SQL of the model: its query, or every row of its table. */
export function modelSql(model: StageRequest['model']): string {
  if (model.query !== undefined) return model.query.trim().replace(/;+\s*$/, '');
  if (model.table !== undefined)
    return `SELECT * FROM ${quoteQualifiedName(model.table, (p) => p.toLowerCase())}`;
  throw new SynclineError(
    'InvalidModel',
    'a Model of a postgres Source needs query or table (dbt models are resolved before the run)',
  );
}

function queryError(error: unknown, settings: PgConnectionSettings, what: string): SynclineError {
  if (isSynclineError(error)) return error;
  if (isPgConnectionError(error)) return pgConnectError(error, settings, 'Source');
  const code = (error as { code?: string }).code;
  const timeout =
    code === '57014' ? ' (statementTimeoutSeconds was reached, or the query was cancelled)' : '';
  return new SynclineError(
    'SourceQueryFailed',
    `${what} failed in PostgreSQL: ${describePgError(error)}${timeout}`,
    {
      cause: error,
    },
  );
}

async function typeInfo(client: pg.Client, oids: number[]): Promise<Map<number, PgTypeInfo>> {
  const result = await client.query<{ oid: number; name: string; element: string | null }>(
    `SELECT t.oid::int AS oid,
            CASE WHEN t.typtype = 'd' THEN b.typname ELSE t.typname END AS name,
            CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN e.typname END AS element
       FROM pg_type t
       LEFT JOIN pg_type b ON b.oid = t.typbasetype
       LEFT JOIN pg_type e ON e.oid = t.typelem
      WHERE t.oid = ANY($1::oid[])`,
    [oids],
  );
  return new Map(
    result.rows.map((r) => [r.oid, { oid: r.oid, name: r.name, element: r.element ?? undefined }]),
  );
}

/** Plan every result column of the model query, from a LIMIT 0 run of it. */
async function planColumns(client: pg.Client, sql: string): Promise<ColumnPlan[]> {
  const probe = await client.query(`SELECT * FROM (${sql}\n) AS m LIMIT 0`);
  const names = new Set<string>();
  for (const field of probe.fields) {
    if (names.has(field.name)) {
      throw new SynclineError(
        'SourceQueryFailed',
        `the model query returns the column "${field.name}" more than once; give each column a unique name (AS ...)`,
      );
    }
    names.add(field.name);
  }
  const types = await typeInfo(client, [...new Set(probe.fields.map((f) => f.dataTypeID))]);
  return probe.fields.map((field) =>
    planColumn(
      field.name,
      types.get(field.dataTypeID) ?? { oid: field.dataTypeID, name: 'unknown' },
      field.dataTypeModifier,
    ),
  );
}

/** How much of the CSV stream DuckDB's read_csv takes at once; buffer_size must be at least max_line_size. */
interface CsvSizes {
  maxLineSize: number;
  bufferSize: number;
}

const MiB = 1024 * 1024;
// Through a pipe DuckDB fills a whole buffer before parsing it, so small buffers let it parse while PostgreSQL sends.
const SMALL_ROWS: CsvSizes = { maxLineSize: 4 * MiB, bufferSize: 4 * MiB };
// The fallback, from the start, for a model with a row longer than SMALL_ROWS allows.
const LARGE_ROWS: CsvSizes = { maxLineSize: 16 * MiB, bufferSize: 64 * MiB };

/**
 * The CSV file read back with exactly the planned types: no sniffing, NULL only for an unquoted empty field;
 * plus the row hash of `hashed`, when the engine asked for one.
 */
function loadSql(
  table: string,
  file: string,
  plans: ColumnPlan[],
  sizes: CsvSizes,
  hashed: string[] | undefined,
): string {
  const columns = plans.map((p, i) => `${quoteLiteral(`c${i}`)}: ${quoteLiteral(p.csvType)}`).join(', ');
  const select = plans.map((p, i) => `${p.loadExpr(`c${i}`)} AS ${quoteIdent(p.name)}`).join(', ');
  const hash = hashed ? `, hash(${hashed.map(quoteIdent).join(', ')}) AS ${STAGED_ROW_HASH}` : '';
  return (
    `CREATE TABLE ${quoteIdent(table)} AS SELECT *${hash} FROM (SELECT ${select} FROM read_csv(${quoteLiteral(file)}, ` +
    `columns = {${columns}}, header = false, auto_detect = false, delim = ',', quote = '"', escape = '"', ` +
    `new_line = '\\n', nullstr = '', allow_quoted_nulls = false, ` +
    `max_line_size = ${sizes.maxLineSize}, buffer_size = ${sizes.bufferSize}))`
  );
}

/** DuckDB's own report of a row longer than max_line_size (in the message's later lines). */
const LINE_TOO_LONG = /Maximum line size of (\d+) bytes exceeded/;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Whether a failed load may be a row longer than max_line_size. PostgreSQL writes well-formed CSV, so any
 * error of DuckDB's CSV reader may be one: DuckDB names the line size only when the row spans at most two
 * buffers; across more it loses its place and reports an unterminated quote, a failed conversion of part of
 * the value, or a parallel read it cannot complete.
 */
function mayBeLongRow(error: unknown): boolean {
  return LINE_TOO_LONG.test(errorText(error)) || /CSV Error on Line|CSV Reader/.test(duckMessage(error));
}

/** The error of a failed transfer: DuckDB's message for the load, PostgreSQL's for the COPY. */
function stageError(error: unknown, settings: PgConnectionSettings): SynclineError {
  if (error instanceof TransferError && error.side === 'load') {
    // The first line only says where; the row size is further down, after the row itself.
    const limit = LINE_TOO_LONG.exec(errorText(error.cause))?.[1];
    const longRow =
      limit === undefined
        ? ''
        : ` (a row of the model is longer than ${Number(limit) / MiB} MiB, the most DuckDB is set to read)`;
    return new SynclineError(
      'SourceQueryFailed',
      `loading the model rows into DuckDB failed: ${duckMessage(error.cause)}${longRow}`,
      { cause: error.cause },
    );
  }
  return queryError(error instanceof TransferError ? error.cause : error, settings, 'reading the model rows');
}

export const postgresSource: SourceConnector = {
  async check(spec: SourceSpec, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(spec);
    const client = await connectPg(settings, ctx.secrets, ctx.log, 'Source', sessionSettings(settings));
    try {
      await client.query('SELECT 1');
    } catch (error) {
      throw queryError(error, settings, 'a test query');
    } finally {
      await client.end();
    }
  },

  async stage(req: StageRequest): Promise<StageResult> {
    const settings = settingsOf(req.source);
    const sql = modelSql(req.model);
    const { namespace, sync, runId } = req.labels;
    const connect = () =>
      connectPg(
        settings,
        req.secrets,
        req.log,
        'Source',
        sessionSettings(settings, `syncline ${namespace}/${sync} ${runId}`),
      );
    const close = (client: pg.Client) =>
      client
        .end()
        .catch((error: unknown) => req.log.debug({ err: String(error) }, 'closing the source connection'));
    let client: pg.Client | undefined = await connect();
    try {
      let plans: ColumnPlan[];
      try {
        plans = await planColumns(client, sql);
      } catch (error) {
        throw queryError(error, settings, 'the model query');
      }
      if (plans.length === 0)
        throw new SynclineError('SourceQueryFailed', 'the model query returns no columns');

      const names = plans.map((p) => p.name);
      // Hashed while the rows stream in, where DuckDB would otherwise read the whole table again for it.
      const wanted = names.includes(STAGED_ROW_HASH) ? undefined : req.rowHashColumns?.(names);
      const hashed = wanted?.every((name) => names.includes(name)) && wanted.length > 0 ? wanted : undefined;
      const started = Date.now();
      const copySql = `COPY (SELECT ${plans.map((p) => p.copyExpr).join(', ')} FROM (${sql}\n) AS m) TO STDOUT WITH (FORMAT csv)`;
      const transfer = (from: pg.Client, sizes: CsvSizes) =>
        copyIntoDuck({
          client: from,
          copySql,
          duck: req.duck,
          table: req.table,
          loadSql: (path) => loadSql(req.table, path, plans, sizes, hashed),
          dir: req.tmpDir,
          signal: req.signal,
          log: req.log,
        });
      let via: string;
      try {
        ({ via } = await transfer(client, SMALL_ROWS));
      } catch (error) {
        if (
          !(error instanceof TransferError && error.side === 'load' && mayBeLongRow(error.cause)) ||
          req.signal.aborted
        )
          throw stageError(error, settings);
        const small = `${SMALL_ROWS.maxLineSize / MiB} MiB`;
        const again = `staging again from the start with rows of up to ${LARGE_ROWS.maxLineSize / MiB} MiB`;
        req.log.info(
          { maxLineSize: SMALL_ROWS.maxLineSize, retryMaxLineSize: LARGE_ROWS.maxLineSize },
          LINE_TOO_LONG.test(errorText(error.cause))
            ? `a row of the model is longer than ${small}; ${again}`
            : `DuckDB could not read the rows with ${small} buffers, as when a row is longer than ${small}; ${again}`,
        );
        // The failed COPY may have left the connection mid-stream: the retry runs on a fresh one.
        await close(client);
        client = undefined; // if reconnecting fails, nothing is left to close
        client = await connect();
        try {
          ({ via } = await transfer(client, LARGE_ROWS));
        } catch (retryError) {
          throw stageError(retryError, settings);
        }
      }
      const rows = await countRows(req.duck, req.table);
      req.log.info({ rows, via, ms: Date.now() - started }, 'staged PostgreSQL rows');
      // Types as DuckDB itself spells them, so they compare equal to what the engine describes later.
      const staged = await describeTable(req.duck, req.table);
      const columns: ColumnInfo[] = staged
        .filter((c) => c.name !== STAGED_ROW_HASH)
        .map((c, i) => ({ ...c, sourceType: plans[i]?.sourceType }));
      return { columns, rows, ...(hashed ? { hashed } : {}) };
    } finally {
      if (client) await close(client);
    }
  },
};
