import { afterAll, describe, expect, it } from 'vitest';
import { RuntimeMetrics } from './metrics.ts';
import { startHealthServer, type HealthServer } from './server.ts';

describe('startHealthServer', () => {
  const servers: HealthServer[] = [];
  afterAll(async () => {
    for (const server of servers) await server.close();
  });

  it('serves /healthz, /readyz and /metrics, following the checks as they change', async () => {
    const metrics = new RuntimeMetrics();
    metrics.reconcileTotal.inc({ controller: 'syncs', result: 'success' });
    let ready = false;
    let healthy = true;
    const server = await startHealthServer({
      port: 0,
      host: '127.0.0.1',
      registry: metrics.registry,
      isReady: () => ready,
      isHealthy: () => healthy,
    });
    servers.push(server);
    const base = `http://127.0.0.1:${server.port}`;

    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    ready = true;
    const readyz = await fetch(`${base}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await readyz.text()).toBe('ok\n');
    healthy = false;
    expect((await fetch(`${base}/healthz`)).status).toBe(503);

    const scrape = await fetch(`${base}/metrics`);
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get('content-type')).toContain('text/plain');
    const text = await scrape.text();
    expect(text).toContain('controller_runtime_reconcile_total{controller="syncs",result="success"} 1');
    expect(text).toContain('process_resident_memory_bytes');
    expect(text).toContain('nodejs_eventloop_lag_seconds');

    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/healthz`, { method: 'POST' })).status).toBe(405);
  });

  it('answers 500 when a check throws, without taking the server down', async () => {
    const metrics = new RuntimeMetrics({ defaultMetrics: false });
    const server = await startHealthServer({
      port: 0,
      host: '127.0.0.1',
      registry: metrics.registry,
      isReady: () => {
        throw new Error('cache not built');
      },
      isHealthy: () => true,
    });
    servers.push(server);
    const res = await fetch(`http://127.0.0.1:${server.port}/readyz`);
    expect(res.status).toBe(500);
    expect(await res.text()).toContain('cache not built');
    expect((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status).toBe(200);
  });
});
