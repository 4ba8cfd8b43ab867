// Batches in flight with bounded concurrency and memory, and checkpoints of delivered progress between
// them (one at a time, when due). The first failure of a batch stops the scheduling of more.
import PQueue from 'p-queue';
import type { Tally } from './tally.ts';

export interface Checkpoints {
  intervalMs: number;
  commit: () => Promise<void>;
}

export class Scheduler {
  private readonly queue: PQueue;
  private readonly signal: AbortSignal;
  private readonly tally: Tally;
  private readonly checkpoints: Checkpoints | undefined;
  private taskError: unknown;
  private checkpointing: Promise<void> | undefined;
  private lastCheckpoint = performance.now();

  constructor(options: {
    concurrency: number;
    signal: AbortSignal;
    tally: Tally;
    checkpoints?: Checkpoints | undefined;
  }) {
    this.queue = new PQueue({ concurrency: options.concurrency });
    this.signal = options.signal;
    this.tally = options.tally;
    this.checkpoints = options.checkpoints;
  }

  /** Runs `task` once a slot is free: at most one batch waits besides those in flight (and the one being built). */
  async schedule(task: () => Promise<void>): Promise<void> {
    await this.queue.onSizeLessThan(1);
    if (this.taskError !== undefined) throw this.taskError;
    this.signal.throwIfAborted();
    await this.checkpointIfDue();
    this.queue
      .add(async () => {
        await task();
        if (!this.signal.aborted) await this.checkpointIfDue();
      })
      .catch((error: unknown) => {
        this.taskError ??= error;
      });
  }

  /** Every scheduled batch has finished; throws the first failure. */
  async drained(): Promise<void> {
    await this.queue.onIdle();
    if (this.taskError !== undefined) throw this.taskError;
  }

  /** Drops the batches not started and waits for those in flight. */
  async cancel(): Promise<void> {
    this.queue.clear();
    await this.queue.onIdle();
  }

  private async checkpointIfDue(): Promise<void> {
    const due = this.checkpoints;
    if (!due || this.checkpointing || performance.now() - this.lastCheckpoint < due.intervalMs) return;
    this.checkpointing = (async () => {
      await this.tally.flush();
      await due.commit();
    })();
    try {
      await this.checkpointing;
    } finally {
      this.checkpointing = undefined;
      this.lastCheckpoint = performance.now();
    }
  }
}
