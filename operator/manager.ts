import type { KubernetesObject, V1Job, V1Pod } from '@kubernetes/client-node';
import type { KubeAccess } from './runtime/kubeconfig.ts';
import type { DestinationCapabilities } from '../core/connectors.ts';
import {
  GROUP,
  VERSION,
  type Destination,
  type DestinationType,
  type Model,
  type Source,
  type Sync,
} from '../crds/index.ts';
import type { SecretResolver } from '../core/secrets.ts';
import { probeCapabilities } from './capabilities.ts';
import { Cluster, type SynclinePlural } from './cluster.ts';
import type { OperatorConfig } from './config.ts';
import { reconcileConnection } from './connection.ts';
import type { ReconcileContext, Store } from './context.ts';
import { EventRecorder } from './events.ts';
import {
  CHECK_KIND_LABEL,
  CHECK_TARGET_LABEL,
  COMPONENT_LABEL,
  MANAGED_SELECTOR,
  SYNC_LABEL,
} from './jobs.ts';
import type { SynclineMetrics } from './metrics.ts';
import { reconcileModel } from './model.ts';
import { Controller, type ReconcileResult } from './runtime/controller.ts';
import { Informer } from './runtime/informer.ts';
import { type Logger } from '../core/logger.ts';
import { reconcileLogger, splitKey } from './runtime/log.ts';
import type { RuntimeMetrics } from './runtime/metrics.ts';
import { reconcileSync } from './sync.ts';

export interface ManagerOptions {
  kubeConfig: KubeAccess;
  config: OperatorConfig;
  log: Logger;
  runtimeMetrics: RuntimeMetrics;
  metrics: SynclineMetrics;
  identity: string;
  secrets: SecretResolver;
  workers?: number;
  /** Re-reconcile every object this often even without events (default 10 min). */
  resyncPeriodMs?: number;
  /** Overrides for tests: a fixed clock, connector capabilities without loading connectors. */
  now?: () => Date;
  capabilities?: (type: DestinationType) => Promise<DestinationCapabilities>;
}

/** What the wiring reads of any object. */
interface ObjectMeta {
  metadata?: {
    name?: string;
    namespace?: string;
    generation?: number;
    resourceVersion?: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    finalizers?: string[];
    deletionTimestamp?: unknown;
  };
}

/** Informers over one resource in every watched namespace, read as one cache. */
class MultiInformer<T extends ObjectMeta> {
  readonly informers: Informer<KubernetesObject & T>[];
  constructor(informers: Informer<KubernetesObject>[]) {
    // The cache holds the API server's JSON; T is how the reconcilers read it.
    this.informers = informers as unknown as Informer<KubernetesObject & T>[];
  }
  onAdd(fn: (obj: T) => void): void {
    for (const i of this.informers) i.onAdd(fn);
  }
  onUpdate(fn: (oldObj: T, obj: T) => void): void {
    for (const i of this.informers) i.onUpdate(fn);
  }
  onDelete(fn: (obj: T) => void): void {
    for (const i of this.informers) i.onDelete(fn);
  }
  get(namespace: string, name: string): T | undefined {
    for (const i of this.informers) {
      const found = i.get(namespace, name);
      if (found) return found;
    }
    return undefined;
  }
  list(namespace?: string): T[] {
    return this.informers.flatMap((i) => i.list(namespace));
  }
  async start(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.start()));
  }
  stop(): void {
    for (const i of this.informers) i.stop();
  }
  hasSynced(): boolean {
    return this.informers.every((i) => i.hasSynced());
  }
}

/** An index of objects by a key derived from each, kept current from informer events. */
class Index<T extends ObjectMeta> {
  private readonly byKey = new Map<string, Map<string, T>>();
  private readonly keyOf: (obj: T) => string | undefined;
  constructor(keyOf: (obj: T) => string | undefined) {
    this.keyOf = keyOf;
  }
  private static id(obj: ObjectMeta): string {
    return `${obj.metadata?.namespace}/${obj.metadata?.name}`;
  }
  put(oldObj: T | undefined, obj: T): void {
    if (oldObj) this.remove(oldObj);
    const key = this.keyOf(obj);
    if (key === undefined) return;
    let bucket = this.byKey.get(key);
    if (!bucket) this.byKey.set(key, (bucket = new Map()));
    bucket.set(Index.id(obj), obj);
  }
  remove(obj: T): void {
    const key = this.keyOf(obj);
    if (key === undefined) return;
    const bucket = this.byKey.get(key);
    bucket?.delete(Index.id(obj));
    if (bucket?.size === 0) this.byKey.delete(key);
  }
  get(key: string): T[] {
    return [...(this.byKey.get(key)?.values() ?? [])];
  }
}

