import { describe, expect, it } from 'vitest';
import { ManualClock } from './clock.ts';
import { RuntimeMetrics } from './metrics.ts';
import { WorkQueue } from './workqueue.ts';

/** Resolves with the key if `get` has one ready (or returns within the current microtask turns), else 'pending'. */
async function poll(promise: Promise<string | undefined>): Promise<string | undefined | 'pending'> {
  return Promise.race([promise, new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending')))]);
}

function newQueue(overrides: Partial<ConstructorParameters<typeof WorkQueue>[0]> = {}) {
  const clock = new ManualClock();
  const queue = new WorkQueue({ name: 'test', clock, ...overrides });
  return { clock, queue };
}

describe('WorkQueue', () => {
  it('holds a waiting key once however often it is added, in FIFO order', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    queue.add('ns/b');
    queue.add('ns/a');
    expect(queue.len()).toBe(2);
    expect(await queue.get()).toBe('ns/a');
    expect(await queue.get()).toBe('ns/b');
    expect(queue.len()).toBe(0);
  });

  it('never hands a key out twice at once; a key re-added while processing comes back after done', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    const first = await queue.get();
    expect(first).toBe('ns/a');
    queue.add('ns/a');
    queue.add('ns/a');
    expect(queue.len()).toBe(0);
    const second = queue.get();
    expect(await poll(second)).toBe('pending');
    queue.done('ns/a');
    expect(await poll(second)).toBe('ns/a');
    queue.done('ns/a');
    expect(await poll(queue.get())).toBe('pending');
  });

  it('hands a key added while no one waits to the next worker, and wakes a waiting worker on add', async () => {
    const { queue } = newQueue();
    const waiting = queue.get();
    expect(await poll(waiting)).toBe('pending');
    queue.add('ns/x');
    expect(await waiting).toBe('ns/x');
  });

  it('grows the per-key backoff exponentially from the base to the cap, and forget resets it', async () => {
    const { clock, queue } = newQueue({ baseDelayMs: 5, maxDelayMs: 1000, qps: 1e9, burst: 1e9 });
    const observed: number[] = [];
    for (let attempt = 0; attempt < 10; attempt++) {
      queue.addRateLimited('ns/a');
      const start = clock.now();
      // Step one millisecond at a time until the key shows up: the step count is the delay.
      while (queue.len() === 0) clock.advance(1);
      observed.push(clock.now() - start);
      expect(await queue.get()).toBe('ns/a');
      queue.done('ns/a');
    }
    expect(observed).toEqual([5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    expect(queue.numRequeues('ns/a')).toBe(10);
    queue.forget('ns/a');
    expect(queue.numRequeues('ns/a')).toBe(0);
    queue.addRateLimited('ns/a');
    clock.advance(4);
    expect(queue.len()).toBe(0);
    clock.advance(1);
    expect(queue.len()).toBe(1);
  });

  it('keeps per-key backoff separate between keys', () => {
    const { clock, queue } = newQueue({ baseDelayMs: 10, qps: 1e9, burst: 1e9 });
    queue.addRateLimited('ns/a');
    queue.addRateLimited('ns/a');
    queue.addRateLimited('ns/b');
    expect(queue.numRequeues('ns/a')).toBe(2);
    expect(queue.numRequeues('ns/b')).toBe(1);
    clock.advance(10);
    // ns/a's second delay (20 ms) lost to its first (10 ms): the earliest pending delay wins.
    expect(queue.len()).toBe(2);
  });

  it('spaces rate-limited requeues past the burst by the global qps', () => {
    const { clock, queue } = newQueue({ baseDelayMs: 1, qps: 10, burst: 3 });
    for (let i = 0; i < 6; i++) queue.addRateLimited(`ns/k${i}`);
    clock.advance(1);
    expect(queue.len()).toBe(3);
    clock.advance(99);
    expect(queue.len()).toBe(4);
    clock.advance(100);
    expect(queue.len()).toBe(5);
    clock.advance(99);
    expect(queue.len()).toBe(5);
    clock.advance(1);
    expect(queue.len()).toBe(6);
  });

  it('adds a key after its delay; the earliest of several delays wins and an immediate add dedups it', () => {
    const { clock, queue } = newQueue();
    queue.addAfter('ns/a', 1000);
    queue.addAfter('ns/a', 300);
    queue.addAfter('ns/a', 2000);
    clock.advance(299);
    expect(queue.len()).toBe(0);
    clock.advance(1);
    expect(queue.len()).toBe(1);
    clock.advance(5000);
    expect(queue.len()).toBe(1);
    expect(clock.pendingTimers()).toBe(0);
    queue.addAfter('ns/b', 0);
    expect(queue.len()).toBe(2);
  });

  it('returns undefined to waiting and later workers after shutDown, and ignores adds', async () => {
    const { clock, queue } = newQueue();
    const waiting = queue.get();
    queue.addAfter('ns/later', 100);
    queue.shutDown();
    expect(await waiting).toBeUndefined();
    queue.add('ns/a');
    clock.advance(200);
    expect(queue.len()).toBe(0);
    expect(await queue.get()).toBeUndefined();
    expect(clock.pendingTimers()).toBe(0);
  });

  it('shutDownWithDrain resolves only after every key in flight is done', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    queue.add('ns/b');
    queue.add('ns/c');
    const a = await queue.get();
    const b = await queue.get();
    let drained = false;
    const drain = queue.shutDownWithDrain().then(() => {
      drained = true;
    });
    expect(await queue.get()).toBeUndefined();
    queue.done(a as string);
    await new Promise((resolve) => setImmediate(resolve));
    expect(drained).toBe(false);
    queue.done(b as string);
    await drain;
    expect(drained).toBe(true);
  });

  it('reports depth, adds, retries and in-flight time under client-go metric names', async () => {
    const clock = new ManualClock();
    const metrics = new RuntimeMetrics({ defaultMetrics: false });
    const queue = new WorkQueue({ name: 'syncs', clock, metrics });
    queue.add('ns/a');
    queue.add('ns/a');
    queue.add('ns/b');
    queue.addRateLimited('ns/c');
    const key = await queue.get();
    clock.advance(2500);
    const text = await metrics.registry.metrics();
    expect(text).toContain('workqueue_adds_total{name="syncs"} 3');
    expect(text).toContain('workqueue_depth{name="syncs"} 2');
    expect(text).toContain('workqueue_retries_total{name="syncs"} 1');
    expect(text).toContain('workqueue_longest_running_processor_seconds{name="syncs"} 2.5');
    expect(text).toContain('workqueue_unfinished_work_seconds{name="syncs"} 2.5');
    queue.done(key as string);
    const after = await metrics.registry.metrics();
    expect(after).toContain('workqueue_work_duration_seconds_count{name="syncs"} 1');
    expect(after).toContain('workqueue_queue_duration_seconds_count{name="syncs"} 1');
  });
  it('hands out high-priority keys first, raises a held key to high, and still holds each key once', async () => {
    const { clock, queue } = newQueue();
    queue.add('ns/event-1');
    queue.add('ns/event-2');
    queue.addAfter('ns/due', 100, 'high');
    queue.add('ns/event-3');
    clock.advance(100);
    queue.add('ns/event-2', 'high');
    queue.add('ns/due');
    expect(queue.len()).toBe(4);
    const order: string[] = [];
    for (let i = 0; i < 4; i++) order.push((await queue.get()) as string);
    expect(order).toEqual(['ns/due', 'ns/event-2', 'ns/event-1', 'ns/event-3']);
    expect(await poll(queue.get())).toBe('pending');
  });

  it('requeues a key re-added at high priority while processing into the high lane after done', async () => {
    const { queue } = newQueue();
    queue.add('ns/a');
    const first = await queue.get();
    queue.add('ns/b');
    queue.add('ns/a', 'high');
    queue.done(first as string);
    expect(await queue.get()).toBe('ns/a');
    expect(await queue.get()).toBe('ns/b');
  });
});
