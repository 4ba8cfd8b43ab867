// End to end: the operator as a process against the real API server and controller-manager; a Sync of a
// Postgres model to an HTTP sink runs on its schedule and on the annotation; the test agent runs the
// Jobs' pods (it stands in for the kubelet, see test/agent/README.md).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent } from '../agent/agent.ts';
import { startOperator, sample, type OperatorProcess } from './operator-process.ts';
import { applyScenario, startSink, startWarehouse, type Sink, type Warehouse } from './scenario.ts';
import { eventually, Kube, loadKubeConfig, waitForCondition } from './support.ts';

let kube: Kube;
let agent: Agent;
let sink: Sink;
let warehouse: Warehouse;
let ns: string;
const operators: OperatorProcess[] = [];

interface RunRecord {
  id: string;
  trigger?: string;
  result?: string;
  startedAt?: string;
  counts?: { queried: number; added: number; changed: number; delivered: number; failed: number };
}

beforeAll(async () => {
  const kubeconfigPath = inject('kubeconfigPath');
  kube = new Kube(loadKubeConfig(kubeconfigPath));
  [warehouse, sink] = await Promise.all([startWarehouse(5), startSink()]);
  ns = await kube.namespace('e2e');
  agent = new Agent({ kubeConfig: kube.kc, namespace: ns, retryMs: 500 });
  await agent.start();
}, 120_000);

afterAll(async () => {
  for (const op of operators) await op.kill();
  await agent?.stop();
  await sink?.close();
  await warehouse?.postgres.stop();
});

function operatorArgs(extra: string[] = []): string[] {
  return [
    '--kubeconfig',
    inject('kubeconfigPath'),
    '--namespaces',
    ns,
    '--metrics-port',
    '0',
    '--diff-store-url',
    `file://${mkdtempSync(join(tmpdir(), 'syncline-e2e-store-'))}`,
    '--pod-start-timeout-seconds',
    '20',
    ...extra,
  ];
}

async function history(name: string): Promise<RunRecord[]> {
  return ((await kube.get('syncs', ns, name))?.status?.['history'] as RunRecord[] | undefined) ?? [];
}

