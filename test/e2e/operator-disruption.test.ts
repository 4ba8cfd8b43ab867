// Watch disruption: the operator (as a process) keeps working across a restart of the real
// kube-apiserver, without being restarted itself. This file starts its own control plane, because it
// stops the API server, which the shared stack's other users must not see.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../agent/agent.ts';
import { startKube, type KubeStack } from '../stack/kube.ts';
import { startOperator, type OperatorProcess } from './operator-process.ts';
import { applyScenario, startSink, startWarehouse, type Sink, type Warehouse } from './scenario.ts';
import { eventually, Kube, waitForCondition } from './support.ts';

let stack: KubeStack;
let kube: Kube;
let agent: Agent | undefined;
let sink: Sink;
let warehouse: Warehouse;
let operator: OperatorProcess | undefined;

beforeAll(async () => {
  [stack, warehouse, sink] = await Promise.all([
    startKube({ controllerManager: true }),
    startWarehouse(4),
    startSink(),
  ]);
  kube = new Kube(stack.kubeConfig());
}, 600_000);

afterAll(async () => {
  await operator?.kill();
  await agent?.stop();
  await sink?.close();
  await warehouse?.postgres.stop();
  await stack?.stop();
});

describe('the operator across an API server restart', () => {
  it('recovers its watches and acts on changes made while it was cut off', async () => {
    const ns = await kube.namespace('disruption');
    agent = new Agent({ kubeConfig: kube.kc, namespace: ns, retryMs: 500 });
    await agent.start();
    operator = startOperator([
      '--kubeconfig',
      stack.kubeconfigPath,
      '--namespaces',
      ns,
      '--metrics-port',
      '0',
      '--no-leader-elect',
      '--diff-store-url',
      `file://${mkdtempSync(join(tmpdir(), 'syncline-disruption-store-'))}`,
    ]);
    await operator.port();
    await applyScenario(kube, ns, warehouse, sink, { name: 'customers' });
    await kube.patch('syncs', ns, 'customers', {
      metadata: { annotations: { 'syncline.io/run-requested-at': 'before' } },
    });
    await waitForCondition(kube, 'syncs', ns, 'customers', 'Ready', 'True', 'Succeeded', 120_000);

    await stack.stopApiServer();
    await new Promise((r) => setTimeout(r, 3000));
    await stack.startApiServer();
    // A change the operator can only learn about through a watch re-established after the restart.
    await kube.patch('syncs', ns, 'customers', {
      metadata: { annotations: { 'syncline.io/run-requested-at': 'after-restart' } },
    });
    const s = await eventually(
      'the run requested after the restart',
      async () => {
        const obj = await kube.get('syncs', ns, 'customers');
        const last = obj?.status?.['lastRun'] as { result?: string } | undefined;
        return obj?.status?.['handledRunRequest'] === 'after-restart' && last?.result ? obj : undefined;
      },
      { timeoutMs: 120_000 },
    );
    expect(s.status!['lastRun']).toMatchObject({ result: 'Succeeded', trigger: 'manual' });
    expect(operator.exited()).toBe(false);
    // The informers noticed the outage and reopened their watches (or listed again).
    const metrics = await operator.metrics();
    const reopened = metrics
      .split('\n')
      .filter(
        (l) =>
          /^syncline_informer_(watch_restarts|relists)_total\{/.test(l) && !l.includes('reason="initial"'),
      )
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    expect(reopened).toBeGreaterThan(0);
    expect(await operator.stop()).toBe(0);
  }, 400_000);
});
