// PostgreSQL as a Source: find the model's columns with a LIMIT 0 probe, stream the rows with
// COPY (SELECT ...) TO STDOUT (FORMAT csv) into DuckDB (see transfer.ts), loaded with
// DuckDB's read_csv with every column's type declared. No row is ever held in JavaScript memory. A model
// with a row longer than the small read buffers allow is staged again, from the start, with large ones.
// The model can only read: every connection opens a READ ONLY transaction before the model's text is sent,
// and the probe sends it through the extended query protocol, which takes exactly one statement (see
// planColumns for why that also keeps the COPY, sent as a simple query, to one statement).
import { checkGrants, snapshotTables } from './snapshot-tables.ts';
import type pg from 'pg';
import type { SourceSpec } from '../../crds/index.ts';
import { SynclineError, isSynclineError } from '../../core/errors.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { countRows, duckMessage } from '../shared/duck.ts';
import {
  connectPg,
  describePgError,
  isPgConnectionError,
  pgConnectError,
  type PgConnectionSettings,
} from '../shared/pg.ts';
import { modelNotReadOnly } from '../shared/read-only.ts';
import { quoteIdent, quoteLiteral, quoteQualifiedName } from '../shared/sql.ts';
import {
  STAGED_HASH_PREFIX,
  stagedHashColumn,
  type ColumnInfo,
  type ConnectorContext,
  type KeysOnlyStage,
  type SourceConnector,
  type SourceHashFunction,
  type StagedHash,
  type StageRequest,
  type StageResult,
  type StagingChoice,
  type WarehouseSnapshot,
  type WarehouseSnapshotRequest,
} from '../../core/connectors.ts';
import { postgresHashFunction, rowHashExpr, unsignedHashSql } from './hash.ts';
import { stageNarrowed, type NarrowContext } from './narrow.ts';
import { PgWarehouseSnapshot } from './snapshot.ts';
import { copyIntoDuck, TransferError } from './transfer.ts';
import { planColumn, type ColumnPlan, type PgTypeInfo } from './types.ts';

type Settings = NonNullable<SourceSpec['postgres']>;

function settingsOf(spec: SourceSpec): Settings {
  if (!spec.postgres) throw new SynclineError('InvalidSource', 'a postgres Source needs the postgres block');
  return spec.postgres;
}

