// The operator's reconcilers against the real API server and controller-manager, with the test agent
// standing in for the kubelet. One Manager (in-process) for the file, one namespace per scenario.
import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
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
import {
  condition,
  eventually,
  Kube,
  loadKubeConfig,
  waitForCondition,
  type SynclineObject,
} from '../e2e/support.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { freePort } from '../stack/process.ts';

let kube: Kube;
let manager: Manager;
let agent: Agent;
let postgres: PostgresServer;
let sink: Server;
let sinkUrl: string;
const received: Record<string, unknown>[] = [];
let dbUrl: URL;
let diffStoreDir: string;
let ns: string;

beforeAll(async () => {
  const kc = loadKubeConfig(inject('kubeconfigPath'));
  kube = new Kube(kc);
  postgres = await startPostgres();
  dbUrl = new URL(await postgres.createDatabase('app'));
  const client = new pg.Client({ connectionString: dbUrl.href });
  await client.connect();
  await client.query('CREATE TABLE customers (id int PRIMARY KEY, email text, plan text)');
  await client.query(
    "INSERT INTO customers VALUES (1, 'a@example.com', 'pro'), (2, 'b@example.com', 'free'), (3, 'c@example.com', 'pro')",
  );
  await client.end();

  sink = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.method === 'POST' && body) received.push(JSON.parse(body) as Record<string, unknown>);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const address = sink.address();
  sinkUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/contacts`;

  diffStoreDir = mkdtempSync(join(tmpdir(), 'syncline-op-store-'));
  ns = await kube.namespace('op-reconcile');
  const runtimeMetrics = new RuntimeMetrics({ defaultMetrics: false });
  manager = new Manager({
    kubeConfig: kc,
    config: defaultConfig({
      namespaces: [ns],
      diffStore: { url: `file://${diffStoreDir}` },
      podStartTimeoutMs: 4000,
      finalizerTimeoutMs: 3000,
      check: { activeDeadlineSeconds: 60, recheckIntervalMs: 600_000, retryIntervalMs: 3000 },
    }),
    log: createLogger({ level: 'warn' }),
    runtimeMetrics,
    metrics: new SynclineMetrics(runtimeMetrics.registry),
    identity: 'reconcile-test',
    secrets: secretResolver({}),
  });
  await manager.start();
  agent = new Agent({ kubeConfig: kc, namespace: ns, retryMs: 500 });
  await agent.start();
  await kube.secret(ns, 'pg', { password: postgres.password, wrong: 'not-the-password' });
  await kube.secret(ns, 'crm', { token: 's3cr3t' });
}, 120_000);

afterAll(async () => {
  await manager?.stop();
  await agent?.stop();
  await postgres?.stop();
  sink?.close();
});

const pgSource = (name: string, password: { name: string; key: string }, port = Number(dbUrl.port)) => ({
  kind: 'Source',
  metadata: { name },
  spec: {
    type: 'postgres',
    postgres: {
      host: '127.0.0.1',
      port,
      database: 'app',
      user: 'postgres',
      password: { secretKeyRef: password },
      tls: { mode: 'disable' },
    },
  },
});

const httpDestination = (name: string, secretKey = 'token') => ({
  kind: 'Destination',
  metadata: { name },
  spec: {
    type: 'http',
    http: {
      url: sinkUrl,
      headers: [{ name: 'Authorization', valueFrom: { secretKeyRef: { name: 'crm', key: secretKey } } }],
    },
  },
});

const model = (name: string, source: string) => ({
  kind: 'Model',
  metadata: { name },
  spec: { sourceRef: { name: source }, query: 'SELECT id, email, plan FROM customers', primaryKey: 'id' },
});

const sync = (name: string, spec: Record<string, unknown>, annotations: Record<string, string> = {}) => ({
  kind: 'Sync',
  metadata: { name, annotations },
  spec: { modelRef: { name: 'customers' }, destinationRef: { name: 'crm' }, mode: 'upsert', ...spec },
});

async function warnings(name: string): Promise<string[]> {
  return (await kube.events(ns)).filter((e) => e.involvedObject.name === name).map((e) => e.reason);
}