/** Whether an update changed anything but status (or is a resync, which must reach the reconciler). */
function specOrMetaChanged(oldObj: ObjectMeta, obj: ObjectMeta): boolean {
  const a = oldObj.metadata;
  const b = obj.metadata;
  if (a?.resourceVersion === b?.resourceVersion) return true;
  return (
    a?.generation !== b?.generation ||
    JSON.stringify(a?.annotations ?? {}) !== JSON.stringify(b?.annotations ?? {}) ||
    JSON.stringify(a?.labels ?? {}) !== JSON.stringify(b?.labels ?? {}) ||
    JSON.stringify(a?.finalizers ?? []) !== JSON.stringify(b?.finalizers ?? []) ||
    a?.deletionTimestamp !== b?.deletionTimestamp
  );
}

/** What the controllers never read goes before an object is cached: managedFields (the largest part of
 * most objects) and, on Jobs and Pods, the containers' env (the run plan, a copy of four specs). */
export function slimForCache(obj: KubernetesObject): KubernetesObject {
  const { managedFields: _managedFields, ...metadata } = obj.metadata ?? {};
  const slim: KubernetesObject & { spec?: unknown } = { ...obj, metadata };
  const spec = (obj as { spec?: unknown }).spec as PodOrJobSpec | undefined;
  if (obj.kind === 'Job' && spec?.template?.spec) {
    slim.spec = { ...spec, template: { ...spec.template, spec: withoutEnv(spec.template.spec) } };
  } else if (obj.kind === 'Pod' && spec) {
    slim.spec = withoutEnv(spec);
  }
  return slim;
}

interface PodSpecShape {
  containers?: { env?: unknown }[];
  initContainers?: { env?: unknown }[];
}
type PodOrJobSpec = PodSpecShape & { template?: { spec?: PodSpecShape } };

function withoutEnv(spec: PodSpecShape): PodSpecShape {
  const strip = (containers: { env?: unknown }[] | undefined) =>
    containers?.map(({ env: _env, ...container }) => container);
  return {
    ...spec,
    ...(spec.containers ? { containers: strip(spec.containers) } : {}),
    ...(spec.initContainers ? { initContainers: strip(spec.initContainers) } : {}),
  };
}

