// Watch disruption: the informer survives a restart of the real kube-apiserver without a process restart,
// and learns about changes made while its watch was down. This file starts its own control plane (etcd +
// kube-apiserver), because it stops the API server, which the shared stack's other users must not see.
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Informer } from '../../operator/runtime/informer.ts';
import { RuntimeMetrics } from '../../operator/runtime/metrics.ts';
import { startKube, type KubeStack } from '../stack/kube.ts';
import { startApiProxy, type ApiProxy } from './runtime-proxy.ts';
import {
  createNamespace,
  deleteConfigMap,
  eventually,
  putConfigMap,
  recordEvents,
  testLogger,
  type ConfigMap,
} from './runtime-support.ts';

let stack: KubeStack;
let kc: KubeConfig;
let proxy: ApiProxy;
let informer: Informer<ConfigMap> | undefined;

beforeAll(async () => {
  stack = await startKube({ controllerManager: false, installCrds: false });
  kc = stack.kubeConfig();
  proxy = await startApiProxy(stack.kubeconfigPath);
});

afterAll(async () => {
  informer?.stop();
  await proxy?.close();
  await stack?.stop();
});

async function counter(metrics: RuntimeMetrics, name: string): Promise<Record<string, number>> {
  const metric = (await metrics.registry.getSingleMetric(name)?.get()) as
    { values: { labels: Record<string, string | number>; value: number }[] } | undefined;
  return Object.fromEntries((metric?.values ?? []).map((v) => [String(v.labels['reason']), v.value]));
}

describe('Informer across an API server restart', () => {
  it('recovers without a restart and sees what changed while it was cut off', async () => {
    const namespace = await createNamespace(kc, 'runtime-disruption');
    for (const name of ['a', 'b', 'c']) await putConfigMap(kc, namespace, name, { v: '1' });
    const metrics = new RuntimeMetrics({ defaultMetrics: false });
    // The informer reaches the API server through the proxy, which only acts as a gate here: it keeps the
    // informer out after the restart until the test has made its changes.
    informer = new Informer<ConfigMap>({
      kubeConfig: proxy.kubeConfig(),
      group: '',
      version: 'v1',
      plural: 'configmaps',
      namespace,
      log: testLogger(),
      metrics,
      initialBackoffMs: 200,
      maxBackoffMs: 1000,
    });
    const events = recordEvents(informer);
    await informer.start();
    expect(events.sort()).toEqual(['add a', 'add b', 'add c']);
    events.length = 0;
    await eventually(() => expect(proxy.watchRequests()).toBeGreaterThanOrEqual(1));

    await stack.stopApiServer();
    await eventually(async () =>
      expect(
        (await counter(metrics, 'syncline_informer_watch_restarts_total'))['error'],
      ).toBeGreaterThanOrEqual(1),
    );
    proxy.setRefusing(true);
    await stack.startApiServer();

    await putConfigMap(kc, namespace, 'a', { v: '2' });
    await deleteConfigMap(kc, namespace, 'b');
    await putConfigMap(kc, namespace, 'd', { v: '1' });
    expect(events).toEqual([]);
    proxy.setRefusing(false);

    await eventually(() => expect([...events].sort()).toEqual(['add d', 'delete b', 'update a']));
    expect(informer.get(namespace, 'a')?.data).toEqual({ v: '2' });
    expect(informer.get(namespace, 'b')).toBeUndefined();
    expect(
      informer
        .list()
        .map((cm) => cm.metadata.name)
        .sort(),
    ).toEqual(['a', 'c', 'd']);

    // The restarted API server's watch cache starts after the informer's resourceVersion: it answers 410
    // and the informer lists again.
    const relists = await counter(metrics, 'syncline_informer_relists_total');
    expect(relists['initial']).toBe(1);
    expect((relists['expired'] ?? 0) + (relists['error'] ?? 0)).toBeGreaterThanOrEqual(1);

    // The watch works again afterwards.
    await putConfigMap(kc, namespace, 'c', { v: '2' });
    await eventually(() => expect(events.at(-1)).toBe('update c'));
  });
});
