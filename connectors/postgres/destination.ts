// PostgreSQL as a Destination: each batch is one transaction that COPYs the changes into a temporary
// table and applies them with one statement per operation kind. When a row breaks the batch (a constraint,
// a value of the wrong type) the batch is retried row by row under savepoints, so only bad rows are rejected.
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DELETE_BEHAVIORS, SYNC_MODES, type DestinationSpec, type SyncSpec } from '../../crds/index.ts';
import { SynclineError, isSynclineError } from '../../core/errors.ts';
import {
  connectPg,
  describePgError,
  isPgConnectionError,
  isPgServerError,
  pgClientConfig,
  pgConnectError,
} from '../shared/pg.ts';
import { quoteIdent } from '../shared/sql.ts';
import { toPgText } from '../shared/values.ts';
import type {
  BulkBatch,
  BulkRejection,
  ConnectorContext,
  DeliveryContext,
  DestinationConnector,
  DestinationWriter,
  RowChange,
  RowOperation,
  RowResult,
} from '../../core/connectors.ts';
import { ARCHIVED_AT, createTableSql, mappedColumns, readTable } from './table.ts';

type Settings = NonNullable<DestinationSpec['postgres']>;

const BATCH_TABLE = 'syncline_batch';

function settingsOf(spec: DestinationSpec): Settings {
  if (!spec.postgres)
    throw new SynclineError('InvalidDestination', 'a postgres Destination needs the postgres block');
  return spec.postgres;
}

/** SQLSTATE classes that one row can cause: data exceptions, integrity and cardinality violations, bad values. */
function isRowError(error: unknown): boolean {
  if (!isPgServerError(error)) return false;
  const code = error.code ?? '';
  return ['21', '22', '23', '54'].includes(code.slice(0, 2)) || code === '42804' || code === 'P0001';
}

/** Failures worth retrying as they are: lost connections, serialization failures, deadlocks, lock timeouts. */
function isTransient(error: unknown): boolean {
  if (isPgConnectionError(error)) return true;
  if (!isPgServerError(error)) return false;
  const code = error.code ?? '';
  return ['40001', '40P01', '55P03', '57014'].includes(code) || code.startsWith('53');
}

interface Shape {
  schema: string;
  table: string;
  qualified: string;
  /** Top-level destination columns written, key included, with their types in the table. */
  columns: { name: string; type: string }[];
  key: { name: string; type: string };
  archiveDeletes: boolean;
}

/** The statement that applies every change of one operation kind from the batch table `b`. */
function statementFor(
  op: RowOperation,
  shape: Shape,
  archiveDeletes: boolean,
): { sql: string; returnsApplied: boolean } {
  const { qualified, key } = shape;
  // The batch table has the target's column types, so values are parsed once, by COPY.
  const value = (c: { name: string; type: string }) => `b.${quoteIdent(c.name)}`;
  const names = shape.columns.map((c) => quoteIdent(c.name)).join(', ');
  const others = shape.columns.filter((c) => c.name !== key.name);
  const match = `t.${quoteIdent(key.name)} = ${value(key)}`;
  const where = `b._op = '${op}' AND ${match}`;
  const insert = `INSERT INTO ${qualified} AS t (${names}) SELECT ${shape.columns.map(value).join(', ')} FROM ${BATCH_TABLE} b WHERE b._op = '${op}' ORDER BY b._seq`;
  switch (op) {
    case 'upsert': {
      const set = others.map((c) => `${quoteIdent(c.name)} = EXCLUDED.${quoteIdent(c.name)}`).join(', ');
      const action = set === '' ? 'DO NOTHING' : `DO UPDATE SET ${set}`;
      return { sql: `${insert} ON CONFLICT (${quoteIdent(key.name)}) ${action}`, returnsApplied: false };
    }
    case 'insert':
      // DO NOTHING: a row delivered again after a crash is not an error.
      return { sql: `${insert} ON CONFLICT (${quoteIdent(key.name)}) DO NOTHING`, returnsApplied: false };
    case 'update': {
      const set =
        others.map((c) => `${quoteIdent(c.name)} = ${value(c)}`).join(', ') ||
        `${quoteIdent(key.name)} = t.${quoteIdent(key.name)}`;
      return {
        sql: `UPDATE ${qualified} AS t SET ${set} FROM ${BATCH_TABLE} b WHERE ${where} RETURNING b._seq`,
        returnsApplied: true,
      };
    }
    case 'clear': {
      const set =
        others.map((c) => `${quoteIdent(c.name)} = NULL`).join(', ') ||
        `${quoteIdent(key.name)} = t.${quoteIdent(key.name)}`;
      return {
        sql: `UPDATE ${qualified} AS t SET ${set} FROM ${BATCH_TABLE} b WHERE ${where}`,
        returnsApplied: false,
      };
    }
    case 'archive':
      if (!archiveDeletes) {
        return {
          sql: `UPDATE ${qualified} AS t SET ${quoteIdent(ARCHIVED_AT)} = now() FROM ${BATCH_TABLE} b WHERE ${where}`,
          returnsApplied: false,
        };
      }
      return {
        sql: `DELETE FROM ${qualified} AS t USING ${BATCH_TABLE} b WHERE ${where}`,
        returnsApplied: false,
      };
    case 'delete':
      return {
        sql: `DELETE FROM ${qualified} AS t USING ${BATCH_TABLE} b WHERE ${where}`,
        returnsApplied: false,
      };
  }
}

