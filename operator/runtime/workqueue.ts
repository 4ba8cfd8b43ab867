import { systemClock, type Clock, type Timer } from './clock.ts';
import type { RuntimeMetrics } from './metrics.ts';

export interface WorkQueueOptions {
  name?: string;
  metrics?: RuntimeMetrics;
  /** First per-key retry delay; doubles on each failure of the same key (client-go: 5 ms). */
  baseDelayMs?: number;
  /** Cap of the per-key delay (client-go: 1000 s). */
  maxDelayMs?: number;
  /** Global token bucket over all rate-limited requeues (client-go: 10 qps, burst 100). */
  qps?: number;
  burst?: number;
  clock?: Clock;
}

/**
 * client-go's BucketRateLimiter: a token bucket where every request reserves a token, even one not yet
 * available, and waits until it would be.
 */
class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly qps: number;
  private readonly burst: number;
  private readonly clock: Clock;

  constructor(qps: number, burst: number, clock: Clock) {
    this.qps = qps;
    this.burst = burst;
    this.tokens = burst;
    this.clock = clock;
    this.last = clock.now();
  }

  reserve(): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
  }
}

/**
 * A work queue of object keys ("namespace/name") with client-go's semantics: a key waiting in the queue is
 * held once however often it is added; a key being processed is never handed out again until `done`, and
 * if it was added meanwhile it comes back afterwards. Failed keys come back after a per-key exponential
 * delay, bounded by a global rate limit.
 */
export class WorkQueue {
  readonly name: string;
  private readonly clock: Clock;
  private readonly metrics: RuntimeMetrics | undefined;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly bucket: TokenBucket;

  private readonly queue: string[] = [];
  private head = 0;
  /** Keys that need processing: waiting in `queue`, or re-added while being processed. */
  private readonly dirty = new Set<string>();
  /** Keys handed to a worker and not yet done, with when they were handed out. */
  private readonly processing = new Map<string, number>();
  /** When each waiting key was added, for the queue-duration histogram. */
  private readonly addedAt = new Map<string, number>();
  private readonly delayed = new Map<string, { readyAt: number; timer: Timer }>();
  private readonly failures = new Map<string, number>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  private drained: (() => void) | undefined;

  constructor(options: WorkQueueOptions = {}) {
    this.name = options.name ?? 'default';
    this.clock = options.clock ?? systemClock;
    this.metrics = options.metrics;
    this.baseDelayMs = options.baseDelayMs ?? 5;
    this.maxDelayMs = options.maxDelayMs ?? 1_000_000;
    this.bucket = new TokenBucket(options.qps ?? 10, options.burst ?? 100, this.clock);
    this.metrics?.registerQueue(this.name, {
      inFlightSeconds: () => [...this.processing.values()].map((start) => (this.clock.now() - start) / 1000),
    });
    this.metrics?.workqueueDepth.set({ name: this.name }, 0);
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.metrics?.workqueueAddsTotal.inc({ name: this.name });
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.enqueue(key);
  }

  /** Adds the key once `delayMs` has passed; of several pending delays for one key the earliest wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    this.metrics?.workqueueRetriesTotal.inc({ name: this.name });
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.clock.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending) {
      if (pending.readyAt <= readyAt) return;
      this.clock.clearTimeout(pending.timer);
    }
    const timer = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { readyAt, timer });
  }

  /** Adds the key after its backoff: `baseDelayMs * 2^failures`, capped, and never faster than the bucket allows. */
  addRateLimited(key: string): void {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const itemDelay = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** failures);
    this.addAfter(key, Math.max(itemDelay, this.bucket.reserve()));
  }

  /** Clears the key's failure count, so its next rate-limited add starts from the base delay again. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to process; waits for one. `undefined` once the queue is shut down. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    if (this.head < this.queue.length) return Promise.resolve(this.take());
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks the key processed; if it was added meanwhile it goes back into the queue. */
  done(key: string): void {
    const started = this.processing.get(key);
    if (started === undefined) return;
    this.processing.delete(key);
    this.metrics?.workqueueWorkDurationSeconds.observe(
      { name: this.name },
      (this.clock.now() - started) / 1000,
    );
    if (this.dirty.has(key) && !this.shuttingDown) this.enqueue(key);
    if (this.shuttingDown && this.processing.size === 0) this.drained?.();
  }

  /** Keys waiting to be handed out (not counting those in flight or delayed). */
  len(): number {
    return this.queue.length - this.head;
  }

  /** Stops handing out keys and accepting new ones; waiting `get` calls resolve with `undefined`. */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) this.clock.clearTimeout(timer);
    this.delayed.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  /**
   * Shuts down and resolves once every key in flight is done. Keys still waiting are dropped: reconciles
   * are level-triggered, so whoever runs next lists everything again.
   */
  shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.drained;
      this.drained = () => {
        previous?.();
        resolve();
      };
    });
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  private enqueue(key: string): void {
    this.addedAt.set(key, this.clock.now());
    const waiter = this.waiters.shift();
    if (waiter) {
      this.queue.push(key);
      waiter(this.take());
      return;
    }
    this.queue.push(key);
    this.metrics?.workqueueDepth.set({ name: this.name }, this.len());
  }

  private take(): string {
    const key = this.queue[this.head] as string;
    this.head += 1;
    // Compact now and then so a long-lived queue does not keep every key it ever held.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    this.dirty.delete(key);
    const now = this.clock.now();
    this.processing.set(key, now);
    const added = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (added !== undefined)
      this.metrics?.workqueueQueueDurationSeconds.observe({ name: this.name }, (now - added) / 1000);
    this.metrics?.workqueueDepth.set({ name: this.name }, this.len());
    return key;
  }
}