describe('the operator as a process', () => {
  it('runs a Sync on its schedule and on the annotation, with the right counts, and the rows arrive', async () => {
    const operator = startOperator(operatorArgs(['--no-leader-elect']));
    operators.push(operator);
    await operator.port();
    await applyScenario(kube, ns, warehouse, sink, { name: 'customers', schedule: { interval: '1h' } });

    // An interval Sync runs once when created (then every hour).
    const first = await waitForCondition(
      kube,
      'syncs',
      ns,
      'customers',
      'Ready',
      'True',
      'Succeeded',
      120_000,
    );
    expect(first.status!['lastRun']).toMatchObject({
      trigger: 'schedule',
      result: 'Succeeded',
      counts: { queried: 5, added: 5, delivered: 5, failed: 0 },
    });
    expect(new Set(sink.received.map((r) => r['email'])).size).toBe(5);

    // A change in the warehouse, then a manual run: only the change is sent.
    await warehouse.query("UPDATE customers SET email = 'changed@example.com' WHERE id = 2");
    const before = sink.received.length;
    await kube.patch('syncs', ns, 'customers', {
      metadata: { annotations: { 'syncline.io/run-requested-at': new Date().toISOString() } },
    });
    const manual = await eventually(
      'the manual run',
      async () => {
        const runs = await history('customers');
        return runs[0]?.trigger === 'manual' && runs[0].result ? runs[0] : undefined;
      },
      { timeoutMs: 120_000 },
    );
    expect(manual).toMatchObject({ result: 'Succeeded', counts: { queried: 5, changed: 1, delivered: 1 } });
    expect(sink.received.slice(before).map((r) => r['email'])).toEqual(['changed@example.com']);

    const metrics = await operator.metrics();
    expect(sample(metrics, 'syncline_sync_runs_total', `sync="customers"`, 'result="Succeeded"')).toBe(2);
    expect(sample(metrics, 'syncline_sync_rows_total', 'operation="all"', 'outcome="delivered"')).toBe(6);
    expect(sample(metrics, 'syncline_sync_rows_total', 'operation="upsert"', 'outcome="delivered"')).toBe(6);
    expect(
      sample(metrics, 'syncline_sync_last_success_timestamp_seconds', 'sync="customers"'),
    ).toBeGreaterThan(0);
    expect(
      sample(metrics, 'controller_runtime_reconcile_total', 'controller="sync"', 'result="success"'),
    ).toBeGreaterThan(0);
    expect(operator.logs.some((l) => l['namespace'] === ns && typeof l['reconcileId'] === 'string')).toBe(
      true,
    );

    // Graceful shutdown on SIGTERM.
    expect(await operator.stop()).toBe(0);
    expect(operator.logs.some((l) => l['msg'] === 'operator stopped')).toBe(true);
  }, 300_000);

  it('fails over to the other replica within the lease time, without duplicating a run', async () => {
    const lease = [
      '--lease-namespace',
      ns,
      '--lease-name',
      'syncline-e2e',
      '--lease-duration-seconds',
      '6',
      '--renew-deadline-seconds',
      '4',
      '--retry-period-seconds',
      '1',
    ];
    const a = startOperator(operatorArgs([...lease, '--identity', 'op-a']));
    const b = startOperator(operatorArgs([...lease, '--identity', 'op-b']));
    operators.push(a, b);
    await Promise.all([a.port(), b.port()]);
    const holder = async () =>
      (
        await kube.request<{ spec?: { holderIdentity?: string } }>(
          'GET',
          `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/syncline-e2e`,
        )
      ).body.spec?.holderIdentity ?? '';
    const first = await eventually('a leader', async () => (await holder()) || undefined, {
      timeoutMs: 30_000,
    });
    const [leader, follower] = first.startsWith('op-a') ? [a, b] : [b, a];

    await kube.create('syncs', ns, {
      kind: 'Sync',
      metadata: { name: 'frequent' },
      spec: {
        modelRef: { name: 'customers' },
        destinationRef: { name: 'crm' },
        mode: 'upsert',
        schedule: { interval: '10s' },
      },
    });
    await eventually('two runs under the first leader', async () => (await history('frequent')).length >= 2, {
      timeoutMs: 120_000,
    });

    const killedAt = Date.now();
    await leader.kill();
    const next = await eventually(
      'the other replica to lead',
      async () => {
        const h = await holder();
        return h && h !== first ? h : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const takeoverMs = Date.now() - killedAt;
    expect(next.startsWith(first.startsWith('op-a') ? 'op-b' : 'op-a')).toBe(true);
    expect(takeoverMs).toBeLessThanOrEqual(6000 + 2000);
    const countAtTakeover = (await history('frequent')).length;
    await eventually(
      'runs under the new leader',
      async () => (await history('frequent')).length >= countAtTakeover + 2,
      { timeoutMs: 120_000 },
    );

    // No run twice: one Job per schedule slot, and status history has each run once.
    const jobs = await kube.jobs(ns, 'syncline.io/sync=frequent');
    const slots = jobs.map((j) => j.metadata.annotations?.['syncline.io/scheduled-at']);
    expect(new Set(slots).size).toBe(slots.length);
    const runs = await history('frequent');
    expect(new Set(runs.map((r) => r.id)).size).toBe(runs.length);
    const starts = runs.map((r) => Date.parse(r.startedAt ?? '')).sort((x, y) => x - y);
    for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThan(5000);
    expect(follower.logs.some((l) => l['msg'] === 'leading: reconciling')).toBe(true);
    console.log(
      `[failover] lease taken over ${takeoverMs} ms after the leader was killed (lease duration 6000 ms)`,
    );
    expect(await follower.stop()).toBe(0);
  }, 400_000);
});