function sessionSettings(settings: Settings, applicationName?: string): Record<string, string> {
  // Belt and braces: our own BEGIN ... READ ONLY opens every read; this covers any statement before it.
  const session: Record<string, string> = { default_transaction_read_only: 'on' };
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

/** PostgreSQL's refusals of a statement that writes (25006) or of more than one statement (42601). */
function isNotReadOnly(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === '25006' || (code === '42601' && /cannot insert multiple commands/.test(errorText(error)));
}

function queryError(
  error: unknown,
  settings: PgConnectionSettings,
  what: string,
  labels?: StageRequest['labels'],
): SynclineError {
  if (isSynclineError(error)) return error;
  if (isPgConnectionError(error)) return pgConnectError(error, settings, 'Source');
  if (labels && isNotReadOnly(error))
    return modelNotReadOnly(labels, 'PostgreSQL', describePgError(error), error);
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
  const result = await client.query<{
    oid: number;
    name: string;
    element: string | null;
    domain: boolean;
  }>(
    `SELECT t.oid::int AS oid, t.typtype = 'd' AS domain,
            CASE WHEN t.typtype = 'd' THEN b.typname ELSE t.typname END AS name,
            CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN e.typname END AS element
       FROM pg_type t
       LEFT JOIN pg_type b ON b.oid = t.typbasetype
       LEFT JOIN pg_type e ON e.oid = t.typelem
      WHERE t.oid = ANY($1::oid[])`,
    [oids],
  );
  return new Map(
    result.rows.map((r) => [
      r.oid,
      { oid: r.oid, name: r.name, element: r.element ?? undefined, domain: r.domain },
    ]),
  );
}

/**
 * The probe goes through the extended query protocol, which refuses more than one statement (node-postgres
 * sends a query without parameters as a simple query, which runs every statement of the text). The COPY,
 * which only the simple protocol carries, embeds the model's text exactly as the probe does, after an
 * opening parenthesis: if the probe parsed as one statement, the text has no top-level `;` and leaves no
 * quote or comment open, so the COPY is one statement too.
 */
const EXTENDED = { queryMode: 'extended' } as const;

/** Plan every result column of the model query, from a LIMIT 0 run of it. */
async function planColumns(client: pg.Client, sql: string): Promise<ColumnPlan[]> {
  const probe = await client.query({ text: `SELECT * FROM (${sql}\n) AS m LIMIT 0`, ...EXTENDED });
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
export interface CsvSizes {
  maxLineSize: number;
  bufferSize: number;
}

/** A COPY out of PostgreSQL and the DuckDB statement that loads its CSV (at `path`, read with `sizes`). */
export interface TransferJob {
  copySql: string;
  loadSql: (path: string, sizes: CsvSizes) => string;
}

const MiB = 1024 * 1024;
// Through a pipe DuckDB fills a whole buffer before parsing it, so small buffers let it parse while PostgreSQL sends.
const SMALL_ROWS: CsvSizes = { maxLineSize: 4 * MiB, bufferSize: 4 * MiB };
// The fallback, from the start, for a model with a row longer than SMALL_ROWS allows.
const LARGE_ROWS: CsvSizes = { maxLineSize: 16 * MiB, bufferSize: 64 * MiB };

/** A row hash the load stores: DuckDB's over staged columns, or PostgreSQL's read from CSV field `h<i>`. */
interface LoadHash extends StagedHash {
  index: number;
}

/** What one COPY carries and the DuckDB statement loading it creates. */
interface LoadShape {
  /** The model columns, or only the primary key (keys-only staging). */
  plans: ColumnPlan[];
  hashes: LoadHash[];
  /** DuckDB condition on the loaded columns that a row must meet to be kept. */
  where?: string;
}

/** The COPY of `shape` out of the model query, with `filter` (over `m`) applied in PostgreSQL. */
function copySqlOf(sql: string, all: ColumnPlan[], shape: LoadShape, filter?: string): string {
  const sourceHashes = shape.hashes.filter((h) => h.by === 'source').map((h) => rowHashExpr(all, h.columns));
  const select = [...shape.plans.map((p) => p.copyExpr), ...sourceHashes].join(', ');
  return `COPY (SELECT ${select} FROM (${sql}\n) AS m${filter ? ` WHERE ${filter}` : ''}) TO STDOUT WITH (FORMAT csv)`;
}

/**
 * The CSV file read back with exactly the planned types: no sniffing, NULL only for an unquoted empty field;
 * plus the shape's row hashes.
 */
function readSql(file: string, shape: LoadShape, sizes: CsvSizes): string {
  const source = shape.hashes.filter((h) => h.by === 'source');
  const fields = [
    ...shape.plans.map((p, i) => `${quoteLiteral(`c${i}`)}: ${quoteLiteral(p.csvType)}`),
    ...source.map((h) => `${quoteLiteral(`h${h.index}`)}: 'BIGINT'`),
  ];
  const select = [
    ...shape.plans.map((p, i) => `${p.loadExpr(`c${i}`)} AS ${quoteIdent(p.name)}`),
    ...source.map((h) => `${unsignedHashSql(`h${h.index}`)} AS ${quoteIdent(h.column)}`),
  ];
  const engine = shape.hashes
    .filter((h) => h.by === 'engine')
    .map((h) => `, hash(${h.columns.map(quoteIdent).join(', ')}) AS ${quoteIdent(h.column)}`)
    .join('');
  return (
    `SELECT *${engine} FROM (SELECT ${select.join(', ')} FROM read_csv(${quoteLiteral(file)}, ` +
    `columns = {${fields.join(', ')}}, header = false, auto_detect = false, delim = ',', quote = '"', escape = '"', ` +
    `new_line = '\\n', nullstr = '', allow_quoted_nulls = false, ` +
    `max_line_size = ${sizes.maxLineSize}, buffer_size = ${sizes.bufferSize}))` +
    (shape.where ? ` WHERE ${shape.where}` : '')
  );
}

function loadSql(table: string, file: string, shape: LoadShape, sizes: CsvSizes): string {
  return `CREATE TABLE ${quoteIdent(table)} AS ${readSql(file, shape, sizes)}`;
}

/** Key types a list of keys can be handed to PostgreSQL as (an array literal of their text). */
const FILTERABLE_KEYS = new Set(['int2', 'int4', 'int8', 'text', 'varchar', 'bpchar', 'uuid']);
/**
 * Up to this many keys (and this share of the model), a fetch hands PostgreSQL the list; beyond, it reads
 * the whole model again and DuckDB filters. Measured on 1M rows x 10 columns: 10,000 keys 0.08 s, 100,000
 * 0.29 s, 333,333 0.70 s through PostgreSQL, against 1.0-1.3 s for any number through a full read; the cap
 * bounds the statement's size (a few MB of keys).
 */
const FETCH_IN_SOURCE_MAX = 500_000;
const FETCH_IN_SOURCE_SHARE = 0.5;

/** DuckDB SQL: the keys of `keysSql` as one PostgreSQL array literal ({"1","2"}, quotes and backslashes escaped). */
function keyArraySql(keysSql: string): string {
  const element = `'"' || replace(replace(CAST(k AS VARCHAR), '\\', '\\\\'), '"', '\\"') || '"'`;
  return `SELECT '{' || coalesce(string_agg(${element}, ','), '') || '}' AS keys FROM (${keysSql}) AS fetched_keys(k)`;
}

/** A PostgreSQL string constant holding `text`, read the same whatever standard_conforming_strings says. */
function escapeStringConstant(text: string): string {
  return `E'${text.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
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
function stageError(
  error: unknown,
  settings: PgConnectionSettings,
  labels: StageRequest['labels'],
): SynclineError {
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
  return queryError(
    error instanceof TransferError ? error.cause : error,
    settings,
    'reading the model rows',
    labels,
  );
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

  async checkWarehouseSnapshot(spec: SourceSpec, schema: string, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(spec);
    const client = await connectPg(settings, ctx.secrets, ctx.log, 'Source', sessionSettings(settings));
    try {
      // The tables of no Sync in particular: the schema's and the state table's grants.
      await checkGrants(client, snapshotTables(schema, '', ''), { readOnly: false });
    } finally {
      await client.end();
    }
  },

  warehouseSnapshot(req: WarehouseSnapshotRequest): Promise<WarehouseSnapshot> {
    return PgWarehouseSnapshot.open(req, settingsOf(req.source));
  },

  async stage(req: StageRequest): Promise<StageResult> {
    const staging = new PgStaging(req);
    staging.client = await staging.connect();
    // A keys-only staging hands the connection (and its transaction) over to its fetch.
    let handedOver = false;
    try {
      const result = await stageModel(staging);
      handedOver = result.keysOnly !== undefined;
      return result;
    } finally {
      if (staging.client && !handedOver) await staging.close(staging.client);
    }
  },
};

/** One staging of a model: its settings and SQL, and the connection the rows come through. */
class PgStaging {
  readonly req: StageRequest;
  readonly settings: Settings;
  readonly sql: string;
  /** The connection the rows come through; a restage with larger buffers replaces it. */
  client: pg.Client | undefined;
  /** Whether each transaction is tuned for a keys-only read. */
  private keysTuning = false;

  constructor(req: StageRequest) {
    this.req = req;
    this.settings = settingsOf(req.source);
    this.sql = modelSql(req.model);
  }

  connect(): Promise<pg.Client> {
    const { namespace, sync, runId } = this.req.labels;
    return connectPg(
      this.settings,
      this.req.secrets,
      this.req.log,
      'Source',
      sessionSettings(this.settings, `syncline ${namespace}/${sync} ${runId}`),
    );
  }

  close(client: pg.Client): Promise<void> {
    return client
      .end()
      .catch((error: unknown) => this.req.log.debug({ err: String(error) }, 'closing the source connection'));
  }

  /**
   * Every read runs in a transaction of ours, READ ONLY, opened before the model's text is sent: a model
   * cannot write, nor end the transaction (one statement) or change its mode (set after its first query).
   * REPEATABLE READ: the keys and the rows fetched later are of one moment (on one connection).
   */
  async begin(client: pg.Client): Promise<void> {
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      // Rows of a key and a hash are narrow: moving them from parallel workers costs far less than the
      // planner's default assumes, so let it hash on several cores (within
      // max_parallel_workers_per_gather, which a DBA can set to 0 for Syncline's role).
      if (this.keysTuning) await client.query('SET LOCAL parallel_tuple_cost = 0.001');
    } catch (error) {
      throw queryError(error, this.settings, 'starting the read-only transaction');
    }
  }

  /** Tune this transaction, and any later one of a restage, for a keys-only read. */
  async tuneForKeys(client: pg.Client): Promise<void> {
    this.keysTuning = true;
    try {
      await client.query('SET LOCAL parallel_tuple_cost = 0.001');
    } catch (error) {
      throw queryError(error, this.settings, 'tuning the keys-only read');
    }
  }

  /** The model's columns, planned from a LIMIT 0 probe. */
  async columnPlans(client: pg.Client): Promise<ColumnPlan[]> {
    let plans: ColumnPlan[];
    try {
      plans = await planColumns(client, this.sql);
    } catch (error) {
      throw queryError(error, this.settings, 'the model query', this.req.labels);
    }
    if (plans.length === 0)
      throw new SynclineError('SourceQueryFailed', 'the model query returns no columns');
    return plans;
  }

  /** COPY `shape` into DuckDB table `table`; once more from the start, on a fresh connection, for long rows. */
  transfer(table: string, shape: LoadShape, all: ColumnPlan[], filter?: string): Promise<string> {
    return this.transferJob(table, {
      copySql: copySqlOf(this.sql, all, shape, filter),
      loadSql: (path, sizes) => loadSql(table, path, shape, sizes),
    });
  }

  /** COPY a statement's rows into DuckDB table `table` (created by `loadSql`), as transfer does. */
  async transferJob(table: string, job: TransferJob): Promise<string> {
    try {
      return await this.attempt(SMALL_ROWS, table, job);
    } catch (error) {
      if (
        !(error instanceof TransferError && error.side === 'load' && mayBeLongRow(error.cause)) ||
        this.req.signal.aborted
      )
        throw stageError(error, this.settings, this.req.labels);
      this.logRestage(error);
      await this.reconnect();
      try {
        return await this.attempt(LARGE_ROWS, table, job);
      } catch (retryError) {
        throw stageError(retryError, this.settings, this.req.labels);
      }
    }
  }

  private async attempt(sizes: CsvSizes, table: string, job: TransferJob): Promise<string> {
    const { req } = this;
    const result = await copyIntoDuck({
      client: this.client as pg.Client,
      copySql: job.copySql,
      duck: req.duck,
      table,
      loadSql: (path) => job.loadSql(path, sizes),
      dir: req.tmpDir,
      signal: req.signal,
      log: req.log,
    });
    return result.via;
  }

  private logRestage(error: TransferError): void {
    const small = `${SMALL_ROWS.maxLineSize / MiB} MiB`;
    const again = `staging again from the start with rows of up to ${LARGE_ROWS.maxLineSize / MiB} MiB`;
    this.req.log.info(
      { maxLineSize: SMALL_ROWS.maxLineSize, retryMaxLineSize: LARGE_ROWS.maxLineSize },
      LINE_TOO_LONG.test(errorText(error.cause))
        ? `a row of the model is longer than ${small}; ${again}`
        : `DuckDB could not read the rows with ${small} buffers, as when a row is longer than ${small}; ${again}`,
    );
  }

  /** The failed COPY may have left the connection mid-stream: the retry runs on a fresh one. */
  private async reconnect(): Promise<void> {
    await this.close(this.client as pg.Client);
    this.client = undefined; // if reconnecting fails, nothing is left to close
    this.client = await this.connect();
    await this.begin(this.client);
  }
}

/** Plan the columns, choose the staging with the engine, and stage the rows (or the keys and hashes). */
async function stageModel(staging: PgStaging): Promise<StageResult> {
  const { req } = staging;
  const client = staging.client as pg.Client;
  // Before the transaction: on a server without the hash function the probe fails, which would abort it.
  const sourceHash = req.chooseStaging ? await postgresHashFunction(client, req.log) : undefined;
  await staging.begin(client);
  const plans = await staging.columnPlans(client);
  const { columns, emptyFile } = await describeColumns(req, plans);

  const wanted = req.chooseStaging?.(columns, sourceHash) ?? { hashes: [], keysOnly: false };
  const hashes = loadHashes(wanted, plans, sourceHash);
  const keyPlan = plans.find((p) => p.name === req.model.primaryKey);
  const keysOnly =
    wanted.keysOnly &&
    keyPlan !== undefined &&
    hashes.length === wanted.hashes.length &&
    hashes.every((h) => h.by === 'source');
  const started = Date.now();
  const stored = hashes.map(({ index: _index, ...hash }) => hash);
  const withSourceHash = hashes.some((h) => h.by === 'source') && sourceHash ? { sourceHash } : {};

  const narrow = wanted.narrow;
  if (
    narrow &&
    req.snapshot instanceof PgWarehouseSnapshot &&
    keyPlan !== undefined &&
    sourceHash !== undefined &&
    hashes.length === wanted.hashes.length &&
    hashes.every((h) => h.by === 'source')
  ) {
    const context = narrowContext(staging, { plans, stored, keyPlan, columns, emptyFile, hashes });
    const outcome = await stageNarrowed(context, req.snapshot, narrow);
    if (outcome) {
      req.log.info(
        { ...outcome, ms: Date.now() - started },
        outcome.byChecksum
          ? 'the model matches the warehouse snapshot by checksum: no row left PostgreSQL'
          : 'staged the PostgreSQL rows that differ from the warehouse snapshot',
      );
      return {
        columns,
        rows: outcome.rows,
        hashes: stored,
        sourceHash,
        narrowed: {
          modelRows: outcome.modelRows,
          previousRows: outcome.previousRows,
          byChecksum: outcome.byChecksum,
        },
      };
    }
  }

  if (keysOnly) {
    await staging.tuneForKeys(client);
    const via = await staging.transfer(req.table, { plans: [keyPlan], hashes }, plans);
    const rows = await countRows(req.duck, req.table);
    req.log.info(
      { rows, via, ms: Date.now() - started },
      'staged the keys and row hashes of PostgreSQL rows',
    );
    return {
      columns,
      rows,
      hashes: stored,
      ...withSourceHash,
      keysOnly: fetchStage({ staging, plans, hashes, keyPlan, emptyFile, stagedRows: rows }),
    };
  }

  const via = await staging.transfer(req.table, { plans, hashes }, plans);
  const rows = await countRows(req.duck, req.table);
  req.log.info({ rows, via, ms: Date.now() - started }, 'staged PostgreSQL rows');
  return { columns, rows, hashes: stored, ...withSourceHash };
}

/** The columns as DuckDB will spell their types, from the load statement over an empty file (kept for later). */
async function describeColumns(
  req: StageRequest,
  plans: ColumnPlan[],
): Promise<{ columns: ColumnInfo[]; emptyFile: string }> {
  const emptyFile = join(req.tmpDir, `pg-${req.table}-empty.csv`);
  writeFileSync(emptyFile, '');
  const described = await req.duck.runAndReadAll(
    `DESCRIBE ${readSql(emptyFile, { plans, hashes: [] }, SMALL_ROWS)}`,
  );
  const columns: ColumnInfo[] = described.getRowObjectsJS().map((row, i) => ({
    name: String(row['column_name']),
    type: String(row['column_type']),
    sourceType: plans[i]?.sourceType,
  }));
  return { columns, emptyFile };
}

/** The hashes of the plan this source can store, numbered as the plan numbers them. */
function loadHashes(
  wanted: StagingChoice,
  plans: ColumnPlan[],
  sourceHash: SourceHashFunction | undefined,
): LoadHash[] {
  const names = new Set(plans.map((p) => p.name));
  // A model column that looks like a staged hash would be taken for one.
  if (plans.some((p) => p.name.startsWith(STAGED_HASH_PREFIX))) return [];
  return wanted.hashes.flatMap((hash, index) =>
    hash.columns.every((name) => names.has(name)) && (hash.by === 'engine' || sourceHash !== undefined)
      ? [{ ...hash, index, column: stagedHashColumn(index) }]
      : [],
  );
}

/** The second half of a keys-only staging: the rows of the keys the engine names, in the same transaction. */
function fetchStage(ctx: {
  staging: PgStaging;
  plans: ColumnPlan[];
  hashes: LoadHash[];
  keyPlan: ColumnPlan;
  emptyFile: string;
  /** How many keys the keys pass staged. */
  stagedRows: number;
}): KeysOnlyStage {
  const { staging, plans, hashes, keyPlan, stagedRows } = ctx;
  const { req } = staging;
  let closed = false;
  return {
    async fetch({ table, keysSql, keyCount }) {
      const started = Date.now();
      const pk = quoteIdent(keyPlan.name);
      if (keyCount === 0) {
        await req.duck.run(loadSql(table, ctx.emptyFile, { plans, hashes }, SMALL_ROWS));
        return { rows: 0 };
      }
      let filter: string | undefined;
      let where: string | undefined;
      if (
        keyCount <= Math.min(FETCH_IN_SOURCE_MAX, stagedRows * FETCH_IN_SOURCE_SHARE) &&
        FILTERABLE_KEYS.has(keyPlan.sourceType)
      ) {
        const reader = await req.duck.runAndReadAll(keyArraySql(keysSql));
        const keys = String(reader.getRowObjectsJS()[0]?.['keys'] ?? '{}');
        filter = `m.${pk} = ANY(${escapeStringConstant(keys)}::${keyPlan.sourceType}[])`;
      } else {
        where = `${pk} IN (SELECT k FROM (${keysSql}) AS fetched_keys(k))`;
      }
      const via = await staging.transfer(
        table,
        { plans, hashes, ...(where ? { where } : {}) },
        plans,
        filter,
      );
      const rows = await countRows(req.duck, table);
      req.log.info(
        { keys: keyCount, rows, via, filteredIn: filter ? 'PostgreSQL' : 'DuckDB', ms: Date.now() - started },
        'staged the PostgreSQL rows whose hash changed',
      );
      return { rows };
    },
    async close() {
      if (closed || !staging.client) return;
      closed = true;
      const client = staging.client;
      staging.client = undefined;
      try {
        await client.query('COMMIT');
      } catch (error) {
        req.log.debug({ err: String(error) }, 'ending the read transaction on the source');
      } finally {
        await staging.close(client);
      }
    },
  };
}

/** What a narrowed staging (narrow.ts) needs of this one. */
function narrowContext(
  staging: PgStaging,
  ctx: {
    plans: ColumnPlan[];
    stored: StagedHash[];
    keyPlan: ColumnPlan;
    columns: ColumnInfo[];
    emptyFile: string;
    hashes: LoadHash[];
  },
): NarrowContext {
  const { req } = staging;
  return {
    req,
    client: staging.client as pg.Client,
    sql: staging.sql,
    plans: ctx.plans,
    hashes: ctx.stored,
    keyPlan: ctx.keyPlan,
    columns: ctx.columns,
    stageNothing: async () => {
      await req.duck.run(
        loadSql(req.table, ctx.emptyFile, { plans: ctx.plans, hashes: ctx.hashes }, SMALL_ROWS),
      );
    },
    transfer: (table, job) => staging.transferJob(table, job),
    tune: () => staging.tuneForKeys(staging.client as pg.Client),
    fail: (error, what) => queryError(error, staging.settings, what, req.labels),
  };
}
