import {
  DuckDBBlobValue,
  LIST,
  listValue,
  VARCHAR,
  type DuckDBAppender,
  type DuckDBConnection,
  type DuckDBVarCharVector,
} from '@duckdb/node-api';
import PQueue from 'p-queue';
import type {
  BulkRejection,
  DestinationWriter,
  RowChange,
  RowOperation,
  RowResult,
} from '../core/connectors.ts';
import { retryDelay, sleep, type BackoffSettings } from './backoff.ts';
import {
  bulkBatchSql,
  bulkKeysSql,
  bulkLineSql,
  bulkRowsSource,
  bulkRowsSql,
  KEY_SEPARATOR,
  lineFor,
  stagedRowsSource,
  type BulkLines,
} from './bulk.ts';
import { operationsQuery } from './diff.ts';
import { ident, literal } from './duck.ts';
import { describeError, isSynclineError } from '../core/errors.ts';
import { changeBuilder } from './fields.ts';
import { SNAPSHOT_KEY, type SyncShape } from './mappings.ts';

export const REJECTED_SAMPLE = 100;

export interface RejectedRow {
  key: string;
  operation: string;
  reason: string;
}

export interface DeliveryProgress {
  total: number;
  delivered: number;
  failed: number;
}

export interface DeliverOptions {
  /** Reads the operations (its own connection, so the main one stays free for recording failures). */
  reader: DuckDBConnection;
  /** Records failed keys into table `failed`. */
  recorder: DuckDBConnection;
  writer: DestinationWriter;
  shape: SyncShape;
  primaryKey: string;
  /** Identifies the Sync in idempotency keys. */
  syncId: string;
  /** The idempotency epoch of changes no earlier run planned. */
  runId: string;
  /** Records delivered keys into table `delivered` (its own connection: writes there run in order). */
  progress: DuckDBConnection;
  /**
   * Commit delivered progress every `intervalMs` while delivering (not for writers that publish only at
   * close). Called between batches, with tables `failed` and `delivered` up to date.
   */
  checkpoint?: { intervalMs: number; commit: () => Promise<void> };
  total: number;
  batchSize: number;
  concurrency: number;
  maxRetries: number;
  backoff: BackoffSettings;
  signal: AbortSignal;
  onProgress?: (progress: DeliveryProgress) => void;
  /**
   * Enables the bulk path where the writer offers one: the planned operations by kind, the size of bulk
   * batches, and a connection factory for rebuilding a refused bulk batch as row changes.
   */
  bulk?: {
    operations: Partial<Record<RowOperation, number>>;
    batchSize: number;
    connect: () => Promise<DuckDBConnection>;
    /** How many batches DuckDB renders at the same time (one thread each). */
    renderers: number;
    /**
     * The staged model table, when every one of its rows is an operation of the diff and the model has no
     * left-out rows: an operation covering all of them reads its batches straight from it.
     */
    stagedTable?: string;
  };
}

/** Delivered and failed row operations of one kind. */
export interface OperationOutcome {
  delivered: number;
  failed: number;
}

export interface DeliveryOutcome {
  delivered: number;
  failed: number;
  /** The same, by kind of operation. */
  byOperation: Partial<Record<RowOperation, OperationOutcome>>;
  rejected: RejectedRow[];
  /** Set when the writer failed to finish: every change it accepted counts as failed. */
  closeError?: { reason: string; message: string };
  /** The run was asked to stop (SIGTERM): what is in `delivered` arrived, the rest did not go or is unknown. */
  stopped?: boolean;
}

/** The first few planned changes of each operation, for dry runs. */
export async function sampleOperations(
  conn: DuckDBConnection,
  options: {
    shape: SyncShape;
    primaryKey: string;
    syncId: string;
    runId: string;
    perOperation: number;
    operations: string[];
  },
): Promise<Record<string, Record<string, unknown>[]>> {
  const toChange = changeBuilder(options.shape, options.syncId);
  const samples: Record<string, Record<string, unknown>[]> = {};
  for (const op of options.operations) {
    const reader = await conn.runAndReadAll(
      operationsQuery({ ...options, where: `d.op = ${literal(op)}`, limit: options.perOperation }),
    );
    samples[op] = reader.getRowsJson().map(([json]) => {
      const change = toChange(String(json));
      return { key: change.key, fields: change.fields };
    });
  }
  return samples;
}

export async function createFailedTable(conn: DuckDBConnection): Promise<void> {
  await conn.run('CREATE OR REPLACE TABLE failed (k VARCHAR); CREATE OR REPLACE TABLE delivered (k VARCHAR)');
}

