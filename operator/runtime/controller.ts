import { describeError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { RuntimeMetrics } from './metrics.ts';
import { WorkQueue } from './workqueue.ts';

/**
 * What a reconcile asks for next: `requeueAfterMs` (a time it is due), or `requeueWithBackoff` (a
 * transient condition, written to status, that must be re-checked: per-key exponential backoff, as after
 * an error, without logging one).
 */
export type ReconcileResult = { requeueAfterMs?: number; requeueWithBackoff?: boolean } | void;

export interface ControllerOptions {
  name: string;
  /** Keys reconciled at once; one key is never reconciled by two workers at the same time. */
  workers?: number;
  /** Level-triggered and idempotent: reads the current state of the key's object and converges it. */
  reconcile: (key: string) => Promise<ReconcileResult>;
  log: Logger;
  metrics: RuntimeMetrics;
  queue?: WorkQueue;
}

/**
 * Workers that take keys from a work queue and reconcile them, as controller-runtime's controller does:
 * an error (or `{requeueWithBackoff}`) requeues the key with backoff, `{requeueAfterMs}` requeues it
 * after that delay (at high priority), success forgets its failures.
 */
export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly workers: number;
  private readonly reconcile: (key: string) => Promise<ReconcileResult>;
  private readonly log: Logger;
  private readonly metrics: RuntimeMetrics;
  private loops: Promise<void>[] = [];

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.workers = Math.max(1, options.workers ?? 2);
    this.reconcile = options.reconcile;
    this.log = options.log.child({ controller: options.name });
    this.metrics = options.metrics;
    this.queue = options.queue ?? new WorkQueue({ name: options.name, metrics: options.metrics });
    this.metrics.maxConcurrentReconciles.set({ controller: this.name }, this.workers);
    this.metrics.activeWorkers.set({ controller: this.name }, 0);
  }

  start(): void {
    if (this.loops.length > 0) return;
    this.log.info({ workers: this.workers }, 'starting workers');
    for (let i = 0; i < this.workers; i++) this.loops.push(this.work());
  }

  /** Stops taking keys, waits for the reconciles in flight to finish; keys still queued are dropped. */
  async stop(): Promise<void> {
    await this.queue.shutDownWithDrain();
    await Promise.all(this.loops);
    this.log.info('workers stopped');
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.reconcileOne(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async reconcileOne(key: string): Promise<void> {
    const labels = { controller: this.name };
    this.metrics.activeWorkers.inc(labels);
    const endTimer = this.metrics.reconcileTimeSeconds.startTimer(labels);
    try {
      const result = await this.reconcile(key);
      if (result?.requeueWithBackoff) {
        this.queue.addRateLimited(key);
        this.metrics.reconcileTotal.inc({ ...labels, result: 'requeue' });
        return;
      }
      const requeueAfterMs = result?.requeueAfterMs;
      this.queue.forget(key);
      if (requeueAfterMs !== undefined && requeueAfterMs > 0) {
        // A requeue the reconciler asked for is due at a time (a schedule slot): it goes before the
        // event-driven keys waiting then, so a burst of events cannot make runs start late.
        this.queue.addAfter(key, requeueAfterMs, 'high');
        this.metrics.reconcileTotal.inc({ ...labels, result: 'requeue_after' });
      } else {
        this.metrics.reconcileTotal.inc({ ...labels, result: 'success' });
      }
    } catch (error) {
      const { reason, message } = describeError(error);
      this.metrics.reconcileTotal.inc({ ...labels, result: 'error' });
      this.metrics.reconcileErrorsTotal.inc(labels);
      this.queue.addRateLimited(key);
      this.log.error(
        { key, reason, err: message, requeues: this.queue.numRequeues(key) },
        'reconcile failed; retrying with backoff',
      );
    } finally {
      endTimer();
      this.metrics.activeWorkers.dec(labels);
    }
  }
}
