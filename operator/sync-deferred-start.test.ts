// A scheduled run of a Sync whose status is current starts with the Job alone; its start reaches status
// when the Job is adopted from the cache, and a Job deleted before that is never created again. A run
// stopped because its pod was stuck stays failed of that problem. Against a real API server;
// reconcileSync is called directly with a clock the test moves, and the store is what the informers
// would hold, read from the API server (or, for a lagging cache, given by the test).
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Destination, Model, Source, Sync } from '../crds/index.ts';
import { secretResolver } from '../core/secrets.ts';
import { Kube } from '../test/e2e/support.ts';
import { startKube, type KubeStack } from '../test/stack/kube.ts';
import { probeCapabilities } from './capabilities.ts';
import { Cluster } from './cluster.ts';
import { defaultConfig } from './config.ts';
import type { ReconcileContext } from './context.ts';
import { EventRecorder } from './events.ts';
import { DestinationRuns } from './destination-runs.ts';
import { checkHashOf, MANAGED_SELECTOR, STARTED_AT_ANNOTATION } from './jobs.ts';
import { SynclineMetrics } from './metrics.ts';
import { createLogger } from '../core/logger.ts';
import { RuntimeMetrics } from './runtime/metrics.ts';
import { reconcileSync } from './sync.ts';

let stack: KubeStack;
let kube: Kube;
let ns: string;
const deleted = new Set<string>();
let clock: Date;

function readyCondition(reason: string) {
  return {
    type: 'Ready',
    status: 'True',
    observedGeneration: 1,
    lastTransitionTime: new Date().toISOString(),
    reason,
    message: 'ready',
  };
}

