import type { KubernetesObject, V1Job, V1Pod } from '@kubernetes/client-node';
import type { KubeAccess } from './runtime/kubeconfig.ts';
import type { DestinationCapabilities } from '../core/connectors.ts';
import {
  GROUP,
  runsAfter,
  VERSION,
  type Destination,
  type DestinationType,
  type Model,
  type Sequence,
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
import { Indexer } from './runtime/indexer.ts';
import { Informer } from './runtime/informer.ts';
import { type Logger } from '../core/logger.ts';
import { reconcileLogger, splitKey } from './runtime/log.ts';
import type { RuntimeMetrics } from './runtime/metrics.ts';
import { reconcileSync } from './sync.ts';
import { reconcileSequence } from './sequence.ts';
import { DestinationObjectsCache, diffStoreObjectsReader } from './destination-objects.ts';
import { DestinationRuns } from './destination-runs.ts';

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
  readonly sequences: MultiInformer<Sequence>;
  readonly jobs: MultiInformer<V1Job>;
  readonly pods: MultiInformer<V1Pod>;
  readonly controllers: Record<'source' | 'model' | 'destination' | 'sync' | 'sequence', Controller>;
  // Look-ups of the event wiring and of the reconcilers, kept current from informer events
  // (`runtime/indexer.ts`), so that an event costs the objects it concerns, not a scan of a namespace.
  private readonly jobsBySync = new Indexer<V1Job>((j) =>
    j.metadata?.labels?.[SYNC_LABEL] ? `${j.metadata.namespace}/${j.metadata.labels[SYNC_LABEL]}` : undefined,
  );
  private readonly jobsByCheck = new Indexer<V1Job>((j) => {
    const labels = j.metadata?.labels;
    return labels?.[CHECK_TARGET_LABEL]
      ? `${j.metadata?.namespace}/${labels[CHECK_KIND_LABEL]}/${labels[CHECK_TARGET_LABEL]}`
      : undefined;
  });
  private readonly podsByJob = new Indexer<V1Pod>((p) => {
    const job = p.metadata?.labels?.['batch.kubernetes.io/job-name'] ?? p.metadata?.labels?.['job-name'];
    return job ? `${p.metadata?.namespace}/${job}` : undefined;
  });
  /** Models by `namespace/sourceRef.name`: a Source's change reaches the Models that read it. */
  readonly modelsBySource = new Indexer<Model>((m) => [
    `${m.metadata.namespace}/${m.spec.sourceRef.name}`,
    // and the BI tool Source of a Model of a question (as: sql)
    ...[(m.spec.metabase ?? m.spec.looker)?.sourceRef].flatMap((r) =>
      r ? [`${m.metadata.namespace}/${r.name}`] : [],
    ),
  ]);
  /**
   * Segment Models by namespace: a change of any Model may change what a segment compiles to (its parent,
   * a related Model, a segment it names), so every segment of the namespace compiles again.
   */
  readonly segmentsByNamespace = new Indexer<Model>((m) =>
    m.spec.segment ? `${m.metadata.namespace}/` : undefined,
  );
  /** Syncs by `namespace/modelRef.name`. */
  readonly syncsByModel = new Indexer<Sync>((s) => `${s.metadata.namespace}/${s.spec.modelRef.name}`);
  /** Syncs by `namespace/destinationRef.name`. */
  readonly syncsByDestination = new Indexer<Sync>(
    (s) => `${s.metadata.namespace}/${s.spec.destinationRef.name}`,
  );
  /**
   * Syncs by `namespace/<name they run after>` (afterSyncs or dependsOn): a Sync's finished run reaches the
   * Syncs waiting for it.
   */
  readonly syncsByDependency = new Indexer<Sync>((s) =>
    (runsAfter(s.spec)?.names ?? []).map((name) => `${s.metadata.namespace}/${name}`),
  );
  /** Sequences by `namespace/<Sync of a step>`: a change of a Sync's status reaches the Sequences running it. */
  readonly sequencesBySync = new Indexer<Sequence>((q) =>
    q.spec.steps.map((step) => `${q.metadata.namespace}/${step.sync}`),
  );
  /** Jobs seen deleted, by namespace/name, with when: recent tombstones answer cache misses. */
  private readonly deletedJobs = new Map<string, number>();
  private readonly capabilityCache = new Map<string, Promise<DestinationCapabilities>>();
  /** Run Jobs just created per Destination, and the Syncs waiting for a run of one to end. */
  readonly runs = new DestinationRuns();
  /** What each Destination's last check discovered, read from the diff store once per check. */
  private readonly objects: DestinationObjectsCache;
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
    this.sequences = informers<Sequence>(GROUP, VERSION, 'sequences');
    this.jobs = informers<V1Job>('batch', 'v1', 'jobs', MANAGED_SELECTOR);
    this.pods = informers<V1Pod>('', 'v1', 'pods', MANAGED_SELECTOR);

    this.objects = new DestinationObjectsCache(
      diffStoreObjectsReader({ config: options.config, secrets: options.secrets }),
      log,
    );
    const objects = this.objects;
    const ctx: ReconcileContext = {
      store: this.store(),
      cluster: this.cluster,
      events: this.events,
      metrics: options.metrics,
      config: options.config,
      log,
      now: options.now ?? (() => new Date()),
      capabilities: options.capabilities ?? ((type) => this.capabilities(type)),
      destinationObjects: (d) => objects.get(d),
      runs: this.runs,
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
      sequence: controller('sequence', 'sequences', this.sequences, reconcileSequence),
    };
    this.wire();
  }

  private store(): Store {
    return {
      source: (ns, name) => this.sources.get(ns, name),
      model: (ns, name) => this.models.get(ns, name),
      destination: (ns, name) => this.destinations.get(ns, name),
      sync: (ns, name) => this.syncs.get(ns, name),
      syncsOfDestination: (ns, destination) => this.syncsByDestination.get(`${ns}/${destination}`),
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
    const { source, model, destination, sync, sequence } = this.controllers;
    const on = <T extends ObjectMeta>(informer: MultiInformer<T>, fn: (obj: T, self: boolean) => void) => {
      informer.onAdd((obj) => fn(obj, true));
      informer.onUpdate((oldObj, obj) => fn(obj, specOrMetaChanged(oldObj, obj)));
      informer.onDelete((obj) => fn(obj, true));
    };
    // Indexes first: the handlers below read them, and an informer calls handlers in order.
    this.modelsBySource.follow(this.models);
    this.segmentsByNamespace.follow(this.models);
    this.syncsByModel.follow(this.syncs);
    this.syncsByDestination.follow(this.syncs);
    this.syncsByDependency.follow(this.syncs);
    this.sequencesBySync.follow(this.sequences);
    this.jobsBySync.follow(this.jobs);
    this.jobsByCheck.follow(this.jobs);
    this.podsByJob.follow(this.pods);
    const dependents = <T extends ObjectMeta>(index: Indexer<T>, obj: ObjectMeta) =>
      index.get(`${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`);
    on(this.sources, (obj, self) => {
      if (self) source.queue.add(key(obj));
      for (const m of dependents(this.modelsBySource, obj)) model.queue.add(key(m));
    });
    on(this.models, (obj, self) => {
      if (self) model.queue.add(key(obj));
      if (self)
        for (const m of this.segmentsByNamespace.get(`${obj.metadata.namespace}/`))
          if (m.metadata.name !== obj.metadata.name) model.queue.add(key(m));
      for (const s of dependents(this.syncsByModel, obj)) sync.queue.add(key(s));
    });
    on(this.destinations, (obj, self) => {
      if (self) destination.queue.add(key(obj));
      for (const s of dependents(this.syncsByDestination, obj)) sync.queue.add(key(s));
    });
    on(this.sequences, (obj, self) => {
      if (self) sequence.queue.add(key(obj));
    });
    on(this.syncs, (obj, self) => {
      if (self) sync.queue.add(key(obj));
      for (const s of dependents(this.syncsByDependency, obj)) sync.queue.add(key(s));
      // A step's Sync changed (its run requested, started or finished): the Sequences running it look.
      for (const q of dependents(this.sequencesBySync, obj)) sequence.queue.add(key(q));
      // The objects a Destination's Syncs target are part of its check (which discovers their fields).
      if (self) destination.queue.add(`${obj.metadata.namespace ?? ''}/${obj.spec.destinationRef.name}`);
    });
    this.syncs.onUpdate((oldObj, obj) => {
      if (oldObj.spec.destinationRef.name !== obj.spec.destinationRef.name)
        destination.queue.add(`${oldObj.metadata.namespace ?? ''}/${oldObj.spec.destinationRef.name}`);
    });
    this.destinations.onDelete((obj) => this.objects.forget(obj.metadata.namespace ?? '', obj.metadata.name));
    const routeJob = (obj: ObjectMeta) => {
      const labels = obj.metadata?.labels ?? {};
      const ns = obj.metadata?.namespace ?? '';
      if (labels[COMPONENT_LABEL] === 'run' && labels[SYNC_LABEL]) {
        sync.queue.add(`${ns}/${labels[SYNC_LABEL]}`);
        // Syncs whose due run waits for a run of the same Destination to end (maxConcurrentRuns).
        const owner = this.syncs.get(ns, labels[SYNC_LABEL]);
        if (owner)
          for (const waiter of this.runs.waiters(`${ns}/${owner.spec.destinationRef.name}`))
            sync.queue.add(waiter);
      }
      if (labels[COMPONENT_LABEL] === 'check' && labels[CHECK_TARGET_LABEL]) {
        const queue = labels[CHECK_KIND_LABEL] === 'source' ? source.queue : destination.queue;
        queue.add(`${ns}/${labels[CHECK_TARGET_LABEL]}`);
      }
    };
    this.jobs.onAdd(routeJob);
    this.jobs.onUpdate((_o, j) => routeJob(j));
    this.jobs.onDelete((j) => {
      const now = Date.now();
      this.deletedJobs.set(`${j.metadata?.namespace}/${j.metadata?.name}`, now);
      if (this.deletedJobs.size > 10_000) {
        for (const [k, at] of this.deletedJobs) if (now - at > 10 * 60_000) this.deletedJobs.delete(k);
      }
      routeJob(j);
    });
    this.pods.onAdd(routeJob);
    this.pods.onUpdate((_o, p) => routeJob(p));
    this.pods.onDelete(routeJob);
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
      this.sequences.start(),
    ]);
    for (const c of Object.values(this.controllers)) c.start();
    this.options.log.info('controllers started');
  }

  /** Stops taking work, lets the reconciles in flight finish, then stops watching. */
  async stop(): Promise<void> {
    if (!this.started) return;
    await Promise.all(Object.values(this.controllers).map((c) => c.stop()));
    for (const informer of [
      this.sources,
      this.models,
      this.destinations,
      this.syncs,
      this.sequences,
      this.jobs,
      this.pods,
    ])
      informer.stop();
    await this.events.flush();
    this.started = false;
    this.options.log.info('controllers stopped');
  }

  hasSynced(): boolean {
    return [
      this.sources,
      this.models,
      this.destinations,
      this.syncs,
      this.sequences,
      this.jobs,
      this.pods,
    ].every((i) => i.hasSynced());
  }
}