const key = (obj: ObjectMeta) => `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;

/**
 * The operator's controllers: informers for the four kinds and for the Jobs and Pods it created, one
 * controller per kind, and the event wiring that turns a change of one object into reconciles of the
 * objects that depend on it.
 */
export class Manager {
  private readonly options: ManagerOptions;
  readonly cluster: Cluster;
  readonly events: EventRecorder;
  readonly sources: MultiInformer<Source>;
  readonly models: MultiInformer<Model>;
  readonly destinations: MultiInformer<Destination>;
  readonly syncs: MultiInformer<Sync>;
  readonly jobs: MultiInformer<V1Job>;
  readonly pods: MultiInformer<V1Pod>;
  readonly controllers: Record<'source' | 'model' | 'destination' | 'sync', Controller>;
  private readonly jobsBySync = new Index<V1Job>((j) =>
    j.metadata?.labels?.[SYNC_LABEL] ? `${j.metadata.namespace}/${j.metadata.labels[SYNC_LABEL]}` : undefined,
  );
  private readonly jobsByCheck = new Index<V1Job>((j) => {
    const labels = j.metadata?.labels;
    return labels?.[CHECK_TARGET_LABEL]
      ? `${j.metadata?.namespace}/${labels[CHECK_KIND_LABEL]}/${labels[CHECK_TARGET_LABEL]}`
      : undefined;
  });
  private readonly podsByJob = new Index<V1Pod>((p) => {
    const job = p.metadata?.labels?.['batch.kubernetes.io/job-name'] ?? p.metadata?.labels?.['job-name'];
    return job ? `${p.metadata?.namespace}/${job}` : undefined;
  });
  /** Jobs seen deleted, by namespace/name, with when: recent tombstones answer cache misses. */
  private readonly deletedJobs = new Map<string, number>();
  private readonly capabilityCache = new Map<string, Promise<DestinationCapabilities>>();
  private started = false;

  constructor(options: ManagerOptions) {
    this.options = options;
    const { kubeConfig, log, runtimeMetrics } = options;
    this.cluster = new Cluster(kubeConfig, (verb) => options.metrics.apiRequests.inc({ verb }));
    this.events = new EventRecorder({ cluster: this.cluster, log, host: options.identity });
    const namespaces = options.config.namespaces.length > 0 ? options.config.namespaces : [undefined];
    const resyncPeriodMs = options.resyncPeriodMs ?? 10 * 60_000;
    const informers = <T extends ObjectMeta>(
      group: string,
      version: string,
      plural: string,
      labelSelector?: string,
    ) =>
      new MultiInformer<T>(
        namespaces.map(
          (namespace) =>
            new Informer<KubernetesObject>({
              kubeConfig,
              group,
              version,
              plural,
              ...(namespace ? { namespace } : {}),
              ...(labelSelector ? { labelSelector } : {}),
              resyncPeriodMs,
              log,
              metrics: runtimeMetrics,
              transform: slimForCache,
            }),
        ),
      );
    this.sources = informers<Source>(GROUP, VERSION, 'sources');
    this.models = informers<Model>(GROUP, VERSION, 'models');
    this.destinations = informers<Destination>(GROUP, VERSION, 'destinations');
    this.syncs = informers<Sync>(GROUP, VERSION, 'syncs');
    this.jobs = informers<V1Job>('batch', 'v1', 'jobs', MANAGED_SELECTOR);
    this.pods = informers<V1Pod>('', 'v1', 'pods', MANAGED_SELECTOR);

    const ctx: ReconcileContext = {
      store: this.store(),
      cluster: this.cluster,
      events: this.events,
      metrics: options.metrics,
      config: options.config,
      log,
      now: options.now ?? (() => new Date()),
      capabilities: options.capabilities ?? ((type) => this.capabilities(type)),
      secrets: options.secrets,
    };
    const controller = <T extends ObjectMeta>(
      name: string,
      plural: SynclinePlural,
      informer: MultiInformer<T>,
      reconcile: (ctx: ReconcileContext, obj: T) => Promise<ReconcileResult>,
    ) =>
      new Controller({
        name,
        workers: options.workers ?? 4,
        log,
        metrics: runtimeMetrics,
        reconcile: async (k) => {
          const { namespace, name: objectName } = splitKey(k);
          const obj = informer.get(namespace, objectName);
          if (!obj) return;
          // Our own last write has not reached the cache yet: wait for it rather than conflict.
          if (this.cluster.isStale(plural, namespace, objectName, obj.metadata?.resourceVersion)) {
            return { requeueAfterMs: 50 };
          }
          return reconcile({ ...ctx, log: reconcileLogger(log, k, { controller: name }) }, obj);
        },
      });
    this.controllers = {
      source: controller('source', 'sources', this.sources, reconcileConnection),
      destination: controller('destination', 'destinations', this.destinations, reconcileConnection),
      model: controller('model', 'models', this.models, reconcileModel),
      sync: controller('sync', 'syncs', this.syncs, reconcileSync),
    };
    this.wire();
  }

  private store(): Store {
    return {
      source: (ns, name) => this.sources.get(ns, name),
      model: (ns, name) => this.models.get(ns, name),
      destination: (ns, name) => this.destinations.get(ns, name),
      sync: (ns, name) => this.syncs.get(ns, name),
      syncs: (ns) => this.syncs.list(ns),
      models: (ns) => this.models.list(ns),
      jobs: (ns, labels) => {
        const candidates = labels[SYNC_LABEL]
          ? this.jobsBySync.get(`${ns}/${labels[SYNC_LABEL]}`)
          : labels[CHECK_TARGET_LABEL]
            ? this.jobsByCheck.get(`${ns}/${labels[CHECK_KIND_LABEL]}/${labels[CHECK_TARGET_LABEL]}`)
            : this.jobs.list(ns);
        return candidates.filter((j) =>
          Object.entries(labels).every(([k, v]) => j.metadata?.labels?.[k] === v),
        );
      },
      jobDeleted: (ns, jobName) => this.deletedJobs.has(`${ns}/${jobName}`),
      podsOfJob: (ns, jobName) => this.podsByJob.get(`${ns}/${jobName}`),
    };
  }

  private capabilities(type: DestinationType): Promise<DestinationCapabilities> {
    let found = this.capabilityCache.get(type);
    if (!found) {
      found = probeCapabilities(type);
      // A failed load is not cached: a later reconcile tries again.
      found.catch(() => this.capabilityCache.delete(type));
      this.capabilityCache.set(type, found);
    }
    return found;
  }

  private wire(): void {
    const { source, model, destination, sync } = this.controllers;
    const on = <T extends ObjectMeta>(informer: MultiInformer<T>, fn: (obj: T, self: boolean) => void) => {
      informer.onAdd((obj) => fn(obj, true));
      informer.onUpdate((oldObj, obj) => fn(obj, specOrMetaChanged(oldObj, obj)));
      informer.onDelete((obj) => fn(obj, true));
    };
    on(this.sources, (obj, self) => {
      if (self) source.queue.add(key(obj));
      const ns = obj.metadata.namespace ?? '';
      for (const m of this.models.list(ns))
        if (m.spec.sourceRef.name === obj.metadata.name) model.queue.add(key(m));
    });
    on(this.models, (obj, self) => {
      if (self) model.queue.add(key(obj));
      const ns = obj.metadata.namespace ?? '';
      for (const s of this.syncs.list(ns))
        if (s.spec.modelRef.name === obj.metadata.name) sync.queue.add(key(s));
    });
    on(this.destinations, (obj, self) => {
      if (self) destination.queue.add(key(obj));
      const ns = obj.metadata.namespace ?? '';
      for (const s of this.syncs.list(ns))
        if (s.spec.destinationRef.name === obj.metadata.name) sync.queue.add(key(s));
    });
    on(this.syncs, (obj, self) => {
      if (self) sync.queue.add(key(obj));
      const ns = obj.metadata.namespace ?? '';
      for (const s of this.syncs.list(ns)) {
        if (s.spec.dependsOn?.some((d) => d.name === obj.metadata.name)) sync.queue.add(key(s));
      }
    });
    const routeJob = (obj: ObjectMeta) => {
      const labels = obj.metadata?.labels ?? {};
      const ns = obj.metadata?.namespace ?? '';
      if (labels[COMPONENT_LABEL] === 'run' && labels[SYNC_LABEL])
        sync.queue.add(`${ns}/${labels[SYNC_LABEL]}`);
      if (labels[COMPONENT_LABEL] === 'check' && labels[CHECK_TARGET_LABEL]) {
        const queue = labels[CHECK_KIND_LABEL] === 'source' ? source.queue : destination.queue;
        queue.add(`${ns}/${labels[CHECK_TARGET_LABEL]}`);
      }
    };
    this.jobs.onAdd((j) => {
      this.jobsBySync.put(undefined, j);
      this.jobsByCheck.put(undefined, j);
      routeJob(j);
    });
    this.jobs.onUpdate((o, j) => {
      this.jobsBySync.put(o, j);
      this.jobsByCheck.put(o, j);
      routeJob(j);
    });
    this.jobs.onDelete((j) => {
      const now = Date.now();
      this.deletedJobs.set(`${j.metadata?.namespace}/${j.metadata?.name}`, now);
      if (this.deletedJobs.size > 10_000) {
        for (const [k, at] of this.deletedJobs) if (now - at > 10 * 60_000) this.deletedJobs.delete(k);
      }
      this.jobsBySync.remove(j);
      this.jobsByCheck.remove(j);
      routeJob(j);
    });
    this.pods.onAdd((p) => {
      this.podsByJob.put(undefined, p);
      routeJob(p);
    });
    this.pods.onUpdate((o, p) => {
      this.podsByJob.put(o, p);
      routeJob(p);
    });
    this.pods.onDelete((p) => {
      this.podsByJob.remove(p);
      routeJob(p);
    });
  }

  /** Fills the caches, then starts the workers (Jobs and Pods first, so reconciles see their runs). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await Promise.all([this.jobs.start(), this.pods.start()]);
    await Promise.all([
      this.sources.start(),
      this.models.start(),
      this.destinations.start(),
      this.syncs.start(),
    ]);
    for (const c of Object.values(this.controllers)) c.start();
    this.options.log.info('controllers started');
  }

  /** Stops taking work, lets the reconciles in flight finish, then stops watching. */
  async stop(): Promise<void> {
    if (!this.started) return;
    await Promise.all(Object.values(this.controllers).map((c) => c.stop()));
    for (const informer of [this.sources, this.models, this.destinations, this.syncs, this.jobs, this.pods])
      informer.stop();
    await this.events.flush();
    this.started = false;
    this.options.log.info('controllers stopped');
  }

  hasSynced(): boolean {
    return [this.sources, this.models, this.destinations, this.syncs, this.jobs, this.pods].every((i) =>
      i.hasSynced(),
    );
  }
}