beforeAll(async () => {
  stack = await startKube({ controllerManager: false });
  kube = new Kube(stack.kubeConfig());
  ns = await kube.namespace('deferred');
  await kube.secret(ns, 'pg', { password: 'unused' });
  const ready = async (plural: 'sources' | 'destinations', object: Record<string, unknown>) => {
    await kube.create(plural, ns, object);
    const stored = (await kube.get(plural, ns, (object['metadata'] as { name: string }).name)) as unknown as
      Source | Destination;
    const now = new Date().toISOString();
    await kube.must(
      'PATCH',
      `${kube.path(plural, ns, stored.metadata.name)}/status`,
      {
        status: {
          observedGeneration: 1,
          checkedHash: checkHashOf(stored),
          lastCheckedAt: now,
          conditions: [readyCondition('ConnectionSucceeded')],
        },
      },
      'application/merge-patch+json',
    );
  };
  await ready('sources', {
    kind: 'Source',
    metadata: { name: 'warehouse' },
    spec: {
      type: 'postgres',
      postgres: {
        host: '127.0.0.1',
        port: 5432,
        database: 'app',
        user: 'u',
        password: { secretKeyRef: { name: 'pg', key: 'password' } },
      },
    },
  });
  await ready('destinations', {
    kind: 'Destination',
    metadata: { name: 'crm' },
    spec: { type: 'http', http: { url: 'http://127.0.0.1:9/contacts' } },
  });
  await kube.create('models', ns, {
    kind: 'Model',
    metadata: { name: 'customers' },
    spec: { sourceRef: { name: 'warehouse' }, table: 'customers', primaryKey: 'id' },
  });
  // As the Model reconciler leaves it once its Source is Ready.
  await kube.must(
    'PATCH',
    `${kube.path('models', ns, 'customers')}/status`,
    { status: { observedGeneration: 1, conditions: [readyCondition('SourceReady')] } },
    'application/merge-patch+json',
  );
  await kube.create('syncs', ns, {
    kind: 'Sync',
    metadata: { name: 'to-crm' },
    spec: {
      modelRef: { name: 'customers' },
      destinationRef: { name: 'crm' },
      mode: 'upsert',
      schedule: { interval: '1m' },
    },
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/** What the informers hold instead of the API server's current state: a cache that lags behind. */
interface CacheOverrides {
  jobs?: V1Job[];
  pods?: V1Pod[];
}

async function get<T>(plural: 'sources' | 'models' | 'destinations' | 'syncs', name: string): Promise<T> {
  return (await kube.get(plural, ns, name)) as unknown as T;
}

async function jobs(): Promise<V1Job[]> {
  return (await kube.jobs(ns, MANAGED_SELECTOR)) as unknown as V1Job[];
}

/** A context whose store is the API server's current state, as caught-up informers would hold it. */
async function context(syncName: string, cached: CacheOverrides): Promise<ReconcileContext> {
  const [source, model, destination, sync, current] = await Promise.all([
    get<Source>('sources', 'warehouse'),
    get<Model>('models', 'customers'),
    get<Destination>('destinations', 'crm'),
    get<Sync>('syncs', syncName),
    cached.jobs ?? jobs(),
  ]);
  const runtimeMetrics = new RuntimeMetrics({ defaultMetrics: false });
  const cluster = new Cluster(stack.kubeConfig());
  const log = createLogger({ level: 'warn' });
  return {
    store: {
      source: () => source,
      model: () => model,
      destination: () => destination,
      sync: () => sync,
      syncsOfDestination: () => [sync],
      jobs: () => current,
      jobDeleted: (_ns, name) => deleted.has(name),
      podsOfJob: (_ns, job) =>
        (cached.pods ?? []).filter((p) => p.metadata?.labels?.['batch.kubernetes.io/job-name'] === job),
    },
    destinationObjects: async () => undefined,
    runs: new DestinationRuns(),
    cluster,
    events: new EventRecorder({ cluster, log }),
    metrics: new SynclineMetrics(runtimeMetrics.registry),
    config: defaultConfig({
      namespaces: [ns],
      diffStore: { url: `file://${mkdtempSync(join(tmpdir(), 'syncline-deferred-'))}` },
    }),
    log,
    now: () => clock,
    capabilities: (type) => probeCapabilities(type),
    secrets: secretResolver({}),
  };
}

async function reconcileAt(at: Date, syncName = 'to-crm', cached: CacheOverrides = {}): Promise<Sync> {
  clock = at;
  await reconcileSync(await context(syncName, cached), await get<Sync>('syncs', syncName));
  return get<Sync>('syncs', syncName);
}

async function deleteJob(name: string): Promise<void> {
  await kube.must('DELETE', `/apis/batch/v1/namespaces/${ns}/jobs/${name}`, {
    propagationPolicy: 'Background',
  });
  deleted.add(name);
}

describe('deferred start of scheduled runs', () => {
  it('creates the Job without a status write, adopts it, and never re-creates a Job deleted before that', async () => {
    const created = new Date((await get<Sync>('syncs', 'to-crm')).metadata.creationTimestamp!);
    const minute = (n: number) => new Date(created.getTime() + n * 60_000);

    // The first run of a new Sync writes its status at once (there is no current status to keep).
    const first = await reconcileAt(minute(0));
    expect(first.status?.activeRun?.job).toBeDefined();
    await deleteJob(first.status!.activeRun!.job!);
    const idle = await reconcileAt(new Date(minute(0).getTime() + 1000));
    expect(idle.status?.activeRun).toBeUndefined();
    expect(idle.status?.lastRun?.reason).toBe('JobDeleted');
    expect(idle.status?.nextRunAt).toBe(minute(1).toISOString());

    // The next slot: a Job, and no status write.
    const startedAt = new Date(minute(1).getTime() + 250);
    const unwritten = await reconcileAt(startedAt);
    expect(unwritten.metadata.resourceVersion).toBe(idle.metadata.resourceVersion);
    const second = (await jobs()).filter((j) => j.metadata?.name !== first.status!.activeRun!.job);
    expect(second).toHaveLength(1);
    expect(second[0]!.metadata!.annotations![STARTED_AT_ANNOTATION]).toBe(startedAt.toISOString());

    // The Job's event brings the Sync back: it is adopted, with the start time the Job carries.
    const adopted = await reconcileAt(new Date(startedAt.getTime() + 500));
    expect(adopted.status?.activeRun).toMatchObject({
      job: second[0]!.metadata!.name,
      trigger: 'schedule',
      startedAt: startedAt.toISOString(),
    });
    expect(adopted.status?.nextRunAt).toBe(minute(2).toISOString());
    expect(adopted.status?.skippedRuns ?? 0).toBe(0);
    expect(adopted.status?.conditions?.find((c) => c.type === 'Running')?.status).toBe('True');
    await deleteJob(second[0]!.metadata!.name!);
    await reconcileAt(new Date(startedAt.getTime() + 1000));

    // The slot after: its Job is deleted before the start was written. It is recorded, not re-created.
    await reconcileAt(minute(2));
    const third = (await jobs()).map((j) => j.metadata!.name!);
    expect(third).toHaveLength(1);
    await deleteJob(third[0]!);
    const recorded = await reconcileAt(new Date(minute(2).getTime() + 1000));
    expect(await jobs()).toEqual([]);
    expect(recorded.status?.lastRun).toMatchObject({ job: third[0], result: 'Failed', reason: 'JobDeleted' });
    expect(recorded.status?.activeRun).toBeUndefined();
    expect(recorded.status?.nextRunAt).toBe(minute(3).toISOString());
    expect(recorded.status?.history?.map((r) => r.job)).toContain(third[0]);

    // A run whose pod was stuck on a known problem, and whose Job then went: it failed of that problem.
    await reconcileAt(minute(3));
    const stuck = await reconcileAt(new Date(minute(3).getTime() + 500));
    const job = stuck.status!.activeRun!.job!;
    const problem = "couldn't find key rotating in Secret crm";
    await kube.must(
      'PATCH',
      `/apis/syncline.io/v1alpha1/namespaces/${ns}/syncs/to-crm/status`,
      { status: { activeRun: { ...stuck.status!.activeRun, reason: 'SecretNotFound', message: problem } } },
      'application/merge-patch+json',
    );
    await deleteJob(job);
    const failed = await reconcileAt(new Date(minute(3).getTime() + 1000));
    expect(failed.status?.activeRun).toBeUndefined();
    expect(failed.status?.lastRun).toMatchObject({ job, result: 'Failed', reason: 'SecretNotFound' });
    expect(failed.status?.lastRun?.message).toContain(problem);
    expect(failed.status?.lastRun?.message).toContain('deleted before it finished');
  });
});

describe('a run stopped because its pod could not start', () => {
  it('stays failed of the pod problem while the Job cache still holds the Job it deleted', async () => {
    await kube.create('syncs', ns, {
      kind: 'Sync',
      metadata: { name: 'stuck', annotations: { 'syncline.io/run-requested-at': 'go' } },
      spec: { modelRef: { name: 'customers' }, destinationRef: { name: 'crm' }, mode: 'upsert' },
    });
    const started = await reconcileAt(new Date(), 'stuck');
    const job = started.status!.activeRun!.job!;
    const created = (await jobs()).find((j) => j.metadata?.name === job)!;
    expect(created).toBeDefined();
    // The pod waits on a missing Secret key, as a kubelet reports it.
    const pod: V1Pod = {
      metadata: {
        name: `${job}-pod`,
        namespace: ns,
        labels: { 'batch.kubernetes.io/job-name': job },
        creationTimestamp: created.metadata!.creationTimestamp!,
      },
      status: {
        phase: 'Pending',
        containerStatuses: [
          {
            name: 'runner',
            image: 'runner',
            imageID: '',
            ready: false,
            restartCount: 0,
            state: {
              waiting: {
                reason: 'CreateContainerConfigError',
                message: `couldn't find key rotating in Secret ${ns}/crm`,
              },
            },
          },
        ],
      },
    };
    const createdAt = new Date(String(created.metadata!.creationTimestamp)).getTime();
    const timeoutMs = defaultConfig().podStartTimeoutMs;

    // Past the pod start timeout: the failure is written, then the Job deleted.
    const stopped = await reconcileAt(new Date(createdAt + timeoutMs + 1000), 'stuck', { pods: [pod] });
    expect(stopped.status?.activeRun).toBeUndefined();
    expect(stopped.status?.lastRun).toMatchObject({ job, result: 'Failed', reason: 'SecretNotFound' });
    expect((await jobs()).map((j) => j.metadata?.name)).not.toContain(job);

    // The Sync's watch event arrives before the Job's: the cache has the new status and still the Job,
    // not yet finished. The run status recorded as finished is not adopted again (and then ended a
    // second time, as JobDeleted, once the Job's deletion arrives).
    const lagging = await reconcileAt(new Date(createdAt + timeoutMs + 1100), 'stuck', {
      jobs: [created],
      pods: [pod],
    });
    expect(lagging.metadata.resourceVersion).toBe(stopped.metadata.resourceVersion);
    const settled = await reconcileAt(new Date(createdAt + timeoutMs + 1200), 'stuck');
    expect(settled.status?.activeRun).toBeUndefined();
    expect(settled.status?.lastRun).toMatchObject({ job, result: 'Failed', reason: 'SecretNotFound' });
    expect(settled.status?.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('SecretNotFound');
  });
});
