// Delivery: the diff's row operations streamed out of DuckDB in batches, sent with bounded concurrency
// and retries of transient failures (runner/delivery/), every rejected row recorded (table `failed`) and
// every confirmed one (table `delivered`), with checkpoints of delivered progress as it goes.
import type { DuckDBConnection } from '@duckdb/node-api';
import type { DestinationWriter, RowOperation } from '../core/connectors.ts';
import type { BackoffSettings } from './backoff.ts';
import { bulkLineSql } from './bulk.ts';
import { streamBulk } from './delivery/bulk.ts';
import { closeWriter, failEverything } from './delivery/close.ts';
import { streamRowChanges, type DeliveryRun } from './delivery/rows.ts';
import { Scheduler } from './delivery/scheduler.ts';
import { Tally } from './delivery/tally.ts';
import { RECORD_IDS } from './commit.ts';
import { operationsQuery } from './diff.ts';
import { literal } from './duck.ts';
import { changeBuilder } from './fields.ts';
import type { SyncShape } from './mappings.ts';

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
  /** The destination returns record ids (capabilities.recordIds): changes carry the known one, results are kept. */
  recordIds?: boolean;
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
  /** Why the writer stopped sending early (DestinationWriter.stopReason): the run's reason. */
  stopReason?: { reason: string; message: string };
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
  await conn.run(
    'CREATE OR REPLACE TABLE failed (k VARCHAR, reason VARCHAR); CREATE OR REPLACE TABLE delivered (k VARCHAR); ' +
      `CREATE OR REPLACE TABLE ${RECORD_IDS} (k VARCHAR, id VARCHAR)`,
  );
}

/** Sends every planned operation, through the bulk path where the writer offers one. */
async function sendAll(run: DeliveryRun): Promise<void> {
  const { options } = run;
  const writeBulk = options.writer.writeBulk?.bind(options.writer);
  const bulkFields = options.bulk && writeBulk ? options.writer.bulkFields?.() : undefined;
  const bulkLines = bulkFields ? bulkLineSql(options.shape, options.primaryKey, bulkFields) : undefined;
  // Streamed results are computed this far ahead, in parallel; with the default (1 MB) DuckDB's threads
  // wait on the reader, which halved the delivery rate.
  await options.reader.run("SET streaming_buffer_size = '32MB'");
  if (options.bulk && writeBulk && bulkLines !== undefined) {
    for (const op of Object.keys(options.bulk.operations) as RowOperation[])
      await streamBulk(run, { ...options.bulk, writeBulk }, bulkLines, op);
  } else {
    await streamRowChanges(run);
  }
  await run.scheduler.drained();
}

/**
 * Stream the diff's row operations out of DuckDB in batches, deliver them with bounded concurrency and
 * retries of transient failures, and record every row the destination rejected (table `failed`).
 */
export async function deliver(options: DeliverOptions): Promise<DeliveryOutcome> {
  const { signal } = options;
  await createFailedTable(options.recorder);
  const tally = new Tally({
    failedKeys: await options.recorder.createAppender('failed'),
    progress: options.progress,
    total: options.total,
    onProgress: options.onProgress,
  });
  const scheduler = new Scheduler({
    concurrency: options.concurrency,
    signal,
    tally,
    checkpoints: options.checkpoint,
  });
  const run: DeliveryRun = {
    options,
    tally,
    scheduler,
    toChange: changeBuilder(options.shape, options.syncId),
  };
  const { outcome } = tally;
  try {
    await sendAll(run);
  } catch (error) {
    await scheduler.cancel();
    if (!signal.aborted) {
      tally.closeFailedKeys();
      // Wait for the writes of delivered keys to end; nothing is committed after a failed delivery, so
      // the delivery error is the one to report whatever they did.
      await Promise.allSettled([tally.delivered.settled()]);
      throw error;
    }
    // Stopped (SIGTERM): requests in flight were cancelled and their keys stay pending; what the
    // destination confirmed is committed by the caller, so the run still moves the Sync forward.
    outcome.stopped = true;
  }
  await tally.delivered.settled();
  const stopReason = options.writer.stopReason?.();
  if (stopReason) outcome.stopReason = stopReason;
  const closeError = await closeWriter(options.writer);
  tally.closeFailedKeys();
  if (closeError) await failEverything(options.recorder, outcome, options.total, closeError);
  return outcome;
}
