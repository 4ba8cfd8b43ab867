// The row-object path: row changes streamed out of DuckDB in batches, each sent with retries of transient
// failures; what the destination rejects for good is recorded with its reason.
import { LIST, listValue, VARCHAR, type DuckDBConnection, type DuckDBVarCharVector } from '@duckdb/node-api';
import type { RowChange, RowResult } from '../../core/connectors.ts';
import { describeError, isSynclineError } from '../../core/errors.ts';
import { retryDelay, sleep } from '../backoff.ts';
import type { DeliverOptions } from '../deliver.ts';
import { operationsQuery } from '../diff.ts';
import { SNAPSHOT_KEY } from '../mappings.ts';
import type { Scheduler } from './scheduler.ts';
import type { Tally } from './tally.ts';

/** What both delivery paths share while one delivery runs. */
export interface DeliveryRun {
  options: DeliverOptions;
  tally: Tally;
  scheduler: Scheduler;
  toChange: (json: string) => RowChange;
}

/** The writer's results for `batch`; a write that throws applied nothing, so each row gets the failure. */
async function attempt(run: DeliveryRun, batch: RowChange[]): Promise<RowResult[]> {
  const { writer, signal } = run.options;
  try {
    const results = await writer.write(batch);
    if (results.length === batch.length) return results;
    const reason = `the destination connector returned ${results.length} results for ${batch.length} rows`;
    return batch.map(() => ({ ok: false, reason, retryable: false }));
  } catch (error) {
    if (signal.aborted) throw error;
    const retryable = isSynclineError(error) ? error.retryable : true;
    const reason = describeError(error, 'DeliveryFailed').message;
    return batch.map(() => ({ ok: false, reason, retryable }));
  }
}

/** Sends one batch, retrying the rows whose failure is transient up to maxRetries times. */
export async function sendBatch(run: DeliveryRun, batch: RowChange[]): Promise<void> {
  const { signal, maxRetries, backoff } = run.options;
  let pending = batch;
  for (let tries = 0; ; tries++) {
    signal.throwIfAborted();
    const results = await attempt(run, pending);
    const retry: RowChange[] = [];
    const ok: string[] = [];
    const ids: { keys: string[]; ids: string[] } = { keys: [], ids: [] };
    let retryAfterMs = 0;
    results.forEach((result, i) => {
      const change = pending[i] as RowChange;
      if (result.ok) {
        run.tally.count(change.operation, 1, 0);
        ok.push(change.key);
        if (result.recordId !== undefined) {
          ids.keys.push(change.key);
          ids.ids.push(result.recordId);
        }
      } else if (result.retryable && tries < maxRetries) {
        retry.push(change);
        retryAfterMs = Math.max(retryAfterMs, result.retryAfterMs ?? 0);
      } else {
        run.tally.reject(
          change,
          result.retryable ? `${result.reason} (gave up after ${tries} retries)` : result.reason,
        );
      }
    });
    if (ok.length > 0) run.tally.delivered.keys(ok);
    if (ids.keys.length > 0) run.tally.delivered.recordIds(ids.keys, ids.ids);
    run.tally.report();
    if (retry.length === 0) return;
    await sleep(retryDelay(tries, backoff, retryAfterMs), signal);
    pending = retry;
  }
}

function changesQuery(run: DeliveryRun, where?: string): string {
  const { shape, primaryKey, syncId, runId, recordIds } = run.options;
  return operationsQuery({
    shape,
    primaryKey,
    syncId,
    runId,
    recordIds: recordIds === true,
    ...(where ? { where } : {}),
  });
}

/** Every planned row change, in batches of batchSize. */
export async function streamRowChanges(run: DeliveryRun): Promise<void> {
  const result = await run.options.reader.stream(changesQuery(run));
  let batch: RowChange[] = [];
  for (;;) {
    const chunk = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    const column = chunk.getColumnVector(0) as DuckDBVarCharVector;
    for (let i = 0; i < chunk.rowCount; i++) {
      batch.push(run.toChange(column.getItem(i) as string));
      if (batch.length >= run.options.batchSize) {
        const full = batch;
        await run.scheduler.schedule(() => sendBatch(run, full));
        batch = [];
      }
    }
  }
  if (batch.length > 0) {
    const last = batch;
    await run.scheduler.schedule(() => sendBatch(run, last));
  }
}

/** A bulk batch the destination refused as a whole goes again as row changes, with their retries. */
export async function sendAsRows(
  run: DeliveryRun,
  connect: () => Promise<DuckDBConnection>,
  keys: string[],
): Promise<void> {
  const conn = await connect();
  let changes: RowChange[];
  try {
    const reader = await conn.runAndReadAll(
      changesQuery(run, `d.${SNAPSHOT_KEY} IN (SELECT unnest($keys))`),
      { keys: listValue(keys) },
      { keys: LIST(VARCHAR) },
    );
    changes = reader.getRowsJson().map(([json]) => run.toChange(String(json)));
  } finally {
    conn.closeSync();
  }
  const size = run.options.batchSize;
  for (let i = 0; i < changes.length; i += size) await sendBatch(run, changes.slice(i, i + size));
}
