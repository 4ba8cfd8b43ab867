// What a delivery has done so far: delivered and failed counts by operation, the first rejected rows, the
// keys the destination rejected (table `failed`) and confirmed (table `delivered`), and progress reports.
import { LIST, listValue, VARCHAR, type DuckDBAppender, type DuckDBConnection } from '@duckdb/node-api';
import type { RowChange, RowOperation } from '../../core/connectors.ts';
import { REJECTED_SAMPLE } from '../../core/summary.ts';
import { RECORD_IDS } from '../commit.ts';
import type { DeliveryOutcome, DeliveryProgress } from '../deliver.ts';

/** Keys the destination confirmed, into table `delivered`, one write at a time on its own connection. */
class DeliveredKeys {
  private chain: Promise<unknown> = Promise.resolve();
  private failure: unknown;
  private readonly conn: DuckDBConnection;

  constructor(conn: DuckDBConnection) {
    this.conn = conn;
  }

  private enqueue(write: () => Promise<unknown>): void {
    this.chain = this.chain.then(write).catch((error: unknown) => {
      this.failure ??= error;
    });
  }

  keys(keys: string[]): void {
    this.enqueue(() =>
      this.conn.run(
        'INSERT INTO delivered SELECT unnest($keys)',
        { keys: listValue(keys) },
        { keys: LIST(VARCHAR) },
      ),
    );
  }

  /** The destination's record ids of delivered keys (in the same order of writes as the keys). */
  recordIds(keys: string[], ids: string[]): void {
    this.enqueue(() =>
      this.conn.run(
        `INSERT INTO ${RECORD_IDS} SELECT unnest($keys), unnest($ids)`,
        { keys: listValue(keys), ids: listValue(ids) },
        { keys: LIST(VARCHAR), ids: LIST(VARCHAR) },
      ),
    );
  }

  /** Keys joined by chr(30), as the bulk path has them. */
  joined(text: string): void {
    this.enqueue(() =>
      this.conn.run(
        `INSERT INTO delivered SELECT unnest(string_split($keys, chr(30)))`,
        { keys: text },
        { keys: VARCHAR },
      ),
    );
  }

  async settled(): Promise<void> {
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
  }
}

/** The longest destination message kept per rejected key (the rejections table of a warehouse snapshot). */
const REASON_LIMIT = 1000;

export class Tally {
  readonly outcome: DeliveryOutcome = { delivered: 0, failed: 0, byOperation: {}, rejected: [] };
  readonly delivered: DeliveredKeys;
  private readonly failedKeys: DuckDBAppender;
  private readonly total: number;
  private readonly onProgress: ((progress: DeliveryProgress) => void) | undefined;

  constructor(options: {
    failedKeys: DuckDBAppender;
    progress: DuckDBConnection;
    total: number;
    onProgress?: ((progress: DeliveryProgress) => void) | undefined;
  }) {
    this.failedKeys = options.failedKeys;
    this.delivered = new DeliveredKeys(options.progress);
    this.total = options.total;
    this.onProgress = options.onProgress;
  }

  count(operation: RowOperation, delivered: number, failed: number): void {
    const counts = (this.outcome.byOperation[operation] ??= { delivered: 0, failed: 0 });
    counts.delivered += delivered;
    counts.failed += failed;
    this.outcome.delivered += delivered;
    this.outcome.failed += failed;
  }

  reject(change: Pick<RowChange, 'key' | 'operation'>, reason: string): void {
    this.failedKeys.appendVarchar(change.key);
    this.failedKeys.appendVarchar(reason.slice(0, REASON_LIMIT));
    this.failedKeys.endRow();
    this.count(change.operation, 0, 1);
    if (this.outcome.rejected.length < REJECTED_SAMPLE)
      this.outcome.rejected.push({ key: change.key, operation: change.operation, reason });
  }

  report(): void {
    this.onProgress?.({ total: this.total, delivered: this.outcome.delivered, failed: this.outcome.failed });
  }

  /** Every key recorded so far is in tables `failed` and `delivered` (a checkpoint reads them). */
  async flush(): Promise<void> {
    this.failedKeys.flushSync();
    await this.delivered.settled();
  }

  closeFailedKeys(): void {
    this.failedKeys.closeSync();
  }
}