function csvField(text: string | null): string {
  return text === null ? '' : `"${text.replaceAll('"', '""')}"`;
}

class PostgresWriter implements DestinationWriter {
  private readonly pool: pg.Pool;
  private readonly shape: Shape;
  private readonly ctx: DeliveryContext;

  /** The table was empty when the run opened it: new rows can be copied straight in (see writeBulk). */
  private copyStraightIn: boolean;

  constructor(pool: pg.Pool, shape: Shape, ctx: DeliveryContext, empty: boolean) {
    this.pool = pool;
    this.shape = shape;
    this.ctx = ctx;
    this.copyStraightIn = empty;
  }

  /** Every column as plain text, unless one needs the conversions of toPgText (JSON, bytes, arrays). */
  bulkFields(): string[] | undefined {
    const special = (type: string) =>
      type === 'json' || type === 'jsonb' || type === 'bytea' || type.endsWith('[]');
    if (this.shape.columns.some((c) => special(c.type))) return undefined;
    return this.shape.columns.map((c) => c.name);
  }

  /**
   * One transaction per batch. Inserts and upserts into a table that was empty when the run began are
   * copied straight into it (a key that arrived meanwhile makes the COPY fail, and the batch goes the
   * usual way); everything else is copied into a temporary table and applied with one statement.
   */
  async writeBulk(batch: BulkBatch): Promise<BulkRejection[]> {
    if (batch.keys.length === 0) return [];
    const client = await this.pool.connect();
    let broken = false;
    const rollback = async () => {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = true;
        this.ctx.log.debug({ err: String(rollbackError) }, 'rollback after a failed bulk batch');
      });
    };
    try {
      await this.ctx.acquire();
      const { operation } = batch;
      if (this.copyStraightIn && (operation === 'insert' || operation === 'upsert')) {
        try {
          await this.copyIntoTable(client, batch);
          return [];
        } catch (error) {
          await rollback();
          if (broken || (error as { code?: string }).code !== '23505') throw error;
          this.copyStraightIn = false; // the table has rows now: conflicts must be resolved
        }
      }
      try {
        return await this.applyBulk(client, batch);
      } catch (error) {
        await rollback();
        throw error;
      }
    } catch (error) {
      broken = broken || isPgConnectionError(error);
      throw error;
    } finally {
      client.release(broken);
    }
  }

  private async copyFrom(client: pg.PoolClient, sql: string, csv: Uint8Array): Promise<void> {
    await pipeline(Readable.from([csv], { objectMode: false }), client.query(copyFrom(sql)));
  }

  private async copyIntoTable(client: pg.PoolClient, batch: BulkBatch): Promise<void> {
    const names = this.shape.columns.map((c) => quoteIdent(c.name)).join(', ');
    const started = performance.now();
    try {
      await client.query('BEGIN');
      await this.copyFrom(
        client,
        `COPY ${this.shape.qualified} (${names}) FROM STDIN WITH (FORMAT csv)`,
        batch.csv,
      );
      await client.query('COMMIT');
      this.debug(batch.operation, batch.keys, started, `${batch.keys.length} rows copied`);
    } catch (error) {
      this.debug(batch.operation, batch.keys, started, undefined, error);
      throw error;
    }
  }

  private async applyBulk(client: pg.PoolClient, batch: BulkBatch): Promise<BulkRejection[]> {
    const { operation } = batch;
    const names = this.shape.columns.map((c) => quoteIdent(c.name)).join(', ');
    const defs = this.shape.columns.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', ');
    await client.query('BEGIN');
    await client.query(
      `CREATE TEMP TABLE ${BATCH_TABLE} (_seq int GENERATED BY DEFAULT AS IDENTITY (START 0 MINVALUE 0), ` +
        `_op text DEFAULT '${operation}', ${defs}) ON COMMIT DROP`,
    );
    await this.copyFrom(client, `COPY ${BATCH_TABLE} (${names}) FROM STDIN WITH (FORMAT csv)`, batch.csv);
    const { sql, returnsApplied } = statementFor(operation, this.shape, this.shape.archiveDeletes);
    const started = performance.now();
    let rejections: BulkRejection[] = [];
    try {
      const result = await client.query<{ _seq: number }>(sql);
      this.debug(operation, batch.keys, started, `${result.rowCount ?? 0} rows`);
      if (returnsApplied) {
        const applied = new Set(result.rows.map((r) => Number(r._seq)));
        rejections = batch.keys.flatMap((key, index) =>
          applied.has(index)
            ? []
            : [{ index, reason: `no record with key ${key} in ${this.shape.qualified} to update` }],
        );
      }
    } catch (error) {
      this.debug(operation, batch.keys, started, undefined, error);
      throw error;
    }
    await client.query('COMMIT');
    return rejections;
  }

  /** The batch table's text values of one change: _seq, _op, then every column. */
  private values(change: RowChange, seq: number): (string | null)[] {
    const { columns, key } = this.shape;
    return [
      String(seq),
      change.operation,
      ...columns.map((c) => {
        const value = change.fields[c.name];
        if (c.name === key.name && (value === undefined || value === null)) return change.key;
        return toPgText(value, c.type);
      }),
    ];
  }

  private async begin(client: pg.PoolClient): Promise<void> {
    const defs = this.shape.columns.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', ');
    await client.query('BEGIN');
    await client.query(`CREATE TEMP TABLE ${BATCH_TABLE} (_seq int, _op text, ${defs}) ON COMMIT DROP`);
  }

  private target(op: string): string {
    return `postgres ${this.shape.qualified} ${op}`;
  }

  async write(batch: RowChange[]): Promise<RowResult[]> {
    if (batch.length === 0) return [];
    const client = await this.pool.connect();
    let broken = false;
    try {
      await this.ctx.acquire();
      try {
        return await this.applyBatch(client, batch);
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: unknown) => {
          broken = true;
          this.ctx.log.debug({ err: String(rollbackError) }, 'rollback after a failed batch');
        });
        if (isRowError(error) && !broken) return await this.applyRowByRow(client, batch);
        broken = broken || isPgConnectionError(error);
        return this.failAll(batch, error);
      }
    } finally {
      client.release(broken);
    }
  }

  private failAll(batch: RowChange[], error: unknown): RowResult[] {
    const retryable = isTransient(error);
    const reason = isPgConnectionError(error)
      ? `lost the connection to PostgreSQL: ${describePgError(error)}`
      : `PostgreSQL rejected the batch: ${describePgError(error)}`;
    return batch.map(() => ({ ok: false, reason, retryable }));
  }

  private async applyBatch(client: pg.PoolClient, batch: RowChange[]): Promise<RowResult[]> {
    await this.begin(client);
    const lines = batch.map((change, i) => `${this.values(change, i).map(csvField).join(',')}\n`);
    await pipeline(
      Readable.from(lines),
      client.query(copyFrom(`COPY ${BATCH_TABLE} FROM STDIN WITH (FORMAT csv)`)),
    );
    const results: RowResult[] = batch.map(() => ({ ok: true }));
    for (const op of [...new Set(batch.map((c) => c.operation))]) {
      const rows = batch.map((c, i) => ({ c, i })).filter(({ c }) => c.operation === op);
      const { sql, returnsApplied } = statementFor(op, this.shape, this.shape.archiveDeletes);
      const started = performance.now();
      try {
        const result = await client.query<{ _seq: number }>(sql);
        this.debug(
          op,
          rows.map((r) => r.c.key),
          started,
          `${result.rowCount ?? 0} rows`,
        );
        if (returnsApplied) {
          const applied = new Set(result.rows.map((r) => Number(r._seq)));
          for (const { c, i } of rows) if (!applied.has(i)) results[i] = this.noRecord(c);
        }
      } catch (error) {
        this.debug(
          op,
          rows.map((r) => r.c.key),
          started,
          undefined,
          error,
        );
        throw error;
      }
    }
    await client.query('COMMIT');
    return results;
  }

  private noRecord(change: RowChange): RowResult {
    return {
      ok: false,
      reason: `no record with key ${change.key} in ${this.shape.qualified} to update`,
      retryable: false,
    };
  }

  private async applyRowByRow(client: pg.PoolClient, batch: RowChange[]): Promise<RowResult[]> {
    this.ctx.log.info(
      { rows: batch.length, table: this.shape.qualified },
      'a row broke the batch; applying it row by row',
    );
    await this.begin(client);
    const placeholders = ['$1', '$2', ...this.shape.columns.map((_, i) => `$${i + 3}`)].join(', ');
    const results: RowResult[] = [];
    for (const [i, change] of batch.entries()) {
      await this.ctx.acquire();
      const { sql, returnsApplied } = statementFor(change.operation, this.shape, this.shape.archiveDeletes);
      const started = performance.now();
      await client.query('SAVEPOINT syncline_row');
      try {
        await client.query(`INSERT INTO ${BATCH_TABLE} VALUES (${placeholders})`, this.values(change, i));
        const result = await client.query(sql);
        await client.query(`DELETE FROM ${BATCH_TABLE}`);
        await client.query('RELEASE SAVEPOINT syncline_row');
        this.debug(change.operation, [change.key], started, `${result.rowCount ?? 0} rows`);
        results.push(returnsApplied && result.rowCount === 0 ? this.noRecord(change) : { ok: true });
      } catch (error) {
        this.debug(change.operation, [change.key], started, undefined, error);
        if (!isPgServerError(error) || isPgConnectionError(error)) throw error;
        await client.query('ROLLBACK TO SAVEPOINT syncline_row');
        results.push({ ok: false, reason: describePgError(error), retryable: isTransient(error) });
      }
    }
    await client.query('COMMIT');
    return results;
  }

  private debug(
    op: string,
    keys: string[],
    started: number,
    status: string | undefined,
    error?: unknown,
  ): void {
    this.ctx.debug({
      operation: op,
      target: this.target(op),
      keys,
      status: error === undefined ? (status ?? 'ok') : ((error as { code?: string }).code ?? 'error'),
      latencyMs: Math.round(performance.now() - started),
      error: error === undefined ? undefined : describePgError(error),
    });
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

async function openShape(client: pg.PoolClient, ctx: DeliveryContext, settings: Settings): Promise<Shape> {
  const table = ctx.sync.spec.target?.table;
  if (!table) {
    throw new SynclineError(
      'MissingTarget',
      'a Sync to a postgres Destination needs target.table: the table to write',
    );
  }
  const schema = settings.schema ?? 'public';
  const qualified = `${quoteIdent(schema)}.${quoteIdent(table)}`;
  const mappings =
    ctx.mappings.length > 0
      ? ctx.mappings
      : ctx.columns.map((c) => ({ to: c.name, from: c.name, valueType: 'string' as const }));
  const keyMapping = mappings.find((m) => m.from === ctx.primaryKey && !m.to.includes('.'));
  if (!keyMapping) {
    throw new SynclineError(
      'PrimaryKeyNotMapped',
      `map the primary key column "${ctx.primaryKey}" to a column of ${schema}.${table}: it is the conflict key of every write`,
    );
  }
  const wanted = mappedColumns(mappings, ctx.columns);
  const archiveDeletes = ctx.sync.spec.archiveBehavior === 'delete';
  const needsArchivedAt = ctx.sync.spec.mode === 'archive' && !archiveDeletes;
  let info = await readTable(client, schema, table, keyMapping.to);
  if (!info) {
    await client.query(createTableSql(schema, table, wanted, keyMapping.to, needsArchivedAt));
    ctx.log.info(
      { table: `${schema}.${table}`, columns: wanted.map((c) => `${c.name} ${c.type}`), key: keyMapping.to },
      'created the destination table, which did not exist',
    );
    info = await readTable(client, schema, table, keyMapping.to);
  }
  if (!info) throw new SynclineError('DestinationTableMissing', `${schema}.${table} could not be created`);
  const missing = wanted.filter((c) => !info.columns.has(c.name)).map((c) => c.name);
  if (missing.length > 0) {
    throw new SynclineError(
      'UnknownDestinationColumn',
      `${schema}.${table} has no column ${missing.map((m) => `"${m}"`).join(', ')}; add the column or change the mappings`,
    );
  }
  if (!info.keyIsUnique) {
    throw new SynclineError(
      'DestinationKeyNotUnique',
      `${schema}.${table}."${keyMapping.to}" needs a primary key or unique index: Syncline matches records by it`,
    );
  }
  if (needsArchivedAt && !info.columns.has(ARCHIVED_AT)) {
    throw new SynclineError(
      'ArchiveColumnMissing',
      `mode archive sets ${schema}.${table}.${ARCHIVED_AT}, which does not exist: add it (timestamptz) or set archiveBehavior: delete`,
    );
  }
  const columns = wanted.map((c) => ({ name: c.name, type: info.columns.get(c.name) ?? 'text' }));
  return {
    schema,
    table,
    qualified,
    columns,
    key: { name: keyMapping.to, type: info.columns.get(keyMapping.to) ?? 'text' },
    archiveDeletes,
  };
}

export const postgresDestination: DestinationConnector = {
  capabilities: {
    modes: SYNC_MODES,
    deleteBehaviors: DELETE_BEHAVIORS,
    comparesAllColumns: false,
    defaultBatchSize: 5000,
    needsTarget: 'table',
  },

  identity: (spec: DestinationSpec, sync: SyncSpec) => {
    const { host, port, database, schema } = settingsOf(spec);
    return { type: 'postgres', host, port, database, schema, table: sync.target?.table ?? null };
  },

  async check(spec: DestinationSpec, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(spec);
    const client = await connectPg(settings, ctx.secrets, ctx.log, 'Destination');
    try {
      const schema = settings.schema ?? 'public';
      const found = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      if (found.rowCount === 0) {
        throw new SynclineError(
          'SchemaNotFound',
          `database "${settings.database}" has no schema "${schema}"; create it or change postgres.schema`,
        );
      }
    } finally {
      await client.end();
    }
  },

  async open(ctx: DeliveryContext): Promise<DestinationWriter> {
    const settings = settingsOf(ctx.destination);
    // One connection per batch in flight.
    const pool = new pg.Pool({ ...pgClientConfig(settings, ctx.secrets), max: ctx.delivery.concurrency });
    pool.on('error', (error) => ctx.log.warn({ err: error.message }, 'idle PostgreSQL connection failed'));
    pool.on('connect', (client) => {
      client
        .query("SET TimeZone = 'UTC'")
        .catch((error: unknown) => ctx.log.warn({ err: String(error) }, 'setting the session time zone'));
    });
    try {
      const client = await pool.connect().catch((error: unknown) => {
        throw pgConnectError(error, settings, 'Destination');
      });
      try {
        const shape = await openShape(client, ctx, settings);
        const rows = await client.query(`SELECT EXISTS (SELECT 1 FROM ${shape.qualified}) AS found`);
        return new PostgresWriter(pool, shape, ctx, rows.rows[0]?.found !== true);
      } finally {
        client.release();
      }
    } catch (error) {
      await pool.end();
      if (isSynclineError(error)) throw error;
      throw new SynclineError(
        'DestinationWriteFailed',
        `preparing the destination table failed: ${describePgError(error)}`,
        {
          cause: error,
        },
      );
    }
  },
};
