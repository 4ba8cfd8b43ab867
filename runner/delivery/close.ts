// The end of a delivery: the writer closed (a writer that publishes at close publishes now). When it
// fails to finish, nothing it accepted is known to have arrived: every planned operation counts as failed.
import type { DuckDBConnection } from '@duckdb/node-api';
import type { DestinationWriter } from '../../core/connectors.ts';
import { describeError } from '../../core/errors.ts';
import type { DeliveryOutcome } from '../deliver.ts';
import { SNAPSHOT_KEY } from '../mappings.ts';
import { REJECTED_SAMPLE } from '../../core/summary.ts';

/** Closes the writer; its failure, if it failed to finish. */
export async function closeWriter(writer: DestinationWriter): Promise<DeliveryOutcome['closeError']> {
  try {
    await writer.close();
    return undefined;
  } catch (error) {
    return describeError(error, 'DestinationCloseFailed');
  }
}

/** Every planned operation as failed (table `failed` and the outcome), for a writer that did not finish. */
export async function failEverything(
  recorder: DuckDBConnection,
  outcome: DeliveryOutcome,
  total: number,
  closeError: NonNullable<DeliveryOutcome['closeError']>,
): Promise<void> {
  outcome.closeError = closeError;
  const reason = `the destination did not confirm the writes: ${closeError.message}`;
  await recorder.run(
    `DELETE FROM failed; INSERT INTO failed SELECT ${SNAPSHOT_KEY}, $reason FROM diff WHERE op IS NOT NULL`,
    { reason: reason.slice(0, 1000) },
  );
  const sample = await recorder.runAndReadAll(
    `SELECT ${SNAPSHOT_KEY}, op FROM diff WHERE op IS NOT NULL LIMIT ${REJECTED_SAMPLE}`,
  );
  outcome.rejected = sample
    .getRowsJson()
    .map(([key, op]) => ({ key: String(key), operation: String(op), reason }));
  outcome.failed = total;
  outcome.delivered = 0;
  const planned = await recorder.runAndReadAll(
    'SELECT op, count(*) AS n FROM diff WHERE op IS NOT NULL GROUP BY op',
  );
  outcome.byOperation = Object.fromEntries(
    planned.getRowsJson().map(([op, n]) => [String(op), { delivered: 0, failed: Number(n) }]),
  );
}
