import type { V1Job } from '@kubernetes/client-node';
import type { KubeAccess } from './runtime/kubeconfig.ts';
import { isDeepStrictEqual } from 'node:util';
import { GROUP, VERSION } from '../crds/index.ts';
import type { PatchOutcome } from './api/kube.ts';
import { apiError, kubeRequest, resourcePath } from './runtime/kubeapi.ts';

export type SynclinePlural = 'sources' | 'models' | 'destinations' | 'syncs' | 'sequences';

const MERGE_PATCH = 'application/merge-patch+json';

/** A patch of `status` that sets what changed and removes (null) what went away; undefined if equal. */
export function statusPatch(
  before: Record<string, unknown> | undefined,
  after: Record<string, unknown>,
): Record<string, unknown> | undefined {
  const old = normalize(before ?? {});
  const next = normalize(after);
  const patch: Record<string, unknown> = {};
  for (const key of new Set([...Object.keys(old), ...Object.keys(next)])) {
    if (!(key in next)) patch[key] = null;
    else if (!isDeepStrictEqual(old[key], next[key])) patch[key] = next[key];
  }
  return Object.keys(patch).length === 0 ? undefined : patch;
}

/** Drops undefined values, as JSON does, so that comparisons see what the server would store. */
function normalize(value: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
}

/**
 * What the reconcilers ask of the API server: their writes, and the few reads that must not come from a
 * cache. Reads otherwise come from the informers (`Store` in context.ts). `Cluster` is the real one;
 * `fake-cluster.ts` keeps everything in memory for unit tests.
 */
export interface ClusterAccess {
  /**
   * Merge-patches `status` of a Syncline object. With `resourceVersion`, the write fails with a conflict
   * (and the key is reconciled again) if the object changed since it was read. Undefined when it is gone.
   */
  patchStatus(
    plural: SynclinePlural,
    namespace: string,
    name: string,
    patch: Record<string, unknown>,
    resourceVersion?: string,
  ): Promise<Record<string, unknown> | undefined>;
  /** Sets metadata.finalizers with optimistic concurrency. */
  setFinalizers(
    plural: SynclinePlural,
    namespace: string,
    name: string,
    finalizers: string[],
    resourceVersion: string | undefined,
  ): Promise<void>;
  /**
   * Sets (string) or removes (null) annotations of a Sync with a merge patch conditioned on
   * `resourceVersion`: 'conflict' if it changed since, 'gone' if it was deleted. A Sequence requests its
   * steps' runs this way (operator/api/request-run.ts).
   */
  patchAnnotations(
    plural: 'syncs',
    namespace: string,
    name: string,
    annotations: Record<string, string | null>,
    resourceVersion: string,
  ): Promise<PatchOutcome>;
  /** Creates a Job; `created: false` with the existing Job when one of that name is already there. */
  createJob(job: V1Job): Promise<{ created: boolean; job: V1Job }>;
  /** A Syncline object as the API server has it now (not the cache), or undefined when it is gone. */
  getObject(
    plural: SynclinePlural,
    namespace: string,
    name: string,
  ): Promise<Record<string, unknown> | undefined>;
  getJob(namespace: string, name: string): Promise<V1Job | undefined>;
  /** Deletes a Job and (in the background) its pods; a Job already gone is not an error. */
  deleteJob(namespace: string, name: string): Promise<void>;
  createEvent(namespace: string, event: Record<string, unknown>): Promise<void>;
  /** False when the Event is gone. */
  patchEvent(namespace: string, name: string, patch: Record<string, unknown>): Promise<boolean>;
  /** Whether a cached object is still the one this process's last write was computed from. */
  isStale(
    plural: SynclinePlural,
    namespace: string,
    name: string,
    cachedVersion: string | undefined,
  ): boolean;
}

/** The writes the reconcilers make, on the API server; reads come from informers. */
export class Cluster implements ClusterAccess {
  readonly kubeConfig: KubeAccess;
  /** API requests made, for the benchmark's requests-per-second figure. */
  requests = 0;
  private readonly onRequest: ((verb: string) => void) | undefined;
  /** Objects written, with the resourceVersion they were read at: until the cache moves past it, it is stale. */
  private readonly written = new Map<string, { readAt: string; atMs: number }>();

  constructor(kubeConfig: KubeAccess, onRequest?: (verb: string) => void) {
    this.kubeConfig = kubeConfig;
    this.onRequest = onRequest;
  }

  private remember(
    plural: SynclinePlural,
    namespace: string,
    name: string,
    readAt: string | undefined,
  ): void {
    if (readAt) this.written.set(`${plural}/${namespace}/${name}`, { readAt, atMs: Date.now() });
  }

  /**
   * Whether the cached object is the one a write was computed from, so the cache has not yet seen that
   * write. Reconciling from it would only conflict (or redo the work); the caller waits a moment instead.
   * Gives up after a few seconds in case the write's watch event was lost.
   */
  isStale(
    plural: SynclinePlural,
    namespace: string,
    name: string,
    cachedVersion: string | undefined,
  ): boolean {
    const key = `${plural}/${namespace}/${name}`;
    const entry = this.written.get(key);
    if (!entry) return false;
    if (entry.readAt !== cachedVersion || Date.now() - entry.atMs > 5000) {
      this.written.delete(key);
      return false;
    }
    return true;
  }

  private async call<T>(
    what: string,
    req: Parameters<typeof kubeRequest>[1],
    ok: number[],
  ): Promise<{ status: number; body: T }> {
    this.requests++;
    this.onRequest?.(req.method);
    const response = await kubeRequest<T>(this.kubeConfig, req);
    if (!ok.includes(response.status)) throw apiError(what, response);
    return response;
  }

