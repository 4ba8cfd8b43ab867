// Shared helpers of the runtime's tests against the real API server.
import type { KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { apiError, kubeRequest } from '../../operator/runtime/kubeapi.ts';
import { createLogger, type Logger } from '../../core/logger.ts';

export interface ConfigMap {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string };
  data?: Record<string, string>;
}

export function testLogger(): Logger {
  return createLogger({ level: process.env['SYNCLINE_TEST_LOG_LEVEL'] ?? 'silent' });
}

/** Polls until `check` returns without throwing; rethrows its last error after `timeoutMs`. */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

export async function createNamespace(kc: KubeConfig, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  const res = await kubeRequest(kc, {
    method: 'POST',
    path: '/api/v1/namespaces',
    body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
  });
  if (res.status !== 201) throw apiError(`create namespace ${name}`, res);
  return name;
}

export async function deleteNamespace(kc: KubeConfig, name: string): Promise<void> {
  await kubeRequest(kc, { method: 'DELETE', path: `/api/v1/namespaces/${name}` });
}

export async function putConfigMap(
  kc: KubeConfig,
  namespace: string,
  name: string,
  data: Record<string, string>,
  labels: Record<string, string> = { app: 'runtime-test' },
): Promise<ConfigMap> {
  const path = `/api/v1/namespaces/${namespace}/configmaps`;
  const body: ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, labels },
    data,
  };
  const current = await kubeRequest<ConfigMap>(kc, { method: 'GET', path: `${path}/${name}` });
  const res =
    current.status === 404
      ? await kubeRequest<ConfigMap>(kc, { method: 'POST', path, body })
      : await kubeRequest<ConfigMap>(kc, {
          method: 'PUT',
          path: `${path}/${name}`,
          body: {
            ...body,
            metadata: { ...body.metadata, resourceVersion: current.body.metadata.resourceVersion },
          },
        });
  if (res.status !== 200 && res.status !== 201) throw apiError(`write configmap ${namespace}/${name}`, res);
  return res.body;
}

export async function deleteConfigMap(kc: KubeConfig, namespace: string, name: string): Promise<void> {
  const res = await kubeRequest(kc, {
    method: 'DELETE',
    path: `/api/v1/namespaces/${namespace}/configmaps/${name}`,
  });
  if (res.status !== 200) throw apiError(`delete configmap ${namespace}/${name}`, res);
}

/** Records every informer event as a line, e.g. "add a", "update b", "delete c". */
export function recordEvents<T extends { metadata?: { name?: string } }>(informer: {
  onAdd(fn: (obj: T) => void): void;
  onUpdate(fn: (oldObj: T, obj: T) => void): void;
  onDelete(fn: (obj: T) => void): void;
}): string[] {
  const events: string[] = [];
  informer.onAdd((obj) => events.push(`add ${obj.metadata?.name}`));
  informer.onUpdate((_old, obj) => events.push(`update ${obj.metadata?.name}`));
  informer.onDelete((obj) => events.push(`delete ${obj.metadata?.name}`));
  return events;
}
