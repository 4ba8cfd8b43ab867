// The runtime's informer against the real kube-apiserver of the shared test stack.
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { Informer } from '../../operator/runtime/informer.ts';
import { kubeRequest } from '../../operator/runtime/kubeapi.ts';
import { RuntimeMetrics } from '../../operator/runtime/metrics.ts';
import { startApiProxy, type ApiProxy } from './runtime-proxy.ts';
import {
  createNamespace,
  deleteConfigMap,
  deleteNamespace,
  eventually,
  putConfigMap,
  recordEvents,
  testLogger,
  type ConfigMap,
} from './runtime-support.ts';

const kubeconfigPath = inject('kubeconfigPath');
const kc = new KubeConfig();
kc.loadFromFile(kubeconfigPath);
const log = testLogger();

let namespace: string;
let proxy: ApiProxy;
const informers: Informer<ConfigMap>[] = [];

function configMapInformer(options: Partial<ConstructorParameters<typeof Informer<ConfigMap>>[0]> = {}): {
  informer: Informer<ConfigMap>;
  metrics: RuntimeMetrics;
} {
  const metrics = new RuntimeMetrics({ defaultMetrics: false });
  const informer = new Informer<ConfigMap>({
    kubeConfig: kc,
    group: '',
    version: 'v1',
    plural: 'configmaps',
    namespace,
    log,
    metrics,
    initialBackoffMs: 100,
    maxBackoffMs: 1000,
    ...options,
  });
  informers.push(informer);
  return { informer, metrics };
}

async function metricValue(
  metrics: RuntimeMetrics,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const metric = (await metrics.registry.getSingleMetric(name)?.get()) as
    { values: { labels: Record<string, string | number>; value: number }[] } | undefined;
  const match = metric?.values.find((v) =>
    Object.entries(labels).every(([k, value]) => v.labels[k] === value),
  );
  return match?.value ?? 0;
}

beforeAll(async () => {
  namespace = await createNamespace(kc, 'runtime-informer');
  proxy = await startApiProxy(kubeconfigPath);
});

afterEach(async () => {
  for (const informer of informers.splice(0)) {
    informer.stop();
    await informer.whenStopped();
  }
});

afterAll(async () => {
  await proxy?.close();
  if (namespace) await deleteNamespace(kc, namespace);
});