/** Keys the destination confirmed, into table `delivered`, one write at a time on its own connection. */
function deliveredRecorder(conn: DuckDBConnection): {
  keys(keys: string[]): void;
  joined(text: string): void;
  settled(): Promise<void>;
} {
  let chain: Promise<unknown> = Promise.resolve();
  let failure: unknown;
  const enqueue = (write: () => Promise<unknown>) => {
    chain = chain.then(write).catch((error: unknown) => {
      failure ??= error;
    });
  };
  return {
    keys: (keys) =>
      enqueue(() =>
        conn.run(
          'INSERT INTO delivered SELECT unnest($keys)',
          { keys: listValue(keys) },
          { keys: LIST(VARCHAR) },
        ),
      ),
    joined: (text) =>
      enqueue(() =>
        conn.run(
          `INSERT INTO delivered SELECT unnest(string_split($keys, chr(30)))`,
          { keys: text },
          { keys: VARCHAR },
        ),
      ),
    async settled() {
      await chain;
      if (failure !== undefined) throw failure;
    },
  };
}

/**
 * Stream the diff's row operations out of DuckDB in batches, deliver them with bounded concurrency and
 * retries of transient failures, and record every row the destination rejected (table `failed`).
 */
export async function deliver(options: DeliverOptions): Promise<DeliveryOutcome> {
  const { shape, signal } = options;
  await createFailedTable(options.recorder);
  const appender: DuckDBAppender = await options.recorder.createAppender('failed');
  const outcome: DeliveryOutcome = { delivered: 0, failed: 0, byOperation: {}, rejected: [] };
  const tally = (operation: RowOperation, delivered: number, failed: number) => {
    const counts = (outcome.byOperation[operation] ??= { delivered: 0, failed: 0 });
    counts.delivered += delivered;
    counts.failed += failed;
    outcome.delivered += delivered;
    outcome.failed += failed;
  };
  const toChange = changeBuilder(shape, options.syncId);
  const queue = new PQueue({ concurrency: options.concurrency });
  const delivered = deliveredRecorder(options.progress);
  let taskError: unknown;
  let lastCheckpoint = performance.now();

  const recordFailure = (change: RowChange, reason: string) => {
    appender.appendVarchar(change.key);
    appender.endRow();
    tally(change.operation, 0, 1);
    if (outcome.rejected.length < REJECTED_SAMPLE)
      outcome.rejected.push({ key: change.key, operation: change.operation, reason });
  };
  const report = () =>
    options.onProgress?.({ total: options.total, delivered: outcome.delivered, failed: outcome.failed });

  const sendBatch = async (batch: RowChange[]) => {
    let pending = batch;
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      let results: RowResult[];
      try {
        results = await options.writer.write(pending);
        if (results.length !== pending.length) {
          const reason = `the destination connector returned ${results.length} results for ${pending.length} rows`;
          results = pending.map(() => ({ ok: false, reason, retryable: false }));
        }
      } catch (error) {
        if (signal.aborted) throw error;
        // A write that throws applied nothing, so it can be retried as a whole when the failure is transient.
        const retryable = isSynclineError(error) ? error.retryable : true;
        const reason = describeError(error, 'DeliveryFailed').message;
        results = pending.map(() => ({ ok: false, reason, retryable }));
      }
      const retry: RowChange[] = [];
      const ok: string[] = [];
      let retryAfterMs = 0;
      results.forEach((result, i) => {
        const change = pending[i] as RowChange;
        if (result.ok) {
          tally(change.operation, 1, 0);
          ok.push(change.key);
        } else if (result.retryable && attempt < options.maxRetries) {
          retry.push(change);
          retryAfterMs = Math.max(retryAfterMs, result.retryAfterMs ?? 0);
        } else {
          recordFailure(
            change,
            result.retryable ? `${result.reason} (gave up after ${attempt} retries)` : result.reason,
          );
        }
      });
      if (ok.length > 0) delivered.keys(ok);
      report();
      if (retry.length === 0) return;
      await sleep(retryDelay(attempt, options.backoff, retryAfterMs), signal);
      pending = retry;
    }
  };

  // One checkpoint at a time, checked when a batch is scheduled and when one finishes.
  let checkpointing: Promise<void> | undefined;
  const checkpointIfDue = async () => {
    const due = options.checkpoint;
    if (!due || checkpointing || performance.now() - lastCheckpoint < due.intervalMs) return;
    checkpointing = (async () => {
      appender.flushSync();
      await delivered.settled();
      await due.commit();
    })();
    try {
      await checkpointing;
    } finally {
      checkpointing = undefined;
      lastCheckpoint = performance.now();
    }
  };

  const schedule = async (task: () => Promise<void>) => {
    // Bounded memory: at most one batch waits besides those in flight (and the one being built).
    await queue.onSizeLessThan(1);
    if (taskError !== undefined) throw taskError;
    signal.throwIfAborted();
    await checkpointIfDue();
    queue
      .add(async () => {
        await task();
        if (!signal.aborted) await checkpointIfDue();
      })
      .catch((error: unknown) => {
        taskError ??= error;
      });
  };

  /** A bulk batch the destination refused as a whole goes again as row changes, with their retries. */
  const sendAsRows = async (connect: () => Promise<DuckDBConnection>, keys: string[]) => {
    const conn = await connect();
    let changes: RowChange[];
    try {
      const reader = await conn.runAndReadAll(
        operationsQuery({
          shape,
          primaryKey: options.primaryKey,
          syncId: options.syncId,
          runId: options.runId,
          where: `d.${SNAPSHOT_KEY} IN (SELECT unnest($keys))`,
        }),
        { keys: listValue(keys) },
        { keys: LIST(VARCHAR) },
      );
      changes = reader.getRowsJson().map(([json]) => toChange(String(json)));
    } finally {
      conn.closeSync();
    }
    for (let i = 0; i < changes.length; i += options.batchSize)
      await sendBatch(changes.slice(i, i + options.batchSize));
  };

  const sendBulk = async (
    bulk: {
      writeBulk: NonNullable<DestinationWriter['writeBulk']>;
      connect: () => Promise<DuckDBConnection>;
    },
    operation: RowOperation,
    keys: string[],
    csv: Uint8Array,
    joinedKeys: string | undefined,
  ) => {
    signal.throwIfAborted();
    let rejections: BulkRejection[];
    try {
      rejections = await bulk.writeBulk({ operation, keys, csv });
    } catch (error) {
      if (signal.aborted) throw error;
      // Nothing was applied: the row-object path retries, and isolates the rows at fault.
      await sendAsRows(bulk.connect, keys);
      return;
    }
    tally(operation, keys.length - rejections.length, 0);
    // Rejected keys are in `failed` too, which wins over `delivered`.
    if (joinedKeys !== undefined) delivered.joined(joinedKeys);
    else delivered.keys(keys);
    for (const r of rejections) {
      const key = keys[r.index];
      if (key !== undefined) recordFailure({ operation, key, fields: {}, idempotencyKey: '' }, r.reason);
    }
    report();
  };

  /**
   * Operations of one kind as CSV built by DuckDB, in bulk batches: the operations and the columns they
   * read are put in a table once, then each batch is one query for a range of its rows. Rendering a batch
   * runs on one DuckDB thread, so several connections render batches side by side, ahead of the
   * destination taking them (batches are independent: their order does not matter).
   */
  const streamBulk = async (
    bulk: NonNullable<DeliverOptions['bulk']> & { writeBulk: NonNullable<DestinationWriter['writeBulk']> },
    lines: BulkLines,
    op: RowOperation,
  ) => {
    const lineSql = lineFor(lines, op);
    const direct =
      bulk.stagedTable !== undefined &&
      op !== 'delete' &&
      op !== 'clear' &&
      bulk.operations[op] === options.total;
    const table = `bulk_${op}`;
    const source = direct
      ? stagedRowsSource(bulk.stagedTable as string, options.primaryKey)
      : bulkRowsSource(table);
    if (!direct) await options.reader.run(bulkRowsSql(table, shape, options.primaryKey, op));
    try {
      const counted = await options.reader.runAndReadAll(`SELECT count(*) AS n FROM ${ident(source.table)}`);
      const rows = Number(counted.getRowsJson()[0]?.[0] ?? 0);
      let next = 0;
      const keysOf = async (conn: DuckDBConnection, from: number, to: number) => {
        const found = await conn.runAndReadAll(bulkKeysSql(source, from, to));
        return JSON.parse(String(found.getRows()[0]?.[0] ?? '[]')) as string[];
      };
      let halted = false;
      const render = async (conn: DuckDBConnection) => {
        for (let from = next; from < rows && !halted; from = next) {
          next += bulk.batchSize;
          signal.throwIfAborted();
          const to = from + bulk.batchSize;
          const result = await conn.runAndReadAll(bulkBatchSql(source, lineSql, from, to));
          const [csv, joined, separated] = result.getRows()[0] ?? [];
          if (!(csv instanceof DuckDBBlobValue) || typeof joined !== 'string') continue;
          const keys = separated === true ? joined.split(KEY_SEPARATOR) : await keysOf(conn, from, to);
          const joinedKeys = separated === true ? joined : undefined;
          await schedule(() => sendBulk(bulk, op, keys, csv.bytes, joinedKeys));
        }
      };
      const renderers = Math.min(bulk.renderers, Math.ceil(rows / bulk.batchSize));
      const extra = await Promise.all(
        Array.from({ length: Math.max(0, renderers - 1) }, () => bulk.connect()),
      );
      // One batch is a few row groups at most, so a query gains nothing from a second thread, which only
      // spins waiting for work: the connections render one batch each, on one thread each.
      await options.reader.run('SET threads = 1');
      let rendered: PromiseSettledResult<void>[];
      try {
        // Settled, not raced: a connection is closed only once nothing runs on it; one failure halts the rest.
        const halting = (conn: DuckDBConnection) =>
          render(conn).catch((error: unknown) => {
            halted = true;
            throw error;
          });
        rendered = await Promise.allSettled([halting(options.reader), ...extra.map(halting)]);
      } finally {
        for (const conn of extra) conn.closeSync();
        await options.reader.run(`SET threads = ${bulk.renderers}`);
      }
      const failure = rendered.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure) throw failure.reason;
      // Every batch has been read: the table can go once they are sent.
      await queue.onIdle();
    } finally {
      if (!direct) await options.reader.run(`DROP TABLE IF EXISTS ${table}`);
    }
  };

  const streamRowChanges = async () => {
    const result = await options.reader.stream(
      operationsQuery({
        shape,
        primaryKey: options.primaryKey,
        syncId: options.syncId,
        runId: options.runId,
      }),
    );
    let batch: RowChange[] = [];
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      const column = chunk.getColumnVector(0) as DuckDBVarCharVector;
      for (let i = 0; i < chunk.rowCount; i++) {
        batch.push(toChange(column.getItem(i) as string));
        if (batch.length >= options.batchSize) {
          const full = batch;
          await schedule(() => sendBatch(full));
          batch = [];
        }
      }
    }
    if (batch.length > 0) {
      const last = batch;
      await schedule(() => sendBatch(last));
    }
  };

  const writeBulk = options.writer.writeBulk?.bind(options.writer);
  const bulkFields = options.bulk && writeBulk ? options.writer.bulkFields?.() : undefined;
  const bulkLines = bulkFields ? bulkLineSql(shape, options.primaryKey, bulkFields) : undefined;

  try {
    // Streamed results are computed this far ahead, in parallel; with the default (1 MB) DuckDB's threads
    // wait on the reader, which halved the delivery rate.
    await options.reader.run("SET streaming_buffer_size = '32MB'");
    if (options.bulk && writeBulk && bulkLines !== undefined) {
      for (const op of Object.keys(options.bulk.operations) as RowOperation[])
        await streamBulk({ ...options.bulk, writeBulk }, bulkLines, op);
    } else {
      await streamRowChanges();
    }
    await queue.onIdle();
    if (taskError !== undefined) throw taskError;
  } catch (error) {
    queue.clear();
    await queue.onIdle();
    if (!signal.aborted) {
      appender.closeSync();
      await delivered.settled().catch(() => undefined); // the delivery error is the one to report
      throw error;
    }
    // Stopped (SIGTERM): requests in flight were cancelled and their keys stay pending; what the
    // destination confirmed is committed by the caller, so the run still moves the Sync forward.
    outcome.stopped = true;
  }
  await delivered.settled();

  try {
    await options.writer.close();
  } catch (error) {
    outcome.closeError = describeError(error, 'DestinationCloseFailed');
  }
  appender.closeSync();
  if (outcome.closeError) {
    // Nothing the writer accepted is known to have arrived: every operation counts as failed.
    await options.recorder.run(
      'DELETE FROM failed; INSERT INTO failed SELECT __syncline_key FROM diff WHERE op IS NOT NULL',
    );
    const reason = `the destination did not confirm the writes: ${outcome.closeError.message}`;
    outcome.rejected = [];
    const sample = await options.recorder.runAndReadAll(
      `SELECT __syncline_key, op FROM diff WHERE op IS NOT NULL LIMIT ${REJECTED_SAMPLE}`,
    );
    for (const [key, op] of sample.getRowsJson())
      outcome.rejected.push({ key: String(key), operation: String(op), reason });
    outcome.failed = options.total;
    outcome.delivered = 0;
    const planned = await options.recorder.runAndReadAll(
      'SELECT op, count(*) AS n FROM diff WHERE op IS NOT NULL GROUP BY op',
    );
    outcome.byOperation = Object.fromEntries(
      planned.getRowsJson().map(([op, n]) => [String(op), { delivered: 0, failed: Number(n) }]),
    );
  }
  return outcome;
}
