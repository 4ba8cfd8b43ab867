// The small interfaces every connector implements. A connector is one folder, connectors/<type>/,
// whose index.ts exports `source` and/or `destination` (see registry.ts).
import type { ColumnKind } from './column-types.ts';
import type { Reason } from './reasons.ts';
import type { DeliverySettings } from './settings.ts';
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
import type { SecretResolver } from './secrets.ts';
import type { SnapshotStore } from './diffstore/snapshot-store.ts';

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
  /** Labels for query tags and logs; `model` (namespace/name of the Model) names it in messages. */
  labels: { namespace: string; sync: string; runId: string; model?: string };
  /**
   * Optional: called once the model's columns are known (as they will be staged, before any row is read),
   * with the source's own row hash function if it has one; says which row hashes to store beside the rows
   * and whether to stage the keys only (see StagingChoice). A source that does not call it stages every row
   * and no hash, and the engine hashes in SQL.
   */
  chooseStaging?: (columns: ColumnInfo[], sourceHash: SourceHashFunction | undefined) => StagingChoice;
  /**
   * Where the Sync's snapshot lives. When it is the source's own warehouse snapshot
   * (SourceConnector.warehouseSnapshot), the engine may ask for a narrowed staging (StagingChoice.narrow).
   */
  snapshot?: SnapshotStore;
}

/** Who computes a row hash: the engine (DuckDB's hash(), while the rows load) or the source itself. */
export type HashBy = 'engine' | 'source';

/** A row hash of `columns`, in that order. */
export interface HashRequest {
  by: HashBy;
  columns: string[];
}

/** How a source stages the model, as the engine chooses (StageRequest.chooseStaging). */
export interface StagingChoice {
  /** Row hashes to store in the staged table, the i-th as column stagedHashColumn(i). */
  hashes: HashRequest[];
  /**
   * Stage only the primary key and the hashes, which must all be by the source; the engine then asks
   * StageResult.keysOnly.fetch for the rows whose hash differs. Only a source with a hash function of its
   * own is asked this.
   */
  keysOnly: boolean;
  /**
   * Stage only the rows that may differ from the snapshot the source keeps (StageRequest.snapshot, a
   * warehouse snapshot of its own): the source compares in its own SQL. Never together with keysOnly.
   */
  narrow?: NarrowRequest;
}

/**
 * A narrowed staging. The source stages every row that may differ from the snapshot — whose key is null,
 * held more than once, new, stale in the snapshot, whose hash `compare` differs from the snapshot's, or
 * with a value in a `fresh` column — with every hash of the plan; and writes the snapshot's rows of those
 * keys and of the keys that left the model to `previousFile`. Staging more rows than that is allowed
 * (the engine's diff decides), fewer never.
 */
export interface NarrowRequest {
  /** Index into StagingChoice.hashes of the hash comparable with the snapshot's (by the source). */
  compare: number;
  /** Model columns compared for the first time (a newly mapped field): a row with a value in one is staged. */
  fresh: string[];
  /**
   * Local Parquet file of snapshot rows: SNAPSHOT_KEY, SNAPSHOT_STALE, the typed key (named as the
   * primary key, its type as staged), SNAPSHOT_HASH (UBIGINT) and SNAPSHOT_RECORD_ID.
   */
  previousFile: string;
  /** The snapshot version this run read (StoredManifest.etag): another run's commit since fails the staging. */
  etag: string;
}

/**
 * A row hash the source computes itself (so that only keys and hashes need to leave it). Hashes are only
 * ever compared with hashes of the same function and probe (the hash of fixed sample values).
 */
export interface SourceHashFunction {
  name: string;
  probe: string;
  /**
   * The source can stage keys and hashes only (StagingChoice.keysOnly). Without it, a snapshot in the diff
   * store keeps the engine's hashes: the source's would only add bytes to every row it sends.
   */
  keysOnly?: boolean;
}

/** The column of the staged table holding the i-th hash of StagingChoice.hashes. */
export function stagedHashColumn(index: number): string {
  return `${STAGED_HASH_PREFIX}${index}`;
}

/** Every column the engine adds to a staged table starts with this; no model column may. */
export const STAGED_HASH_PREFIX = '__syncline_staged_hash_';

/** A row hash stored in the staged table: which column, who made it, over which model columns. */
export interface StagedHash extends HashRequest {
  column: string;
}