describe('connection checks', () => {
  it('sets Ready=True on a Source whose check passes, with observedGeneration', async () => {
    await kube.create('sources', ns, pgSource('warehouse', { name: 'pg', key: 'password' }));
    const source = await waitForCondition(kube, 'sources', ns, 'warehouse', 'Ready', 'True');
    expect(condition(source, 'Ready')).toMatchObject({ observedGeneration: 1 });
    expect(source.status?.observedGeneration).toBe(1);
    expect(source.status?.['checkedHash']).toBeTruthy();
    expect(condition(source, 'Reconciling')).toBeUndefined();
  });

  it('gives a wrong password its own reason, and an Event', async () => {
    await kube.create('sources', ns, pgSource('wrong-password', { name: 'pg', key: 'wrong' }));
    const source = await waitForCondition(kube, 'sources', ns, 'wrong-password', 'Ready', 'False');
    const reason = condition(source, 'Ready')!.reason;
    expect(reason).toMatch(/^[A-Z][A-Za-z]+$/);
    expect(['SecretNotFound', 'Checking', 'SourceUnreachable']).not.toContain(reason);
    await eventually('a Warning Event', async () => (await warnings('wrong-password')).includes(reason));
  });

  it('gives an unreachable host its own reason', async () => {
    await kube.create(
      'sources',
      ns,
      pgSource('unreachable', { name: 'pg', key: 'password' }, await freePort()),
    );
    const source = await waitForCondition(kube, 'sources', ns, 'unreachable', 'Ready', 'False');
    const wrong = condition(await kube.get('sources', ns, 'wrong-password'), 'Ready')!.reason;
    expect(condition(source, 'Ready')!.reason).not.toBe(wrong);
    expect(condition(source, 'Ready')!.reason).not.toBe('SecretNotFound');
  });

  it('reports a missing Secret key as SecretNotFound, from the waiting pod', async () => {
    await kube.create('sources', ns, pgSource('no-secret', { name: 'pg', key: 'missing-key' }));
    const source = await waitForCondition(
      kube,
      'sources',
      ns,
      'no-secret',
      'Ready',
      'False',
      'SecretNotFound',
    );
    expect(condition(source, 'Ready')!.message).toContain('missing-key');
  });

  it('checks a changed spec again', async () => {
    await kube.patch('sources', ns, 'no-secret', {
      spec: { postgres: { password: { secretKeyRef: { name: 'pg', key: 'password' } } } },
    });
    const source = await waitForCondition(kube, 'sources', ns, 'no-secret', 'Ready', 'True');
    expect(condition(source, 'Ready')!.observedGeneration).toBe(2);
  });

  it('checks an http Destination', async () => {
    await kube.create('destinations', ns, httpDestination('crm'));
    await waitForCondition(kube, 'destinations', ns, 'crm', 'Ready', 'True');
  });
});

describe('Models', () => {
  it('stalls on a missing Source', async () => {
    await kube.create('models', ns, model('orphan', 'nowhere'));
    const m = await waitForCondition(kube, 'models', ns, 'orphan', 'Stalled', 'True', 'SourceNotFound');
    expect(condition(m, 'Ready')).toMatchObject({ status: 'False', reason: 'SourceNotFound' });
    await eventually('an Event', async () => (await warnings('orphan')).includes('SourceNotFound'));
  });

  it('waits for a Source that is not Ready', async () => {
    await kube.create('models', ns, model('waiting', 'wrong-password'));
    const m = await waitForCondition(kube, 'models', ns, 'waiting', 'Ready', 'False', 'SourceNotReady');
    expect(condition(m, 'Stalled')).toBeUndefined();
  });

  it('is Ready when its Source is', async () => {
    await kube.create('models', ns, model('customers', 'warehouse'));
    await waitForCondition(kube, 'models', ns, 'customers', 'Ready', 'True', 'SourceReady');
  });
});

