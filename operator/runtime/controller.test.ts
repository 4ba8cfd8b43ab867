import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SynclineError } from '../../core/errors.ts';
import { ManualClock } from './clock.ts';
import { Controller, type ReconcileResult } from './controller.ts';
import { createLogger } from '../../core/logger.ts';
import { reconcileLogger } from './log.ts';
import { RuntimeMetrics } from './metrics.ts';
import { WorkQueue } from './workqueue.ts';

function captureLog() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n'))
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { log: createLogger({ destination, level: 'debug' }), lines };
}

/** Lets pending promise continuations and immediates run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await settle();
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('Controller', () => {
  it('reconciles keys on several workers but one key never twice at once', async () => {
    const metrics = new RuntimeMetrics({ defaultMetrics: false });
    const { log } = captureLog();
    const running = new Set<string>();
    let overlap = false;
    let maxConcurrent = 0;
    const calls: string[] = [];
    const gates = new Map<string, ReturnType<typeof deferred>>();
    const controller = new Controller({
      name: 'syncs',
      workers: 3,
      log,
      metrics,
      reconcile: async (key) => {
        if (running.has(key)) overlap = true;
        running.add(key);
        maxConcurrent = Math.max(maxConcurrent, running.size);
        calls.push(key);
        const gate = deferred();
        gates.set(key, gate);
        await gate.promise;
        running.delete(key);
      },
    });
    controller.start();
    controller.queue.add('ns/a');
    controller.queue.add('ns/b');
    controller.queue.add('ns/c');
    await until(() => running.size === 3);
    controller.queue.add('ns/a');
    controller.queue.add('ns/a');
    await settle();
    expect(calls).toEqual(['ns/a', 'ns/b', 'ns/c']);
    gates.get('ns/a')?.resolve();
    await until(() => calls.length === 4);
    expect(calls[3]).toBe('ns/a');
    for (const key of ['ns/a', 'ns/b', 'ns/c']) gates.get(key)?.resolve();
    await until(() => running.size === 0);
    expect(overlap).toBe(false);
    expect(maxConcurrent).toBe(3);
    await controller.stop();
    const text = await metrics.registry.metrics();
    expect(text).toContain('controller_runtime_reconcile_total{controller="syncs",result="success"} 4');
    expect(text).toContain('controller_runtime_max_concurrent_reconciles{controller="syncs"} 3');
    expect(text).toContain('controller_runtime_active_workers{controller="syncs"} 0');
  });

  it('requeues a failed key with growing backoff, and a requeueAfter result after its delay', async () => {
    const clock = new ManualClock();
    const metrics = new RuntimeMetrics({ defaultMetrics: false });
    const { log, lines } = captureLog();
    const queue = new WorkQueue({ name: 'models', clock, metrics, baseDelayMs: 100, qps: 1e9, burst: 1e9 });
    const results: (() => Promise<ReconcileResult>)[] = [
      () => Promise.reject(new SynclineError('SourceUnreachable', 'cannot reach db.example:5432')),
      () => Promise.reject(new Error('boom')),
      () => Promise.resolve({ requeueAfterMs: 5000 }),
      () => Promise.resolve(),
    ];
    let calls = 0;
    const controller = new Controller({
      name: 'models',
      log,
      metrics,
      queue,
      reconcile: () => (results[calls++] ?? (() => Promise.resolve()))(),
    });
    controller.start();
    queue.add('ns/m');
    await until(() => calls === 1 && queue.numRequeues('ns/m') === 1);
    clock.advance(99);
    await settle();
    expect(calls).toBe(1);
    clock.advance(1);
    await until(() => calls === 2 && queue.numRequeues('ns/m') === 2);
    clock.advance(199);
    await settle();
    expect(calls).toBe(2);
    clock.advance(1);
    await until(() => calls === 3 && queue.numRequeues('ns/m') === 0);
    clock.advance(4999);
    await settle();
    expect(calls).toBe(3);
    clock.advance(1);
    await until(() => calls === 4);
    await controller.stop();

    const text = await metrics.registry.metrics();
    expect(text).toContain('controller_runtime_reconcile_total{controller="models",result="error"} 2');
    expect(text).toContain(
      'controller_runtime_reconcile_total{controller="models",result="requeue_after"} 1',
    );
    expect(text).toContain('controller_runtime_reconcile_total{controller="models",result="success"} 1');
    expect(text).toContain('controller_runtime_reconcile_errors_total{controller="models"} 2');
    expect(text).toContain('controller_runtime_reconcile_time_seconds_count{controller="models"} 4');
    const failure = lines.find((line) => line['reason'] === 'SourceUnreachable');
    expect(failure).toMatchObject({ level: 'error', controller: 'models', key: 'ns/m' });
  });

  it('requeues with growing backoff on requeueWithBackoff, logging no error, until a result forgets it', async () => {
    const clock = new ManualClock();
    const metrics = new RuntimeMetrics({ defaultMetrics: false });
    const { log, lines } = captureLog();
    const queue = new WorkQueue({ name: 'syncs', clock, metrics, baseDelayMs: 100, qps: 1e9, burst: 1e9 });
    let calls = 0;
    const controller = new Controller({
      name: 'syncs',
      log,
      metrics,
      queue,
      reconcile: async () => (++calls <= 2 ? { requeueWithBackoff: true } : undefined),
    });
    controller.start();
    queue.add('ns/s');
    await until(() => calls === 1 && queue.numRequeues('ns/s') === 1);
    clock.advance(100);
    await until(() => calls === 2 && queue.numRequeues('ns/s') === 2);
    clock.advance(199);
    await settle();
    expect(calls).toBe(2);
    clock.advance(1);
    await until(() => calls === 3 && queue.numRequeues('ns/s') === 0);
    await controller.stop();
    const text = await metrics.registry.metrics();
    expect(text).toContain('controller_runtime_reconcile_total{controller="syncs",result="requeue"} 2');
    expect(text).not.toContain('controller_runtime_reconcile_errors_total{controller="syncs"} 1');
    expect(lines.filter((line) => line['level'] === 'error' || line['level'] === 50)).toEqual([]);
  });

  it('stop waits for the reconciles in flight and takes no new keys', async () => {
    const metrics = new RuntimeMetrics({ defaultMetrics: false });
    const { log } = captureLog();
    const gate = deferred();
    const calls: string[] = [];
    let finished = false;
    const controller = new Controller({
      name: 'jobs',
      workers: 1,
      log,
      metrics,
      reconcile: async (key) => {
        calls.push(key);
        await gate.promise;
        finished = true;
      },
    });
    controller.start();
    controller.queue.add('ns/a');
    controller.queue.add('ns/b');
    await until(() => calls.length === 1);
    let stopped = false;
    const stopping = controller.stop().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);
    gate.resolve();
    await stopping;
    expect(finished).toBe(true);
    expect(calls).toEqual(['ns/a']);
  });
});

describe('reconcileLogger', () => {
  it('writes JSON lines carrying namespace, name and a reconcile id, and redacts credentials', () => {
    const { log, lines } = captureLog();
    const child = reconcileLogger(log, 'team-a/orders-to-crm');
    child.info({ password: 'hunter2', headers: { authorization: 'Bearer abc' } }, 'reconciling');
    reconcileLogger(log, 'team-a/orders-to-crm').info('again');
    expect(lines[0]).toMatchObject({
      level: 'info',
      namespace: 'team-a',
      name: 'orders-to-crm',
      msg: 'reconciling',
      password: '[redacted]',
      headers: { authorization: '[redacted]' },
    });
    expect(typeof lines[0]?.['reconcileId']).toBe('string');
    expect(lines[1]?.['reconcileId']).not.toBe(lines[0]?.['reconcileId']);
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });
});