export interface StageResult {
  /** The model's columns (never a staged hash). */
  columns: ColumnInfo[];
  rows: number;
  /** The hashes the source stored (those of the plan it could compute). */
  hashes?: StagedHash[];
  /** The source's hash function, when it stored a hash of its own. */
  sourceHash?: SourceHashFunction;
  /** Present when only keys and hashes were staged (StagingChoice.keysOnly). */
  keysOnly?: KeysOnlyStage;
  /** Present after a narrowed staging (StagingChoice.narrow): `rows` counts only the rows staged. */
  narrowed?: NarrowedStage;
}

export interface NarrowedStage {
  /** Rows the model returned (the staged table holds only those that may differ). */
  modelRows: number;
  /** Snapshot rows written to NarrowRequest.previousFile. */
  previousRows: number;
  /** Whether a checksum over every row proved nothing differs, so no row and no snapshot row left the source. */
  byChecksum: boolean;
}

/** What a source needs to keep a Sync's snapshot in its own database (Sync.spec.snapshot.location: warehouse). */
export interface WarehouseSnapshotRequest extends ConnectorContext {
  source: SourceSpec;
  namespace: string;
  sync: string;
  /** The schema Syncline owns there (Sync.spec.snapshot.schema). */
  schema: string;
  /** The run's DuckDB, which reads and writes the local Parquet files the store takes and gives. */
  duck: DuckDBConnection;
  /** A dry run: create nothing, change nothing (a missing schema or state reads as no snapshot yet). */
  readOnly: boolean;
}

/** A row the destination refused, kept pending in the snapshot: what a rejections table holds. */
export interface SnapshotRejection {
  /** The primary key as text (SNAPSHOT_KEY). */
  key: string;
  /** The catalogued reason (core/reasons.ts): RowsRejected. */
  reason: string;
  /** The destination's message for the row (already redacted of secrets; at most 1,000 characters). */
  message: string;
  /** The run that was refused. */
  runId: string;
}

/** A snapshot kept in the source's database; closed when the run ends. */
export interface WarehouseSnapshot extends SnapshotStore {
  close(): Promise<void>;
  /**
   * After a successful commit: make the Sync's rejections table (users may query it) hold exactly these
   * rows — the keys the committed snapshot keeps pending because the destination refused them.
   */
  recordRejections(rejections: SnapshotRejection[]): Promise<void>;
  /** Drop every table of this Sync (snapshotPolicy: delete, or after moving the snapshot away); the schema stays. Returns how many tables it dropped. */
  dropAll(): Promise<number>;
}

export function isWarehouseSnapshot(store: SnapshotStore): store is WarehouseSnapshot {
  return typeof (store as Partial<WarehouseSnapshot>).recordRejections === 'function';
}

/** The rest of a keys-only staging: the rows themselves, for the keys that need them. */
export interface KeysOnlyStage {
  /**
   * Create table `table` with every model column and the plan's hashes, for the rows whose keys the
   * DuckDB query `keysSql` returns (one column of typed keys, `keyCount` of them), read as of the same
   * moment as the keys where the source can. Rows of other keys are left out.
   */
  fetch(request: { table: string; keysSql: string; keyCount: number }): Promise<{ rows: number }>;
  /** End the source's read (its transaction, its connection). Always called, once. */
  close(): Promise<void>;
}

export interface SourceConnector {
  /** Connect and authenticate (and run a trivial query). Throws a SynclineError with a reason. */
  check(source: SourceSpec, ctx: ConnectorContext): Promise<void>;
  /**
   * Stream the model's rows into DuckDB table `req.table` without holding them in memory, keeping
   * types (COPY to a temp file and read_csv with declared types, read_parquet, or DuckDB's appender).
   */
  stage(req: StageRequest): Promise<StageResult>;
  /**
   * Optional: open the Sync's snapshot in the source's own database (tables of `req.schema`), creating
   * what is missing; fails naming the grant the user lacks. A source with one can narrow its staging.
   */
  warehouseSnapshot?(req: WarehouseSnapshotRequest): Promise<WarehouseSnapshot>;
  /**
   * Optional, beside warehouseSnapshot: check (creating nothing) that the Source's user has every grant a
   * warehouse snapshot in `schema` needs; fails with WarehouseSnapshotGrantMissing naming the one it lacks.
   * The connection check calls it when the Source keeps its Syncs' snapshots in the warehouse.
   */
  checkWarehouseSnapshot?(source: SourceSpec, schema: string, ctx: ConnectorContext): Promise<void>;
}