describe('Syncs', () => {
  it.each([
    ['ModelNotFound', { modelRef: { name: 'nope' } }],
    ['DestinationNotFound', { destinationRef: { name: 'nope' } }],
    ['DependencyNotFound', { dependsOn: [{ name: 'nope' }] }],
    ['InvalidTimeZone', { schedule: { cron: '0 * * * *', timeZone: 'Mars/Olympus' } }],
  ])('stalls with %s, an Event, and no Job', async (reason, spec) => {
    const name = `bad-${reason.toLowerCase()}`;
    await kube.create('syncs', ns, sync(name, spec));
    const s = await waitForCondition(kube, 'syncs', ns, name, 'Stalled', 'True', reason);
    expect(condition(s, 'Ready')).toMatchObject({ status: 'False', reason });
    expect(s.metadata.finalizers ?? []).not.toContain('syncline.io/snapshots');
    await eventually('an Event', async () => (await warnings(name)).includes(reason));
    expect(await kube.jobs(ns, `syncline.io/sync=${name}`)).toHaveLength(0);
  });

  it('stalls when the destination type needs a target (a capability of the connector)', async () => {
    await kube.create('destinations', ns, {
      kind: 'Destination',
      metadata: { name: 'pg-dest' },
      spec: {
        type: 'postgres',
        postgres: {
          host: '127.0.0.1',
          port: Number(dbUrl.port),
          database: 'app',
          user: 'postgres',
          password: { secretKeyRef: { name: 'pg', key: 'password' } },
          tls: { mode: 'disable' },
        },
      },
    });
    await kube.create('syncs', ns, sync('no-target', { destinationRef: { name: 'pg-dest' } }));
    await waitForCondition(kube, 'syncs', ns, 'no-target', 'Stalled', 'True', 'MissingTarget');
  });

  it('runs on the annotation: Job by the agent, status with counts, rows at the sink', async () => {
    await kube.create(
      'syncs',
      ns,
      sync('manual', {}, { 'syncline.io/run-requested-at': '2025-01-01T00:00:00Z' }),
    );
    const s = await waitForCondition(kube, 'syncs', ns, 'manual', 'Ready', 'True', 'Succeeded', 90_000);
    const status = s.status as {
      lastRun: { result: string; counts: { queried: number; delivered: number }; trigger: string };
      history: unknown[];
      handledRunRequest: string;
      schedule: string;
    };
    expect(status.lastRun).toMatchObject({
      result: 'Succeeded',
      trigger: 'manual',
      counts: { queried: 3, delivered: 3 },
    });
    expect(status.history).toHaveLength(1);
    expect(status.handledRunRequest).toBe('2025-01-01T00:00:00Z');
    expect(status.schedule).toBe('manual');
    expect(condition(s, 'Running')).toMatchObject({ status: 'False', reason: 'Idle' });
    expect(received.map((r) => r['email']).sort()).toEqual(
      expect.arrayContaining(['a@example.com', 'b@example.com', 'c@example.com']),
    );
    const jobs = await kube.jobs(ns, 'syncline.io/sync=manual');
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.metadata.ownerReferences?.[0]).toMatchObject({ kind: 'Sync', uid: s.metadata.uid });
    expect(jobs[0]!.spec.template.spec.automountServiceAccountToken).toBe(false);
    // The model's columns are now known, from the run.
    const m = await eventually('model columns', async () => {
      const obj = await kube.get('models', ns, 'customers');
      return (obj?.status?.['columns'] as unknown[] | undefined)?.length ? obj : undefined;
    });
    expect((m.status!['columns'] as { name: string }[]).map((c) => c.name)).toEqual(['id', 'email', 'plan']);
    await eventually('a RunSucceeded Event', async () => (await warnings('manual')).includes('RunSucceeded'));
  });

  it('does not run the same request twice, and writes no status when nothing changed', async () => {
    const before = await kube.get('syncs', ns, 'manual');
    await new Promise((r) => setTimeout(r, 1500));
    const after = await kube.get<SynclineObject & { metadata: { resourceVersion: string } }>(
      'syncs',
      ns,
      'manual',
    );
    expect(after?.metadata.resourceVersion).toBe(
      (before as unknown as { metadata: { resourceVersion: string } }).metadata.resourceVersion,
    );
    expect(await kube.jobs(ns, 'syncline.io/sync=manual')).toHaveLength(1);
  });

  it('stalls on a mapping of a column the model does not return', async () => {
    await kube.create('syncs', ns, sync('unknown-column', { mappings: [{ to: 'email', from: 'e_mail' }] }));
    const s = await waitForCondition(kube, 'syncs', ns, 'unknown-column', 'Stalled', 'True', 'UnknownColumn');
    expect(condition(s, 'Ready')!.message).toContain('e_mail');
  });

  it('runs a full resync on its annotation', async () => {
    await kube.patch('syncs', ns, 'manual', {
      metadata: { annotations: { 'syncline.io/resync-requested-at': 'r1' } },
    });
    const s = await eventually(
      'the resync run',
      async () => {
        const obj = await kube.get('syncs', ns, 'manual');
        const last = obj?.status?.['lastRun'] as
          { trigger?: string; result?: string; fullResync?: boolean } | undefined;
        return last?.trigger === 'resync' && last.result ? obj : undefined;
      },
      { timeoutMs: 90_000 },
    );
    expect(s.status!['lastRun']).toMatchObject({ result: 'Succeeded', fullResync: true });
    expect(s.status!['handledResyncRequest']).toBe('r1');
  });

  it('runs after its dependency succeeded', async () => {
    await kube.create('syncs', ns, sync('dependent', { dependsOn: [{ name: 'manual' }] }));
    const s = await waitForCondition(kube, 'syncs', ns, 'dependent', 'Ready', 'True', 'Succeeded', 90_000);
    expect(s.status!['lastRun']).toMatchObject({ trigger: 'dependency' });
    expect(s.status!['schedule']).toBe('after dependencies');
  });

  it('runs on its interval and says when it runs next', async () => {
    await kube.create('syncs', ns, sync('scheduled', { schedule: { interval: '10s' } }));
    const s = await waitForCondition(kube, 'syncs', ns, 'scheduled', 'Ready', 'True', 'Succeeded', 90_000);
    expect(s.status!['schedule']).toBe('every 10s');
    expect(Date.parse(s.status!['nextRunAt'] as string)).toBeGreaterThan(
      Date.parse((s.status!['lastRun'] as { startedAt: string }).startedAt),
    );
    await eventually(
      'a second scheduled run',
      async () =>
        ((await kube.get('syncs', ns, 'scheduled'))?.status?.['history'] as unknown[] | undefined)?.length ===
        2,
      { timeoutMs: 60_000 },
    );
    await kube.patch('syncs', ns, 'scheduled', { spec: { paused: true } });
    const paused = await waitForCondition(kube, 'syncs', ns, 'scheduled', 'Ready', 'True', 'Paused');
    expect(paused.status!['schedule']).toBe('every 10s (paused)');
    expect(paused.status!['nextRunAt']).toBeUndefined();
  });

  it('reports a Secret key missing at run time as the run failure, not a hang', async () => {
    await kube.create('destinations', ns, httpDestination('crm-rotating', 'rotating'));
    await kube.must(
      'PATCH',
      `/api/v1/namespaces/${ns}/secrets/crm`,
      { stringData: { rotating: 'x' } },
      'application/merge-patch+json',
    );
    await waitForCondition(kube, 'destinations', ns, 'crm-rotating', 'Ready', 'True');
    await kube.must(
      'PATCH',
      `/api/v1/namespaces/${ns}/secrets/crm`,
      { data: { rotating: null } },
      'application/merge-patch+json',
    );
    await kube.create(
      'syncs',
      ns,
      sync(
        'lost-secret',
        { destinationRef: { name: 'crm-rotating' } },
        { 'syncline.io/run-requested-at': 'go' },
      ),
    );
    const s = await waitForCondition(
      kube,
      'syncs',
      ns,
      'lost-secret',
      'Ready',
      'False',
      'SecretNotFound',
      60_000,
    );
    expect(s.status!['lastRun']).toMatchObject({ result: 'Failed', reason: 'SecretNotFound' });
    expect((s.status!['lastRun'] as { message: string }).message).toContain('rotating');
  });

  it('deletes the diff-store folder with snapshotPolicy delete', async () => {
    await kube.create(
      'syncs',
      ns,
      sync('to-delete', { snapshotPolicy: 'delete' }, { 'syncline.io/run-requested-at': 'go' }),
    );
    const s = await waitForCondition(kube, 'syncs', ns, 'to-delete', 'Ready', 'True', 'Succeeded', 90_000);
    expect(s.metadata.finalizers).toContain('syncline.io/snapshots');
    const folder = join(diffStoreDir, ns, 'to-delete');
    expect(existsSync(folder)).toBe(true);
    await kube.delete('syncs', ns, 'to-delete');
    await eventually('the Sync to go', async () => (await kube.get('syncs', ns, 'to-delete')) === undefined);
    await eventually(
      'the folder to go',
      async () => !existsSync(folder) || (await import('node:fs')).readdirSync(folder).length === 0,
    );
  });

  it('never blocks deletion forever on a store it cannot reach', async () => {
    // A file:// store whose folder cannot be deleted: a read-only parent is not enough as root, so use a
    // path under a regular file, where every delete fails (inside the namespace's prefix, which a Sync's
    // own diff store must stay under).
    mkdirSync(join(diffStoreDir, ns), { recursive: true });
    const blocker = join(diffStoreDir, ns, 'blocker');
    writeFileSync(blocker, 'not a folder');
    mkdirSync(join(diffStoreDir, 'unused'), { recursive: true });
    await kube.create(
      'syncs',
      ns,
      sync('stuck-delete', {
        snapshotPolicy: 'delete',
        diffStore: { url: `file://${blocker}/store` },
        modelRef: { name: 'nope' },
      }),
    );
    await waitForCondition(kube, 'syncs', ns, 'stuck-delete', 'Stalled', 'True', 'ModelNotFound');
    await kube.delete('syncs', ns, 'stuck-delete');
    await eventually(
      'the Sync to go',
      async () => (await kube.get('syncs', ns, 'stuck-delete')) === undefined,
      { timeoutMs: 30_000 },
    );
    const reasons = await warnings('stuck-delete');
    expect(reasons.includes('SnapshotCleanupAbandoned') || reasons.includes('SnapshotsDeleted')).toBe(true);
  });
});

