// Helpers shared by the operator's tests against the real API server (test/kube/operator-*, test/e2e/).
import { KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Condition } from '../../crds/index.ts';
import { kubeRequest, resourcePath } from '../../operator/runtime/kubeapi.ts';

export function loadKubeConfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export type Plural = 'sources' | 'models' | 'destinations' | 'syncs' | 'sequences';

export class Kube {
  readonly kc: KubeConfig;
  constructor(kc: KubeConfig) {
    this.kc = kc;
  }

  async request<T = Record<string, unknown>>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<{ status: number; body: T }> {
    return kubeRequest<T>(this.kc, {
      method,
      path,
      ...(body !== undefined ? { body } : {}),
      ...(contentType ? { contentType } : {}),
    });
  }

  async must<T = Record<string, unknown>>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<T> {
    const res = await this.request<T>(method, path, body, contentType);
    if (res.status >= 300)
      throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body).slice(0, 500)}`);
    return res.body;
  }

  /** A fresh namespace for one test file. */
  async namespace(prefix: string): Promise<string> {
    const name = `${prefix}-${randomBytes(3).toString('hex')}`;
    await this.must('POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name },
    });
    return name;
  }

  async secret(namespace: string, name: string, data: Record<string, string>): Promise<void> {
    await this.must('POST', resourcePath({ group: '', version: 'v1', plural: 'secrets', namespace }), {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace },
      stringData: data,
    });
  }

  path(plural: Plural, namespace: string, name?: string): string {
    return resourcePath({ group: 'syncline.io', version: 'v1alpha1', plural, namespace }, name);
  }

  async create(plural: Plural, namespace: string, object: Record<string, unknown>): Promise<void> {
    await this.must('POST', this.path(plural, namespace), {
      apiVersion: 'syncline.io/v1alpha1',
      ...object,
      metadata: { ...(object['metadata'] as object), namespace },
    });
  }

  async get<T = SynclineObject>(plural: Plural, namespace: string, name: string): Promise<T | undefined> {
    const res = await this.request<T>('GET', this.path(plural, namespace, name));
    return res.status === 404 ? undefined : res.body;
  }

  async patch(plural: Plural, namespace: string, name: string, patch: unknown): Promise<void> {
    await this.must('PATCH', this.path(plural, namespace, name), patch, 'application/merge-patch+json');
  }

  async delete(plural: Plural, namespace: string, name: string): Promise<void> {
    await this.request('DELETE', this.path(plural, namespace, name));
  }

  async jobs(namespace: string, selector: string): Promise<JobLike[]> {
    const body = await this.must<{ items: JobLike[] }>(
      'GET',
      `${resourcePath({ group: 'batch', version: 'v1', plural: 'jobs', namespace })}?labelSelector=${encodeURIComponent(selector)}`,
    );
    return body.items;
  }

  async events(
    namespace: string,
  ): Promise<
    { reason: string; message: string; type: string; involvedObject: { name: string; kind: string } }[]
  > {
    const body = await this.must<{
      items: {
        reason: string;
        message: string;
        type: string;
        involvedObject: { name: string; kind: string };
      }[];
    }>('GET', resourcePath({ group: '', version: 'v1', plural: 'events', namespace }));
    return body.items;
  }
}

export interface JobLike {
  metadata: {
    name: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
    ownerReferences?: { uid: string; kind: string }[];
  };
  spec: {
    template: {
      spec: {
        containers: { env?: { name: string; value?: string; valueFrom?: unknown }[] }[];
        automountServiceAccountToken?: boolean;
      };
    };
  };
  status?: { conditions?: { type: string; status: string }[] };
}

export interface SynclineObject {
  metadata: {
    name: string;
    generation?: number;
    finalizers?: string[];
    uid?: string;
    annotations?: Record<string, string>;
  };
  spec: Record<string, unknown>;
  status?: { observedGeneration?: number; conditions?: Condition[]; [key: string]: unknown };
}

export function condition(object: SynclineObject | undefined, type: string): Condition | undefined {
  return object?.status?.conditions?.find((c) => c.type === type);
}

/** Polls until `probe` returns a value (not undefined/false); fails with the last seen state. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  {
    timeoutMs = 60_000,
    intervalMs = 250,
    describe,
  }: { timeoutMs?: number; intervalMs?: number; describe?: () => Promise<string> } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(intervalMs);
  }
  const detail = describe ? await describe().catch((e: unknown) => String(e)) : '';
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}\n${detail}`,
  );
}

/** Waits until an object's condition has the given status (and reason, if given). */
export async function waitForCondition(
  kube: Kube,
  plural: Plural,
  namespace: string,
  name: string,
  type: string,
  status: string,
  reason?: string,
  timeoutMs = 60_000,
): Promise<SynclineObject> {
  return eventually(
    `${plural}/${name} ${type}=${status}${reason ? ` (${reason})` : ''}`,
    async () => {
      const obj = await kube.get(plural, namespace, name);
      const c = condition(obj, type);
      return c && c.status === status && (!reason || c.reason === reason) ? obj : undefined;
    },
    {
      timeoutMs,
      describe: async () =>
        JSON.stringify((await kube.get(plural, namespace, name))?.status ?? null, null, 1),
    },
  );
}
