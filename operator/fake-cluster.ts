// An in-memory cluster for the reconcilers' unit tests: the API calls of `ClusterAccess` on maps, a
// `Store` that reads the same maps (the informers' caches, always current), Events as a list, and a
// `ReconcileContext` over them with a clock the test sets. Nothing here talks to a server.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { Destination, DestinationType, Model, Source, Sync } from '../crds/index.ts';
import type { DestinationCapabilities } from '../core/connectors.ts';
import { silentLogger } from '../core/logger.ts';
import { SynclineError } from '../core/errors.ts';
import type { PatchOutcome } from './api/kube.ts';
import type { ClusterAccess, SynclinePlural } from './cluster.ts';
import { defaultConfig, type OperatorConfig } from './config.ts';
import type { ReconcileContext, Store } from './context.ts';
import type { EventSink, EventTarget } from './events.ts';
import { SynclineMetrics } from './metrics.ts';
import { RuntimeMetrics } from './runtime/metrics.ts';
import type { DestinationObjects } from '../core/diffstore/index.ts';
import { DestinationObjectsCache } from './destination-objects.ts';
import { DestinationRuns } from './destination-runs.ts';

type AnyObject = Record<string, unknown> & {
  metadata: { name: string; namespace?: string; resourceVersion?: string; finalizers?: string[] };
  status?: Record<string, unknown>;
};

const clone = <T>(value: T): T => structuredClone(value);

