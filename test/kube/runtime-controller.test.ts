// The runtime's pieces together against the real API server: informers feed a controller's work queue,
// reconciles are level-triggered, one key is never reconciled twice at once, and the health server
// reports readiness and metrics. Also: an informer over Jobs by label, with the real job controller.
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Controller } from '../../operator/runtime/controller.ts';
import { Informer } from '../../operator/runtime/informer.ts';
import { apiError, kubeRequest } from '../../operator/runtime/kubeapi.ts';
import { objectKey } from '../../operator/runtime/log.ts';
import { RuntimeMetrics } from '../../operator/runtime/metrics.ts';
import { startHealthServer, type HealthServer } from '../../operator/runtime/server.ts';
import {
  createNamespace,
  deleteNamespace,
  eventually,
  putConfigMap,
  testLogger,
  type ConfigMap,
} from './runtime-support.ts';

const kc = new KubeConfig();
kc.loadFromFile(inject('kubeconfigPath'));
const log = testLogger();
let namespace: string;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  namespace = await createNamespace(kc, 'runtime-controller');
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  if (namespace) await deleteNamespace(kc, namespace);
});

describe('Informer + Controller + health server', () => {
  it('reconciles the latest state of each key once per burst of changes, never concurrently', async () => {
    const metrics = new RuntimeMetrics();
    const informer = new Informer<ConfigMap>({
      kubeConfig: kc,
      group: '',
      version: 'v1',
      plural: 'configmaps',
      namespace,
      labelSelector: 'app=burst',
      log,
      metrics,
    });
    const inFlight = new Set<string>();
    let overlapped = false;
    const seen = new Map<string, string[]>();
    const controller = new Controller({
      name: 'configmaps',
      workers: 4,
      log,
      metrics,
      reconcile: async (key) => {
        if (inFlight.has(key)) overlapped = true;
        inFlight.add(key);
        try {
          const [ns, name] = key.split('/') as [string, string];
          // Level-triggered: read the current state from the cache, never from the event.
          const current = informer.get(ns, name);
          seen.set(key, [...(seen.get(key) ?? []), current?.data?.['v'] ?? 'deleted']);
          await new Promise((resolve) => setTimeout(resolve, 20));
        } finally {
          inFlight.delete(key);
        }
      },
    });
    const enqueue = (obj: ConfigMap) => controller.queue.add(objectKey(obj));
    informer.onAdd(enqueue);
    informer.onUpdate((_old, obj) => enqueue(obj));
    informer.onDelete(enqueue);

    const health = await startHealthServer({
      port: 0,
      host: '127.0.0.1',
      registry: metrics.registry,
      isReady: () => informer.hasSynced(),
      isHealthy: () => true,
    });
    cleanups.push(() => health.close());
    const base = `http://127.0.0.1:${(health as HealthServer).port}`;
    expect((await fetch(`${base}/readyz`)).status).toBe(503);

    await informer.start();
    controller.start();
    cleanups.push(async () => {
      informer.stop();
      await controller.stop();
    });
    expect((await fetch(`${base}/readyz`)).status).toBe(200);

    const writes = [];
    for (let i = 1; i <= 20; i++) {
      for (const name of ['x', 'y', 'z'])
        writes.push(putConfigMap(kc, namespace, name, { v: String(i) }, { app: 'burst' }));
      await Promise.all(writes.splice(0));
    }
    for (const name of ['x', 'y', 'z']) {
      await eventually(() => expect(seen.get(`${namespace}/${name}`)?.at(-1)).toBe('20'));
    }
    expect(overlapped).toBe(false);
    const reconciles = [...seen.values()].reduce((sum, values) => sum + values.length, 0);
    // 3 creates and 57 updates arrived as events; deduplication folds those that came in during a reconcile.
    expect(reconciles).toBeLessThanOrEqual(60);
    expect(reconciles).toBeGreaterThanOrEqual(3);

    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(
      /controller_runtime_reconcile_total\{controller="configmaps",result="success"\} \d+/,
    );
    expect(text).toContain('workqueue_adds_total{name="configmaps"}');
    expect(text).toContain('syncline_informer_relists_total{resource="configmaps",reason="initial"} 1');
  });

  it('follows Jobs by label as the real job controller updates them', async () => {
    const informer = new Informer<{
      metadata: { name: string; namespace: string; labels?: Record<string, string> };
      status?: { active?: number };
    }>({
      kubeConfig: kc,
      group: 'batch',
      version: 'v1',
      plural: 'jobs',
      namespace,
      labelSelector: 'app.kubernetes.io/managed-by=syncline-runtime-test',
      log,
    });
    const updates: number[] = [];
    informer.onUpdate((_old, job) => updates.push(job.status?.active ?? 0));
    await informer.start();
    cleanups.push(() => informer.stop());

    const job = (name: string, labels: Record<string, string>) => ({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name, labels },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: 'Never',
            containers: [{ name: 'main', image: 'busybox', command: ['true'] }],
          },
        },
      },
    });
    for (const [name, labels] of [
      ['ours', { 'app.kubernetes.io/managed-by': 'syncline-runtime-test' }],
      ['theirs', { 'app.kubernetes.io/managed-by': 'someone-else' }],
    ] as const) {
      const res = await kubeRequest(kc, {
        method: 'POST',
        path: `/apis/batch/v1/namespaces/${namespace}/jobs`,
        body: job(name, labels),
      });
      if (res.status !== 201) throw apiError(`create job ${name}`, res);
    }
    await eventually(() =>
      expect(informer.get(namespace, 'ours')).toMatchObject({ kind: 'Job', apiVersion: 'batch/v1' }),
    );
    // The job controller creates the pod and records it as active: the informer sees the status update.
    await eventually(() => expect(informer.get(namespace, 'ours')?.status?.active).toBe(1));
    expect(updates).toContain(1);
    expect(informer.get(namespace, 'theirs')).toBeUndefined();
    expect(informer.list().map((j) => j.metadata.name)).toEqual(['ours']);
  });
});