  /**
   * Merge-patches `status` of a Syncline object. With `resourceVersion`, the write fails with a conflict
   * (and the key is reconciled again) if the object changed since it was read.
   */
  async patchStatus(
    plural: SynclinePlural,
    namespace: string,
    name: string,
    patch: Record<string, unknown>,
    resourceVersion?: string,
  ): Promise<Record<string, unknown> | undefined> {
    const path = resourcePath({ group: GROUP, version: VERSION, plural, namespace }, name) + '/status';
    const body = { ...(resourceVersion ? { metadata: { resourceVersion } } : {}), status: patch };
    const res = await this.call<Record<string, unknown>>(
      `patching status of ${plural}/${name}`,
      { method: 'PATCH', path, body, contentType: MERGE_PATCH },
      [200, 404],
    );
    if (res.status === 404) return undefined;
    const written = (res.body['metadata'] as { resourceVersion?: string } | undefined)?.resourceVersion;
    if (written !== resourceVersion) this.remember(plural, namespace, name, resourceVersion);
    return res.body;
  }

  /** Sets metadata.finalizers with optimistic concurrency. */
  async setFinalizers(
    plural: SynclinePlural,
    namespace: string,
    name: string,
    finalizers: string[],
    resourceVersion: string | undefined,
  ): Promise<void> {
    const path = resourcePath({ group: GROUP, version: VERSION, plural, namespace }, name);
    const res = await this.call<{ metadata?: { resourceVersion?: string } }>(
      `updating finalizers of ${plural}/${name}`,
      {
        method: 'PATCH',
        path,
        body: { metadata: { finalizers, ...(resourceVersion ? { resourceVersion } : {}) } },
        contentType: MERGE_PATCH,
      },
      [200, 404],
    );
    if (res.status === 200 && res.body.metadata?.resourceVersion !== resourceVersion) {
      this.remember(plural, namespace, name, resourceVersion);
    }
  }

  async patchAnnotations(
    plural: 'syncs',
    namespace: string,
    name: string,
    annotations: Record<string, string | null>,
    resourceVersion: string,
  ): Promise<PatchOutcome> {
    const path = resourcePath({ group: GROUP, version: VERSION, plural, namespace }, name);
    const res = await this.call<{ metadata?: { resourceVersion?: string } }>(
      `annotating ${plural}/${name}`,
      {
        method: 'PATCH',
        path,
        body: { metadata: { resourceVersion, annotations } },
        contentType: MERGE_PATCH,
      },
      [200, 404, 409],
    );
    if (res.status === 404) return 'gone';
    if (res.status === 409) return 'conflict';
    if (res.body.metadata?.resourceVersion !== resourceVersion)
      this.remember(plural, namespace, name, resourceVersion);
    return 'patched';
  }

  /** Creates a Job; `exists` when one of that name is already there (a deterministic name makes this a no-op). */
  async createJob(job: V1Job): Promise<{ created: boolean; job: V1Job }> {
    const namespace = job.metadata?.namespace ?? 'default';
    const path = resourcePath({ group: 'batch', version: 'v1', plural: 'jobs', namespace });
    const res = await this.call<V1Job>(
      `creating Job ${job.metadata?.name}`,
      { method: 'POST', path, body: job },
      [201, 409],
    );
    if (res.status === 201) return { created: true, job: res.body };
    const existing = await this.getJob(namespace, job.metadata?.name ?? '');
    if (!existing) throw apiError(`creating Job ${job.metadata?.name}`, res);
    return { created: false, job: existing };
  }

  /** A Syncline object as the API server has it now (not the cache), or undefined when it is gone. */
  async getObject(
    plural: SynclinePlural,
    namespace: string,
    name: string,
  ): Promise<Record<string, unknown> | undefined> {
    const path = resourcePath({ group: GROUP, version: VERSION, plural, namespace }, name);
    const res = await this.call<Record<string, unknown>>(
      `reading ${plural}/${name}`,
      { method: 'GET', path },
      [200, 404],
    );
    return res.status === 404 ? undefined : res.body;
  }

  async getJob(namespace: string, name: string): Promise<V1Job | undefined> {
    const path = resourcePath({ group: 'batch', version: 'v1', plural: 'jobs', namespace }, name);
    const res = await this.call<V1Job>(`reading Job ${name}`, { method: 'GET', path }, [200, 404]);
    return res.status === 404 ? undefined : res.body;
  }

  /** Deletes a Job and (in the background) its pods. */
  async deleteJob(namespace: string, name: string): Promise<void> {
    const path = resourcePath({ group: 'batch', version: 'v1', plural: 'jobs', namespace }, name);
    await this.call(
      `deleting Job ${name}`,
      {
        method: 'DELETE',
        path,
        body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' },
      },
      [200, 202, 404],
    );
  }

  async createEvent(namespace: string, event: Record<string, unknown>): Promise<void> {
    const path = resourcePath({ group: '', version: 'v1', plural: 'events', namespace });
    await this.call('creating an Event', { method: 'POST', path, body: event }, [201, 409]);
  }

  async patchEvent(namespace: string, name: string, patch: Record<string, unknown>): Promise<boolean> {
    const path = resourcePath({ group: '', version: 'v1', plural: 'events', namespace }, name);
    const res = await this.call(
      'updating an Event',
      { method: 'PATCH', path, body: patch, contentType: MERGE_PATCH },
      [200, 404],
    );
    return res.status === 200;
  }
}