describe('segment Models (docs/audiences.md)', () => {
  const accounts = {
    kind: 'Model',
    metadata: { name: 'accounts' },
    spec: {
      sourceRef: { name: 'warehouse' },
      query: 'SELECT id, email, plan FROM customers',
      primaryKey: 'id',
      filterable: [{ name: 'plan', type: 'string' }],
    },
  };
  const proAccounts = {
    kind: 'Model',
    metadata: { name: 'pro-accounts' },
    spec: {
      sourceRef: { name: 'warehouse' },
      segment: { parent: { name: 'accounts' }, where: { column: 'plan', equals: 'pro' } },
    },
  };

  it('waits for its parent, shows its compiled SQL, and stalls on a column the parent does not list', async () => {
    await kube.create('models', ns, proAccounts);
    await waitForCondition(kube, 'models', ns, 'pro-accounts', 'Stalled', 'True', 'SegmentNotFound');
    await kube.create('models', ns, accounts);
    const ready = await waitForCondition(kube, 'models', ns, 'pro-accounts', 'Ready', 'True', 'SourceReady');
    expect(ready.status?.['compiledSql']).toBe(
      `select "p".* from (SELECT id, email, plan FROM customers) as "p" where "p"."plan" = 'pro'`,
    );
    await kube.patch('models', ns, 'pro-accounts', { spec: { segment: { where: { column: 'plann' } } } });
    const stalled = await waitForCondition(
      kube,
      'models',
      ns,
      'pro-accounts',
      'Stalled',
      'True',
      'UnknownSegmentColumn',
    );
    expect(condition(stalled, 'Ready')?.message).toContain('did you mean "plan"?');
    expect(stalled.status?.['compiledSql']).toBeUndefined();
    await kube.patch('models', ns, 'pro-accounts', { spec: { segment: { where: { column: 'plan' } } } });
    await waitForCondition(kube, 'models', ns, 'pro-accounts', 'Ready', 'True', 'SourceReady');
  });

  it('a Sync of the segment sends its members, and its size preview follows the run', async () => {
    const before = received.length;
    await kube.create('syncs', ns, {
      ...sync(
        'pro-to-crm',
        { modelRef: { name: 'pro-accounts' } },
        { 'syncline.io/run-requested-at': '2025-02-01T00:00:00Z' },
      ),
    });
    const s = await waitForCondition(kube, 'syncs', ns, 'pro-to-crm', 'Ready', 'True', 'Succeeded', 90_000);
    expect((s.status as { lastRun: { counts: { queried: number } } }).lastRun.counts.queried).toBe(2);
    expect(
      received
        .slice(before)
        .map((r) => r['email'])
        .sort(),
    ).toEqual(['a@example.com', 'c@example.com']);
    const m = await eventually('the size preview', async () => {
      const obj = await kube.get('models', ns, 'pro-accounts');
      return obj?.status?.['segment'] ? obj : undefined;
    });
    expect(m.status?.['segment']).toMatchObject({ members: 2 });
  });
});
