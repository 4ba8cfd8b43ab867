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
 * Which lane a key waits in. Workers take `high` keys first: a key whose time has come (a schedule slot,
 * requeued with a delay) must not wait behind a burst of event-driven keys, or every run starts late.
 */
export type Priority = 'high' | 'normal';

/** A FIFO of keys; entries whose key has since moved lanes or been taken are skipped when read. */
class Lane {
  items: string[] = [];
  head = 0;
  push(key: string): void {
    this.items.push(key);
  }
  shift(): string | undefined {
    if (this.head >= this.items.length) return undefined;
    const key = this.items[this.head] as string;
    this.head += 1;
    // Compact now and then so a long-lived queue does not keep every key it ever held.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    return key;
  }
}

/**
 * A work queue of object keys ("namespace/name") with client-go's semantics: a key waiting in the queue is
 * held once however often it is added; a key being processed is never handed out again until `done`, and
 * if it was added meanwhile it comes back afterwards. Failed keys come back after a per-key exponential
 * delay, bounded by a global rate limit. Keys added with `high` priority are handed out before the others
 * (as controller-runtime's priority queue does); a key added at both priorities waits as `high`.
 */
export class WorkQueue {
  readonly name: string;
  private readonly clock: Clock;
  private readonly metrics: RuntimeMetrics | undefined;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly bucket: TokenBucket;

  private readonly lanes: Record<Priority, Lane> = { high: new Lane(), normal: new Lane() };
  /** Keys waiting in a lane, with the lane they wait in. */
  private readonly waiting = new Map<string, Priority>();
  /** Keys that need processing (waiting, or re-added while being processed), with their priority. */
  private readonly dirty = new Map<string, Priority>();
  /** Keys handed to a worker and not yet done, with when they were handed out. */
  private readonly processing = new Map<string, number>();
  /** When each waiting key was added, for the queue-duration histogram. */
  private readonly addedAt = new Map<string, number>();
  private readonly delayed = new Map<string, { readyAt: number; timer: Timer; priority: Priority }>();
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

  add(key: string, priority: Priority = 'normal'): void {
    if (this.shuttingDown) return;
    const held = this.dirty.get(key);
    if (held !== undefined) {
      if (priority === 'high' && held === 'normal') {
        // Already held: only its priority rises (a waiting key moves to the high lane).
        this.dirty.set(key, 'high');
        if (this.waiting.has(key)) this.enqueue(key, 'high');
      }
      return;
    }
    this.metrics?.workqueueAddsTotal.inc({ name: this.name });
    this.dirty.set(key, priority);
    if (this.processing.has(key)) return;
    this.enqueue(key, priority);
  }

  /**
   * Adds the key once `delayMs` has passed; of several pending delays for one key the earliest wins (at
   * the higher of their priorities).
   */
  addAfter(key: string, delayMs: number, priority: Priority = 'normal'): void {
    if (this.shuttingDown) return;
    this.metrics?.workqueueRetriesTotal.inc({ name: this.name });
    if (delayMs <= 0) {
      this.add(key, priority);
      return;
    }
    const readyAt = this.clock.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending) {
      if (pending.readyAt <= readyAt) {
        if (priority === 'high') pending.priority = 'high';
        return;
      }
      this.clock.clearTimeout(pending.timer);
      if (pending.priority === 'high') priority = 'high';
    }
    const timer = this.clock.setTimeout(() => {
      const entry = this.delayed.get(key);
      this.delayed.delete(key);
      this.add(key, entry?.priority ?? priority);
    }, delayMs);
    this.delayed.set(key, { readyAt, timer, priority });
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
    if (this.waiting.size > 0) return Promise.resolve(this.take());
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
    const again = this.dirty.get(key);
    if (again !== undefined && !this.shuttingDown) this.enqueue(key, again);
    if (this.shuttingDown && this.processing.size === 0) this.drained?.();
  }

  /** Keys waiting to be handed out (not counting those in flight or delayed). */
  len(): number {
    return this.waiting.size;
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

  private enqueue(key: string, priority: Priority): void {
    if (!this.waiting.has(key)) this.addedAt.set(key, this.clock.now());
    this.waiting.set(key, priority);
    this.lanes[priority].push(key);
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter(this.take());
      return;
    }
    this.metrics?.workqueueDepth.set({ name: this.name }, this.len());
  }

  /** The first waiting key of the high lane, else of the normal lane. Only called when one waits. */
  private next(): string {
    for (const priority of ['high', 'normal'] as const) {
      const lane = this.lanes[priority];
      for (let key = lane.shift(); key !== undefined; key = lane.shift()) {
        if (this.waiting.get(key) === priority) return key;
      }
    }
    throw new Error('work queue: no waiting key in any lane');
  }

  private take(): string {
    const key = this.next();
    this.waiting.delete(key);
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