/** JSON merge patch (RFC 7386): null removes a key, objects merge, anything else replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const base: Record<string, unknown> =
    target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete base[key];
    else base[key] = mergePatch(base[key], value);
  }
  return base;
}

export class FakeCluster implements ClusterAccess {
  /** Syncline objects by `plural/namespace/name`. */
  readonly objects = new Map<string, AnyObject>();
  /** Jobs by `namespace/name`. */
  readonly jobs = new Map<string, V1Job>();
  /** Pods, as the kubelet would report them. */
  readonly pods: V1Pod[] = [];
  /** Jobs deleted, by `namespace/name` (the informer's tombstones). */
  readonly deletedJobs = new Set<string>();
  /** Every call, as `verb target` (e.g. `patchStatus syncs/ns/a`), in order. */
  readonly calls: string[] = [];
  readonly events: Record<string, unknown>[] = [];
  private version = 1;
  /** The API server's clock (creation times); fakeContext sets it to the reconcilers'. */
  now: () => Date = () => new Date();
  /** What connection checks discovered, by `namespace/destination` (the diff store's objects.json). */
  readonly discovered = new Map<string, DestinationObjects>();
  /** How often the discovered objects were read (the cache reads once per check). */
  discoveredReads = 0;
  /** Makes the next calls of a method fail with this error (e.g. a conflict). */
  failNext: Partial<Record<keyof ClusterAccess, Error>> = {};

  private fail(method: keyof ClusterAccess): void {
    const error = this.failNext[method];
    if (error) {
      delete this.failNext[method];
      throw error;
    }
  }

  /** Stores an object as the API server would (a resourceVersion, a uid, generation 1). */
  put<T extends { metadata: { name: string; namespace?: string } }>(plural: SynclinePlural, object: T): T {
    const stored = clone(object) as unknown as AnyObject;
    const meta = stored.metadata as AnyObject['metadata'] & { uid?: string; generation?: number };
    meta.namespace ??= 'default';
    meta.uid ??= `uid-${plural}-${meta.name}`;
    meta.generation ??= 1;
    meta.resourceVersion = String(this.version++);
    (meta as { creationTimestamp?: string }).creationTimestamp ??= '2026-01-01T00:00:00.000Z';
    this.objects.set(`${plural}/${meta.namespace}/${meta.name}`, stored);
    return clone(stored) as unknown as T;
  }

  get<T>(plural: SynclinePlural, namespace: string, name: string): T | undefined {
    const found = this.objects.get(`${plural}/${namespace}/${name}`);
    return found ? (clone(found) as unknown as T) : undefined;
  }

  async patchStatus(
    plural: SynclinePlural,
    namespace: string,
    name: string,
    patch: Record<string, unknown>,
    resourceVersion?: string,
  ): Promise<Record<string, unknown> | undefined> {
    this.calls.push(`patchStatus ${plural}/${namespace}/${name}`);
    this.fail('patchStatus');
    const found = this.objects.get(`${plural}/${namespace}/${name}`);
    if (!found) return undefined;
    if (resourceVersion && resourceVersion !== found.metadata.resourceVersion) {
      throw new SynclineError('KubeApiConflict', `${plural}/${name} changed since it was read`, {
        retryable: true,
      });
    }
    found.status = mergePatch(found.status, patch) as Record<string, unknown>;
    found.metadata.resourceVersion = String(this.version++);
    return clone(found);
  }

  async setFinalizers(
    plural: SynclinePlural,
    namespace: string,
    name: string,
    finalizers: string[],
  ): Promise<void> {
    this.calls.push(`setFinalizers ${plural}/${namespace}/${name}`);
    this.fail('setFinalizers');
    const found = this.objects.get(`${plural}/${namespace}/${name}`);
    if (!found) return;
    found.metadata.finalizers = [...finalizers];
    found.metadata.resourceVersion = String(this.version++);
  }

  async patchAnnotations(
    plural: 'syncs',
    namespace: string,
    name: string,
    annotations: Record<string, string | null>,
    resourceVersion: string,
  ): Promise<PatchOutcome> {
    this.calls.push(`patchAnnotations ${plural}/${namespace}/${name}`);
    this.fail('patchAnnotations');
    const found = this.objects.get(`${plural}/${namespace}/${name}`);
    if (!found) return 'gone';
    if (resourceVersion !== found.metadata.resourceVersion) return 'conflict';
    const meta = found.metadata as AnyObject['metadata'] & { annotations?: Record<string, string> };
    meta.annotations = mergePatch(meta.annotations, annotations) as Record<string, string>;
    meta.resourceVersion = String(this.version++);
    return 'patched';
  }

  async createJob(job: V1Job): Promise<{ created: boolean; job: V1Job }> {
    const namespace = job.metadata?.namespace ?? 'default';
    const key = `${namespace}/${job.metadata?.name}`;
    this.calls.push(`createJob ${key}`);
    this.fail('createJob');
    const existing = this.jobs.get(key);
    if (existing) return { created: false, job: clone(existing) };
    const stored = clone(job);
    stored.metadata = {
      ...stored.metadata,
      namespace,
      uid: `uid-job-${job.metadata?.name}`,
      resourceVersion: String(this.version++),
      creationTimestamp: (stored.metadata?.creationTimestamp ?? this.now().toISOString()) as never,
    };
    this.jobs.set(key, stored);
    return { created: true, job: clone(stored) };
  }

  async getObject(
    plural: SynclinePlural,
    namespace: string,
    name: string,
  ): Promise<Record<string, unknown> | undefined> {
    this.calls.push(`getObject ${plural}/${namespace}/${name}`);
    return this.get(plural, namespace, name);
  }

  async getJob(namespace: string, name: string): Promise<V1Job | undefined> {
    this.calls.push(`getJob ${namespace}/${name}`);
    const found = this.jobs.get(`${namespace}/${name}`);
    return found ? clone(found) : undefined;
  }

  async deleteJob(namespace: string, name: string): Promise<void> {
    this.calls.push(`deleteJob ${namespace}/${name}`);
    this.fail('deleteJob');
    if (this.jobs.delete(`${namespace}/${name}`)) this.deletedJobs.add(`${namespace}/${name}`);
  }

  async createEvent(_namespace: string, event: Record<string, unknown>): Promise<void> {
    this.events.push(event);
  }

  async patchEvent(): Promise<boolean> {
    return false;
  }

  isStale(): boolean {
    return false;
  }

  /** The informers' view of this cluster: always current (tests that need a lagging cache override it). */
  store(): Store {
    const matches = (job: V1Job, labels: Record<string, string>) =>
      Object.entries(labels).every(([k, v]) => job.metadata?.labels?.[k] === v);
    return {
      source: (ns, name) => this.get<Source>('sources', ns, name),
      model: (ns, name) => this.get<Model>('models', ns, name),
      destination: (ns, name) => this.get<Destination>('destinations', ns, name),
      sync: (ns, name) => this.get<Sync>('syncs', ns, name),
      syncsOfDestination: (ns, destination) =>
        [...this.objects.entries()]
          .filter(([k]) => k.startsWith(`syncs/${ns}/`))
          .map(([, o]) => clone(o) as unknown as Sync)
          .filter((s) => s.spec.destinationRef.name === destination),
      jobs: (ns, labels) =>
        [...this.jobs.values()].filter((j) => j.metadata?.namespace === ns && matches(j, labels)).map(clone),
      jobDeleted: (ns, name) => this.deletedJobs.has(`${ns}/${name}`),
      podsOfJob: (ns, job) =>
        this.pods.filter(
          (p) =>
            p.metadata?.namespace === ns &&
            (p.metadata?.labels?.['batch.kubernetes.io/job-name'] ?? p.metadata?.labels?.['job-name']) ===
              job,
        ),
    };
  }
}