describe('Informer against the real API server', () => {
  it('lists before start resolves, then follows adds, updates and deletes, by label selector', async () => {
    await putConfigMap(kc, namespace, 'one', { v: '1' });
    await putConfigMap(kc, namespace, 'other-app', { v: '1' }, { app: 'someone-else' });
    const { informer } = configMapInformer({ labelSelector: 'app=runtime-test' });
    const events = recordEvents(informer);
    expect(informer.hasSynced()).toBe(false);
    await informer.start();
    expect(informer.hasSynced()).toBe(true);
    expect(events).toEqual(['add one']);
    expect(informer.get(namespace, 'one')).toMatchObject({
      kind: 'ConfigMap',
      apiVersion: 'v1',
      data: { v: '1' },
    });
    expect(informer.get(namespace, 'other-app')).toBeUndefined();

    await putConfigMap(kc, namespace, 'two', { v: '1' });
    await putConfigMap(kc, namespace, 'one', { v: '2' });
    await putConfigMap(kc, namespace, 'other-app', { v: '2' }, { app: 'someone-else' });
    await deleteConfigMap(kc, namespace, 'two');
    await eventually(() => expect(events).toEqual(['add one', 'add two', 'update one', 'delete two']));
    expect(informer.get(namespace, 'one')?.data).toEqual({ v: '2' });
    expect(informer.list(namespace).map((cm) => cm.metadata.name)).toEqual(['one']);
    expect(informer.list('elsewhere')).toEqual([]);

    // A handler registered after the sync still hears about every cached object.
    const late: string[] = [];
    informer.onAdd((cm) => late.push(cm.metadata.name));
    expect(late).toEqual(['one']);
    await deleteConfigMap(kc, namespace, 'one');
    await deleteConfigMap(kc, namespace, 'other-app');
    await eventually(() => expect(informer.list()).toEqual([]));
  });

  it('re-emits an update for every cached object on each resync period', async () => {
    await putConfigMap(kc, namespace, 'resync-a', { v: '1' }, { app: 'resync' });
    await putConfigMap(kc, namespace, 'resync-b', { v: '1' }, { app: 'resync' });
    const { informer } = configMapInformer({ labelSelector: 'app=resync', resyncPeriodMs: 200 });
    const updates: string[] = [];
    informer.onUpdate((oldObj, obj) => {
      expect(oldObj).toBe(obj);
      updates.push(obj.metadata.name);
    });
    await informer.start();
    await eventually(() => {
      expect(updates.filter((n) => n === 'resync-a').length).toBeGreaterThanOrEqual(2);
      expect(updates.filter((n) => n === 'resync-b').length).toBeGreaterThanOrEqual(2);
    });
  });

  it('keeps delivering events when a handler throws', async () => {
    const { informer } = configMapInformer({ labelSelector: 'app=throwing' });
    const seen: string[] = [];
    informer.onAdd(() => {
      throw new Error('handler bug');
    });
    informer.onAdd((cm) => seen.push(cm.metadata.name));
    await informer.start();
    await putConfigMap(kc, namespace, 'throw-1', {}, { app: 'throwing' });
    await putConfigMap(kc, namespace, 'throw-2', {}, { app: 'throwing' });
    await eventually(() => expect(seen).toEqual(['throw-1', 'throw-2']));
  });

  it('lists again after a watch answers 410 Gone, emitting what changed meanwhile', async () => {
    await putConfigMap(kc, namespace, 'gone-kept', { v: '1' }, { app: 'gone' });
    await putConfigMap(kc, namespace, 'gone-changed', { v: '1' }, { app: 'gone' });
    await putConfigMap(kc, namespace, 'gone-deleted', { v: '1' }, { app: 'gone' });
    const { informer, metrics } = configMapInformer({
      kubeConfig: proxy.kubeConfig(),
      labelSelector: 'app=gone',
    });
    const events = recordEvents(informer);
    await informer.start();
    await eventually(() => expect(proxy.freezeOpenWatches()).toBe(1));
    // The informer's watch now hears nothing; change things it must learn about from the relist.
    proxy.failNextWatchWithGone();
    await putConfigMap(kc, namespace, 'gone-changed', { v: '2' }, { app: 'gone' });
    await putConfigMap(kc, namespace, 'gone-added', { v: '1' }, { app: 'gone' });
    await deleteConfigMap(kc, namespace, 'gone-deleted');
    expect(events.slice(3)).toEqual([]);
    const watchesBefore = proxy.watchRequests();
    // Cut the frozen stream: the informer reopens its watch, gets 410, lists again.
    proxy.setRefusing(true);
    proxy.setRefusing(false);
    await eventually(() =>
      expect(events.slice(3).sort()).toEqual([
        'add gone-added',
        'delete gone-deleted',
        'update gone-changed',
      ]),
    );
    expect(proxy.watchRequests()).toBeGreaterThan(watchesBefore);
    expect(await metricValue(metrics, 'syncline_informer_relists_total', { reason: 'expired' })).toBe(1);
    expect(await metricValue(metrics, 'syncline_informer_watch_restarts_total', { reason: 'expired' })).toBe(
      1,
    );
    expect(informer.get(namespace, 'gone-changed')?.data).toEqual({ v: '2' });
    expect(informer.get(namespace, 'gone-deleted')).toBeUndefined();
    expect(informer.get(namespace, 'gone-kept')).toBeDefined();
    // And it keeps watching afterwards.
    await putConfigMap(kc, namespace, 'gone-kept', { v: '2' }, { app: 'gone' });
    await eventually(() => expect(events.at(-1)).toBe('update gone-kept'));
  });

  it('reopens a watch that went silent and catches up on what it missed', async () => {
    const { informer, metrics } = configMapInformer({
      kubeConfig: proxy.kubeConfig(),
      labelSelector: 'app=silent',
      silentWatchTimeoutMs: 1500,
    });
    const events = recordEvents(informer);
    await informer.start();
    await eventually(() => expect(proxy.freezeOpenWatches()).toBeGreaterThanOrEqual(1));
    await putConfigMap(kc, namespace, 'silent-1', { v: '1' }, { app: 'silent' });
    // Nothing reaches the informer through the frozen stream; only reopening the watch brings the add.
    await eventually(() => expect(events).toEqual(['add silent-1']));
    expect(
      await metricValue(metrics, 'syncline_informer_watch_restarts_total', { reason: 'silent' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('keeps retrying the first list while the API cannot be reached, and syncs once it can', async () => {
    await putConfigMap(kc, namespace, 'late-1', {}, { app: 'late' });
    proxy.setRefusing(true);
    const refusedBefore = proxy.refusedRequests();
    const { informer, metrics } = configMapInformer({
      kubeConfig: proxy.kubeConfig(),
      labelSelector: 'app=late',
    });
    const started = informer.start();
    await eventually(() => expect(proxy.refusedRequests() - refusedBefore).toBeGreaterThanOrEqual(3));
    expect(informer.hasSynced()).toBe(false);
    proxy.setRefusing(false);
    await started;
    expect(informer.hasSynced()).toBe(true);
    expect(informer.list().map((cm) => cm.metadata.name)).toEqual(['late-1']);
    expect(await metricValue(metrics, 'syncline_informer_relists_total', { reason: 'error' })).toBe(1);
  });

  it('watches a Syncline custom resource by group and version', async () => {
    const informer = new Informer<ConfigMap>({
      kubeConfig: kc,
      group: 'syncline.io',
      version: 'v1alpha1',
      plural: 'models',
      namespace,
      log,
    });
    informers.push(informer);
    const events = recordEvents(informer);
    await informer.start();
    expect(informer.list()).toEqual([]);
    const res = await kubeRequest(kc, {
      method: 'POST',
      path: `/apis/syncline.io/v1alpha1/namespaces/${namespace}/models`,
      body: {
        apiVersion: 'syncline.io/v1alpha1',
        kind: 'Model',
        metadata: { name: 'orders' },
        spec: { sourceRef: { name: 'warehouse' }, table: 'orders', primaryKey: 'id' },
      },
    });
    expect(res.status).toBe(201);
    await eventually(() => expect(events).toEqual(['add orders']));
    expect(informer.get(namespace, 'orders')).toMatchObject({ kind: 'Model', spec: { table: 'orders' } });
  });

  it('stop before the first list resolves start and ends the loop', async () => {
    proxy.setRefusing(true);
    const { informer } = configMapInformer({ kubeConfig: proxy.kubeConfig() });
    const started = informer.start();
    informer.stop();
    await started;
    await informer.whenStopped();
    expect(informer.hasSynced()).toBe(false);
    proxy.setRefusing(false);
  });
});
