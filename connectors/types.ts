// The small interfaces every connector implements. A connector is one folder, connectors/<type>/,
// whose index.ts exports `source` and/or `destination` (see registry.ts).
import type { DuckDBConnection } from '@duckdb/node-api';
import type {
  DeleteBehavior,
  DestinationSpec,
  Mapping,
  ModelSpec,
  RowOperation,
  SourceSpec,
  SyncMode,
  SyncSpec,
} from '../crds/index.ts';
import type { SecretResolver } from '../runner/secrets.ts';

export type { RowOperation };

/** Structured log lines; never pass a credential. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ConnectorContext {
  secrets: SecretResolver;
  log: Logger;
  signal: AbortSignal;
  /** A private scratch folder on local disk, removed after the run. */
  tmpDir: string;
}

/** A column as staged in DuckDB. */
export interface ColumnInfo {
  name: string;
  /** DuckDB logical type, e.g. BIGINT, DECIMAL(38,9), TIMESTAMP WITH TIME ZONE, JSON, VARCHAR[]. */
  type: string;
  /** The type as the source named it, for messages. */
  sourceType?: string;
}

export interface StageRequest extends ConnectorContext {
  /** The source's own settings (the block named by its type), with the rest of its spec. */
  source: SourceSpec;
  model: ModelSpec;
  /** Open DuckDB connection; create exactly this table and fill it with the model's rows. */
  duck: DuckDBConnection;
  table: string;
  /** Labels for query tags and logs. */
  labels: { namespace: string; sync: string; runId: string };
  /**
   * Optional: given the model's column names (known before its rows are read), the columns whose row hash
   * the engine will compare, in order, or undefined. A source that can add a column to the staged table
   * while loading it stores `hash(<those columns>)` as STAGED_ROW_HASH and names them in
   * StageResult.hashed, which saves the engine a pass over the whole table (and, past the memory limit,
   * reading every spilled column back from disk).
   */
  rowHashColumns?: (columns: string[]) => string[] | undefined;
}

/** The column of the staged table holding the row hash (see StageRequest.rowHashColumns). */
export const STAGED_ROW_HASH = '__syncline_row_hash';

export interface StageResult {
  /** The model's columns (never STAGED_ROW_HASH). */
  columns: ColumnInfo[];
  rows: number;
  /** The columns STAGED_ROW_HASH covers, in order, when the source stored it. */
  hashed?: string[];
}

export interface SourceConnector {
  /** Connect and authenticate (and run a trivial query). Throws a SynclineError with a reason. */
  check(source: SourceSpec, ctx: ConnectorContext): Promise<void>;
  /**
   * Stream the model's rows into DuckDB table `req.table` without holding them in memory, keeping
   * types (COPY to a temp file and read_csv with declared types, read_parquet, or DuckDB's appender).
   */
  stage(req: StageRequest): Promise<StageResult>;
}

/** One change to deliver. `fields` are the mapped destination fields (nested objects for dotted targets). */
export interface RowChange {
  operation: RowOperation;
  /** Primary key value as text (the key the diff store and debugger use). */
  key: string;
  fields: Record<string, unknown>;
  /** Unique per row operation and stable across retries and re-runs of the same change. */
  idempotencyKey: string;
}

export type RowResult =
  | { ok: true }
  | {
      ok: false;
      /** Why the destination rejected the row, for people. */
      reason: string;
      /** A transient failure (429, 5xx, timeout, connection reset): the engine retries it with backoff. */
      retryable: boolean;
      /** From a Retry-After header, when there was one. */
      retryAfterMs?: number;
    };

export interface DebugRequest {
  operation: string;
  /** Method and URL, or table and statement kind. Credentials redacted. */
  target: string;
  keys: string[];
  status?: number | string;
  latencyMs: number;
  requestBody?: string;
  responseBody?: string;
  error?: string;
}

export interface DeliveryContext extends ConnectorContext {
  sync: { namespace: string; name: string; spec: SyncSpec };
  /** The run's ID (files destinations name the file they write after it). */
  runId?: string;
  destination: DestinationSpec;
  /** Every model column as staged, and the primary key column. */
  columns: ColumnInfo[];
  primaryKey: string;
  mappings: Mapping[];
  /** Waits for the rate limiter; call once before each request a connector makes. */
  acquire(): Promise<void>;
  /** Record one request for the live debugger (bodies are truncated and redacted by the engine). */
  debug(request: DebugRequest): void;
}

/**
 * A batch of one operation kind in the text form a bulk-capable destination takes (see
 * `DestinationWriter.bulkFields`), built by the engine inside DuckDB without a JavaScript object per row.
 */
export interface BulkBatch {
  operation: RowOperation;
  /** The changes' primary keys as text, in line order. */
  keys: string[];
  /**
   * CSV text, one line per change ending in \n: one value per bulk field, in the order the writer asked
   * for; text values quoted with `"` (a `"` inside doubled), values of other types (which never hold a
   * comma, quote or newline) bare; an unquoted empty value is SQL NULL. Values are plain
   * scalar text: integers and decimals as digits, floats as DuckDB prints them (inf, nan included),
   * booleans true/false, timestamps with a time zone as ISO 8601 in UTC, dates, times, timestamps,
   * intervals and UUIDs as DuckDB prints them, strings as they are. A removed row carries its key
   * fields (its previous key, or its key text when the previous value is unknown) and NULL elsewhere.
   * As UTF-8 bytes: they go to the destination as DuckDB wrote them, never decoded into a string.
   */
  csv: Uint8Array;
}

/** A row a bulk write rejected: its position in the batch and why. */
export interface BulkRejection {
  index: number;
  reason: string;
}

export interface DestinationWriter {
  /** Deliver a batch; return exactly one result per change, in order. Throw only when nothing was applied. */
  write(batch: RowChange[]): Promise<RowResult[]>;
  /**
   * Optional fast path. The top-level destination fields this writer can take as plain scalar text
   * (BulkBatch), in order, or undefined when this Sync's fields need the row-object path. The engine uses
   * the bulk path only when it can render every one of them from a scalar column or a static scalar.
   */
  bulkFields?(): string[] | undefined;
  /**
   * Apply a BulkBatch; return the rows it rejected (every other row was applied). Throw only when
   * nothing was applied: the engine then delivers the same changes through `write`, with its retries.
   */
  writeBulk?(batch: BulkBatch): Promise<BulkRejection[]>;
  /**
   * Finish the run's writes. A writer that buffers (files) publishes here; if close throws, the engine
   * counts every change it accepted as failed, so nothing is committed that did not arrive.
   */
  close(): Promise<void>;
}

export interface DestinationCapabilities {
  modes: readonly SyncMode[];
  deleteBehaviors: readonly DeleteBehavior[];
  /** Custom destinations compare every model column, not only the mapped ones. */
  comparesAllColumns: boolean;
  defaultBatchSize: number;
  /** Whether the destination needs Sync.spec.target.table / object. */
  needsTarget?: 'table' | 'object';
}

export interface DestinationConnector {
  capabilities: DestinationCapabilities;
  check(destination: DestinationSpec, ctx: ConnectorContext): Promise<void>;
  open(ctx: DeliveryContext): Promise<DestinationWriter>;
}

export interface ConnectorModule {
  source?: SourceConnector;
  destination?: DestinationConnector;
}