/** Events as a list, recorded at once (the real recorder sends them in the background). */
export class FakeEvents implements EventSink {
  readonly recorded: { object: string; type: 'Normal' | 'Warning'; reason: string; message: string }[] = [];
  normal(target: EventTarget, reason: string, message: string): void {
    this.recorded.push({ object: target.metadata.name, type: 'Normal', reason, message });
  }
  warning(target: EventTarget, reason: string, message: string): void {
    this.recorded.push({ object: target.metadata.name, type: 'Warning', reason, message });
  }
  reasons(): string[] {
    return this.recorded.map((e) => e.reason);
  }
}

export interface FakeContext extends ReconcileContext {
  cluster: FakeCluster;
  events: FakeEvents;
  metrics: SynclineMetrics;
  /** Moves the clock the reconcilers read. */
  setNow(date: Date | string): void;
}

/** A reconcile context over a fake cluster; capabilities default to an http-like destination. */
export function fakeContext(
  options: {
    cluster?: FakeCluster;
    config?: Partial<OperatorConfig>;
    now?: Date | string;
    capabilities?: (type: DestinationType) => Promise<DestinationCapabilities>;
  } = {},
): FakeContext {
  const cluster = options.cluster ?? new FakeCluster();
  let now = new Date(options.now ?? '2026-01-01T12:00:00.000Z');
  const events = new FakeEvents();
  cluster.now = () => new Date(now);
  const objects = new DestinationObjectsCache(async (ns, name) => {
    cluster.discoveredReads++;
    return cluster.discovered.get(`${ns}/${name}`);
  });
  const ctx: FakeContext = {
    cluster,
    store: cluster.store(),
    events,
    metrics: new SynclineMetrics(new RuntimeMetrics({ defaultMetrics: false }).registry),
    config: defaultConfig({ diffStore: { url: 'file:///tmp/syncline-fake-store' }, ...options.config }),
    log: silentLogger(),
    now: () => new Date(now),
    setNow: (date) => {
      now = new Date(date);
    },
    capabilities:
      options.capabilities ??
      (async () => ({
        modes: ['upsert', 'update', 'insert', 'all', 'archive'],
        deleteBehaviors: ['ignore', 'clear', 'delete'],
        comparesAllColumns: true,
        defaultBatchSize: 100,
      })),
    destinationObjects: (destination) => objects.get(destination),
    runs: new DestinationRuns(),
    secrets: () => '',
  };
  return ctx;
}
