// Objects for the reconcilers' unit tests over fake-cluster.ts: a Ready Source, Model and Destination,
// and a Sync that reads them, put in a FakeCluster; and the ways a run's Job ends.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { Condition, Sync } from '../crds/index.ts';
import { checkHashOf } from './jobs.ts';
import type { FakeCluster } from './fake-cluster.ts';

export const NS = 'team';

export function readyCondition(reason: string): Condition {
  return {
    type: 'Ready',
    status: 'True',
    observedGeneration: 1,
    lastTransitionTime: '2026-01-01T00:00:00.000Z',
    reason,
    message: 'ready',
  };
}

/** A checked, Ready Source `warehouse`, Model `customers` and Destination `crm` in namespace `team`. */
export function putReferences(cluster: FakeCluster): void {
  const source = cluster.put('sources', {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Source',
    metadata: { name: 'warehouse', namespace: NS },
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
    status: { conditions: [readyCondition('ConnectionSucceeded')] },
  } as never) as never;
  const destination = cluster.put('destinations', {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Destination',
    metadata: { name: 'crm', namespace: NS },
    spec: { type: 'http', http: { url: 'http://127.0.0.1:9/contacts' } },
    status: { conditions: [readyCondition('ConnectionSucceeded')] },
  } as never) as never;
  for (const [plural, object] of [
    ['sources', source],
    ['destinations', destination],
  ] as const) {
    const stored = cluster.objects.get(
      `${plural}/${NS}/${(object as { metadata: { name: string } }).metadata.name}`,
    )!;
    stored.status = {
      ...stored.status,
      observedGeneration: 1,
      checkedHash: checkHashOf(object),
      lastCheckedAt: '2026-01-01T11:59:00.000Z',
    };
  }
  cluster.put('models', {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Model',
    metadata: { name: 'customers', namespace: NS },
    spec: { sourceRef: { name: 'warehouse' }, table: 'customers', primaryKey: 'id' },
    status: { observedGeneration: 1, conditions: [readyCondition('SourceReady')] },
  } as never);
}

/** A Sync of `customers` to `crm` (every minute unless `spec` says otherwise), stored in the cluster. */
export function putSync(
  cluster: FakeCluster,
  name = 'to-crm',
  spec: Partial<Sync['spec']> = {},
  status?: object,
): Sync {
  return cluster.put('syncs', {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Sync',
    metadata: { name, namespace: NS },
    spec: {
      modelRef: { name: 'customers' },
      destinationRef: { name: 'crm' },
      mode: 'upsert',
      schedule: { interval: '1m' },
      ...spec,
    },
    ...(status ? { status } : {}),
  } as Sync);
}

/** The runner's compact summary of a run. */
export function runnerSummary(runId: string, result = 'Succeeded'): Record<string, unknown> {
  return {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunSummary',
    runId,
    namespace: NS,
    sync: 'to-crm',
    mode: 'upsert',
    startedAt: '2026-01-01T12:00:01Z',
    finishedAt: '2026-01-01T12:00:09Z',
    result,
    message: '3 rows delivered',
    counts: { queried: 3, added: 3, changed: 0, removed: 0, delivered: 3, failed: 0, skipped: 0 },
    operations: { upsert: 3 },
    timings: {},
    columns: [],
    modelFingerprint: 'fp1',
  };
}

function pod(job: string, state: object): V1Pod {
  return {
    metadata: { name: `${job}-x`, namespace: NS, labels: { 'batch.kubernetes.io/job-name': job } },
    status: {
      containerStatuses: [{ name: 'runner', state, ready: false, restartCount: 0, image: 'i', imageID: '' }],
    },
  } as V1Pod;
}

/** The Job ends as Kubernetes reports it: Complete, its pod terminated with the runner's summary. */
export function completeJob(cluster: FakeCluster, jobName: string, summary = runnerSummary(jobName)): void {
  const job = cluster.jobs.get(`${NS}/${jobName}`)!;
  job.status = {
    startTime: '2026-01-01T12:00:00Z' as never,
    completionTime: '2026-01-01T12:00:10Z' as never,
    conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: '2026-01-01T12:00:10Z' as never }],
  };
  cluster.pods.push(pod(jobName, { terminated: { exitCode: 0, message: JSON.stringify(summary) } }));
}

/** The runner container is running. */
export function runningPod(cluster: FakeCluster, jobName: string): void {
  cluster.pods.push(pod(jobName, { running: { startedAt: '2026-01-01T12:00:01Z' } }));
}

/** The pod waits on a Secret that does not exist (stuck before the runner starts). */
export function secretMissingPod(cluster: FakeCluster, jobName: string): void {
  cluster.pods.push(
    pod(jobName, { waiting: { reason: 'CreateContainerConfigError', message: 'secret "pg" not found' } }),
  );
}

export function onlyJob(cluster: FakeCluster): V1Job {
  const jobs = [...cluster.jobs.values()];
  if (jobs.length !== 1) throw new Error(`expected one Job, found ${jobs.length}`);
  return jobs[0]!;
}
