// The bulk path: operations of one kind rendered as CSV by DuckDB, in bulk batches. The operations and
// the columns they read are put in a table once, then each batch is one query for a range of its rows;
// several connections render batches side by side (one DuckDB thread each), ahead of the destination.
import { DuckDBBlobValue, type DuckDBConnection } from '@duckdb/node-api';
import type { BulkRejection, DestinationWriter, RowOperation } from '../../core/connectors.ts';
import {
  bulkBatchSql,
  bulkKeysSql,
  bulkRowsSource,
  bulkRowsSql,
  KEY_SEPARATOR,
  lineFor,
  stagedRowsSource,
  type BulkLines,
  type BulkSource,
} from '../bulk.ts';
import type { DeliverOptions } from '../deliver.ts';
import { ident } from '../duck.ts';
import { sendAsRows, type DeliveryRun } from './rows.ts';

export type BulkPath = NonNullable<DeliverOptions['bulk']> & {
  writeBulk: NonNullable<DestinationWriter['writeBulk']>;
};

async function sendBulk(
  run: DeliveryRun,
  bulk: BulkPath,
  batch: { operation: RowOperation; keys: string[]; csv: Uint8Array; joinedKeys: string | undefined },
): Promise<void> {
  const { signal } = run.options;
  const { operation, keys } = batch;
  signal.throwIfAborted();
  let rejections: BulkRejection[];
  try {
    rejections = await bulk.writeBulk({ operation, keys, csv: batch.csv });
  } catch (error) {
    if (signal.aborted) throw error;
    // Nothing was applied: the row-object path retries, and isolates the rows at fault.
    await sendAsRows(run, bulk.connect, keys);
    return;
  }
  run.tally.count(operation, keys.length - rejections.length, 0);
  // Rejected keys are in `failed` too, which wins over `delivered`.
  if (batch.joinedKeys !== undefined) run.tally.delivered.joined(batch.joinedKeys);
  else run.tally.delivered.keys(keys);
  for (const r of rejections) {
    const key = keys[r.index];
    if (key !== undefined) run.tally.reject({ operation, key }, r.reason);
  }
  run.tally.report();
}

/** Renders batches [next, rows) on `conn`, claiming one range at a time, and schedules each. */
async function renderBatches(
  run: DeliveryRun,
  bulk: BulkPath,
  work: { op: RowOperation; lineSql: string; source: BulkSource; rows: number },
  cursor: { next: number; halted: boolean },
  conn: DuckDBConnection,
): Promise<void> {
  for (let from = cursor.next; from < work.rows && !cursor.halted; from = cursor.next) {
    cursor.next += bulk.batchSize;
    run.options.signal.throwIfAborted();
    const to = from + bulk.batchSize;
    const result = await conn.runAndReadAll(bulkBatchSql(work.source, work.lineSql, from, to));
    const [csv, joined, separated] = result.getRows()[0] ?? [];
    if (!(csv instanceof DuckDBBlobValue) || typeof joined !== 'string') continue;
    const keys =
      separated === true
        ? joined.split(KEY_SEPARATOR)
        : (JSON.parse(
            String((await conn.runAndReadAll(bulkKeysSql(work.source, from, to))).getRows()[0]?.[0] ?? '[]'),
          ) as string[]);
    const joinedKeys = separated === true ? joined : undefined;
    await run.scheduler.schedule(() =>
      sendBulk(run, bulk, { operation: work.op, keys, csv: csv.bytes, joinedKeys }),
    );
  }
}

/** Renders on the reader and renderers-1 more connections; settled, not raced: one failure halts the rest. */
async function renderInParallel(
  run: DeliveryRun,
  bulk: BulkPath,
  work: Parameters<typeof renderBatches>[2],
): Promise<void> {
  const { reader } = run.options;
  const cursor = { next: 0, halted: false };
  const renderers = Math.min(bulk.renderers, Math.ceil(work.rows / bulk.batchSize));
  const extra = await Promise.all(Array.from({ length: Math.max(0, renderers - 1) }, () => bulk.connect()));
  // One batch is a few row groups at most, so a query gains nothing from a second thread, which only
  // spins waiting for work: the connections render one batch each, on one thread each.
  await reader.run('SET threads = 1');
  let rendered: PromiseSettledResult<void>[];
  try {
    const halting = (conn: DuckDBConnection) =>
      renderBatches(run, bulk, work, cursor, conn).catch((error: unknown) => {
        cursor.halted = true;
        throw error;
      });
    rendered = await Promise.allSettled([halting(reader), ...extra.map(halting)]);
  } finally {
    // A connection is closed only once nothing runs on it.
    for (const conn of extra) conn.closeSync();
    await reader.run(`SET threads = ${bulk.renderers}`);
  }
  const failure = rendered.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
}

/** Every operation of kind `op`, through the bulk path. */
export async function streamBulk(
  run: DeliveryRun,
  bulk: BulkPath,
  lines: BulkLines,
  op: RowOperation,
): Promise<void> {
  const { reader, primaryKey, shape, total } = run.options;
  // An operation covering every staged row reads its batches straight from the staged table.
  const direct =
    bulk.stagedTable !== undefined && op !== 'delete' && op !== 'clear' && bulk.operations[op] === total;
  const table = `bulk_${op}`;
  const source = direct ? stagedRowsSource(bulk.stagedTable as string, primaryKey) : bulkRowsSource(table);
  if (!direct) await reader.run(bulkRowsSql(table, shape, primaryKey, op));
  try {
    const counted = await reader.runAndReadAll(`SELECT count(*) AS n FROM ${ident(source.table)}`);
    const rows = Number(counted.getRowsJson()[0]?.[0] ?? 0);
    await renderInParallel(run, bulk, { op, lineSql: lineFor(lines, op), source, rows });
    // Every batch has been read: the table can go once they are sent.
    await run.scheduler.drained();
  } finally {
    if (!direct) await reader.run(`DROP TABLE IF EXISTS ${table}`);
  }
}
