// rateLimit.maxConcurrentRuns against the real API server and controller-manager (the test agent stands in
// for the kubelet and runs the runner): two Syncs to one Destination bounded to one run at a time never
// run together; the second waits (Reconciling, DestinationBusy) and starts when the first ends.
import { createServer, type Server } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { defaultConfig } from '../../operator/config.ts';
import { Manager } from '../../operator/manager.ts';
import { SynclineMetrics } from '../../operator/metrics.ts';
import { createLogger } from '../../core/logger.ts';
import { RuntimeMetrics } from '../../operator/runtime/metrics.ts';
import { secretResolver } from '../../core/secrets.ts';
import { Agent } from '../agent/agent.ts';
import { condition, eventually, Kube, loadKubeConfig, waitForCondition } from '../e2e/support.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';

let kube: Kube;
let manager: Manager;
let agent: Agent;
let postgres: PostgresServer;
let sink: Server;
let sinkUrl: string;
let ns: string;
let pgPort: number;
/** Requests the sink is answering now, and the most at once. */
let inFlight = 0;
let maxInFlight = 0;

beforeAll(async () => {
  const kc = loadKubeConfig(inject('kubeconfigPath'));
  kube = new Kube(kc);
  postgres = await startPostgres();
  const dbUrl = new URL(await postgres.createDatabase('app'));
  pgPort = Number(dbUrl.port);
  const client = new pg.Client({ connectionString: dbUrl.href });
  await client.connect();
  await client.query('CREATE TABLE customers (id int PRIMARY KEY, email text)');
  await client.query("INSERT INTO customers VALUES (1, 'a@example.com'), (2, 'b@example.com')");
  await client.end();

  // A slow destination: each request takes 1.5 s, so a run lasts long enough to overlap another.
  sink = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      }, 1500);
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const address = sink.address();
  sinkUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/contacts`;

  ns = await kube.namespace('op-dest-runs');
  const runtimeMetrics = new RuntimeMetrics({ defaultMetrics: false });
  manager = new Manager({
    kubeConfig: kc,
    config: defaultConfig({
      namespaces: [ns],
      diffStore: { url: `file://${mkdtempSync(join(tmpdir(), 'syncline-dest-runs-'))}` },
      check: { activeDeadlineSeconds: 60, recheckIntervalMs: 600_000, retryIntervalMs: 3000 },
    }),
    log: createLogger({ level: 'warn' }),
    runtimeMetrics,
    metrics: new SynclineMetrics(runtimeMetrics.registry),
    identity: 'destination-runs-test',
    secrets: secretResolver({}),
  });
  await manager.start();
  agent = new Agent({ kubeConfig: kc, namespace: ns, retryMs: 500 });
  await agent.start();
  await kube.secret(ns, 'pg', { password: postgres.password });
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  await agent?.stop();
  await postgres?.stop();
  sink?.close();
});

describe('rateLimit.maxConcurrentRuns', () => {
  it('runs the Syncs of one Destination one at a time, the second waiting as DestinationBusy', async () => {
    await kube.create('sources', ns, {
      kind: 'Source',
      metadata: { name: 'warehouse' },
      spec: {
        type: 'postgres',
        postgres: {
          host: '127.0.0.1',
          port: pgPort,
          database: 'app',
          user: 'postgres',
          password: { secretKeyRef: { name: 'pg', key: 'password' } },
          tls: { mode: 'disable' },
        },
      },
    });
    await kube.create('models', ns, {
      kind: 'Model',
      metadata: { name: 'customers' },
      spec: { sourceRef: { name: 'warehouse' }, query: 'SELECT id, email FROM customers', primaryKey: 'id' },
    });
    await kube.create('destinations', ns, {
      kind: 'Destination',
      metadata: { name: 'crm' },
      spec: {
        type: 'http',
        http: { url: sinkUrl, batchSize: 1 },
        rateLimit: { concurrency: 1, maxConcurrentRuns: 1 },
      },
    });
    await waitForCondition(kube, 'destinations', ns, 'crm', 'Ready', 'True', undefined, 90_000);
    await waitForCondition(kube, 'models', ns, 'customers', 'Ready', 'True', undefined, 90_000);

    const sync = (name: string) => ({
      kind: 'Sync',
      metadata: { name, annotations: { 'syncline.io/run-requested-at': 'now' } },
      spec: { modelRef: { name: 'customers' }, destinationRef: { name: 'crm' }, mode: 'upsert' },
    });
    // Both requested at once: one runs, the other waits for it.
    await Promise.all([kube.create('syncs', ns, sync('first')), kube.create('syncs', ns, sync('second'))]);
    const waiting = await eventually(
      'one Sync waiting as DestinationBusy',
      async () => {
        for (const name of ['first', 'second']) {
          const reconciling = condition(await kube.get('syncs', ns, name), 'Reconciling');
          if (reconciling?.reason === 'DestinationBusy') return { name, message: reconciling.message };
        }
        return undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const other = waiting.name === 'first' ? 'second' : 'first';
    expect(waiting.message).toContain(`(Sync ${other}) of Destination "crm"`);

    for (const name of ['first', 'second']) {
      await eventually(
        `${name} succeeded`,
        async () => (await kube.get('syncs', ns, name))?.status?.['lastRun'],
        { timeoutMs: 120_000 },
      ).then((lastRun) => expect(lastRun).toMatchObject({ result: 'Succeeded' }));
    }
    // Never two runs at the destination at once (one request at a time per run: two runs would make 2).
    expect(maxInFlight).toBe(1);
    expect(await kube.jobs(ns, 'syncline.io/component=run')).toHaveLength(2);
    const reconciling = condition(await kube.get('syncs', ns, waiting.name), 'Reconciling');
    expect(reconciling?.reason).not.toBe('DestinationBusy');
  }, 240_000);
});