/** One change to deliver. `fields` are the mapped destination fields (nested objects for dotted targets). */
export interface RowChange {
  operation: RowOperation;
  /** Primary key value as text (the key the diff store and debugger use). */
  key: string;
  fields: Record<string, unknown>;
  /** Unique per row operation and stable across retries and re-runs of the same change. */
  idempotencyKey: string;
  /**
   * The destination's own id of the record, as an earlier run learned it (RowResult.recordId), for
   * destinations with capabilities.recordIds: updates and deletes address the record without a look-up.
   * The record may have been deleted in the tool since: a connector treats a stale id as "not found".
   */
  recordId?: string;
  /**
   * Model columns the destination needs besides the mapped fields, by column name (an association's match
   * value: Sync.spec.target.associations[].from). Absent for removed rows and when there are none.
   */
  context?: Record<string, unknown>;
}

export type RowResult =
  | {
      ok: true;
      /** The destination's id of the record written (kept beside the key when capabilities.recordIds). */
      recordId?: string;
    }
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
  /** The run's delivery settings (batch sizes, concurrency, retries), resolved once (settings.ts). */
  delivery: DeliverySettings;
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
   * scalar text: integers and decimals as digits, floats as DuckDB prints them (non-finite ones as NaN, Infinity, -Infinity),
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
  /**
   * Deliver a batch; return exactly one result per change, in order. Throw only when nothing was applied.
   * When the run is asked to stop (ctx.signal aborts), send nothing more and return the results so far,
   * the rest as retryable failures: what arrived is then committed, and the rest stays pending.
   */
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
  /**
   * Why the writer stopped sending before the end of the run, when it did (for example DailyLimitReached:
   * the tool's daily quota is spent and the rest stays pending): it becomes the run's reason.
   */
  stopReason?(): { reason: Reason; message: string } | undefined;
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
  /**
   * The modes in which rows are matched to records by Sync.spec.target.matchField (a unique field of the
   * object): a Sync in one of them must name it (checked with the capabilities, before any run).
   */
  requiresMatchField?: readonly SyncMode[];
  /** What a match field is in this tool, for the message when one is missing. */
  matchFieldHint?: string;
  /**
   * By discovered field type, the kinds of model columns (core/column-types.ts) none of whose values the
   * connector converts to such a field: a mapping from one is refused before any run
   * (IncompatibleFieldType). Only kinds whose every non-null value the run would reject belong here.
   */
  refusedColumns?: Partial<Record<DestinationField['type'], readonly ColumnKind[]>>;
  /**
   * The writer buffers and publishes only in close(): a write it accepted has not arrived until then, so
   * the engine makes no checkpoint of delivered progress while delivering.
   */
  publishesOnClose?: boolean;
  /** The destination receives RowChange.idempotencyKey (an API that may deduplicate by it). */
  idempotencyKeys?: boolean;
  /** The destination returns its record ids (RowResult.recordId); the engine keeps them in the snapshot. */
  recordIds?: boolean;
  /** The connector discovers the destination's objects and fields (discover): the check reads them for its Syncs. */
  discovers?: boolean;
  /**
   * Every run against one account draws on one API quota (a SaaS tool's daily and per-interval limits):
   * the operator runs one Sync to such a Destination at a time unless its rateLimit.maxConcurrentRuns
   * says otherwise.
   */
  sharedQuota?: boolean;
}

/** A field of a destination object, as the connection check discovers it (a compact form). */
export interface DestinationField {
  name: string;
  label?: string;
  type: 'string' | 'number' | 'boolean' | 'date' | 'datetime' | 'enumeration' | 'reference' | 'id' | 'other';
  required?: boolean;
  /** Unique, or an external id: it can match rows to records (Sync.spec.target.matchField). */
  unique?: boolean;
  readOnly?: boolean;
  /** The values an enumeration (picklist) accepts. */
  options?: string[];
}

export interface DestinationObject {
  name: string;
  label?: string;
  fields: DestinationField[];
}

export interface DestinationConnector {
  capabilities: DestinationCapabilities;
  /**
   * Where this Destination and Sync put records (server, database and table; base URL; folder), without
   * credentials. The engine keeps a digest of it in the snapshot: when it changes, every row is sent to
   * the new place. Without it, the destination type and the Sync's target stand for it.
   */
  identity?(destination: DestinationSpec, sync: SyncSpec): unknown;
  check(destination: DestinationSpec, ctx: ConnectorContext): Promise<void>;
  /**
   * The objects and fields of the destination for `objects` (the objects Syncs target), for validating
   * mappings before any run. Optional: destinations without a schema of their own (http, files) have none.
   */
  discover?(
    destination: DestinationSpec,
    ctx: ConnectorContext,
    objects: string[],
  ): Promise<DestinationObject[]>;
  open(ctx: DeliveryContext): Promise<DestinationWriter>;
}

export interface ConnectorModule {
  source?: SourceConnector;
  destination?: DestinationConnector;
}
