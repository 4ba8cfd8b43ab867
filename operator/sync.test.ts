// The Sync reconciler's steps over an in-memory cluster (fake-cluster.ts); the real API server's
// behaviour is covered by sync-deferred-start.test.ts and test/kube/operator-reconcile.test.ts.
import { describe, expect, it } from 'vitest';
import { SynclineError } from '../core/errors.ts';
import { syncStatus, type Sync } from '../crds/index.ts';
import { fakeContext, type FakeContext } from './fake-cluster.ts';
import {
  completeJob,
  NS,
  onlyJob,
  putReferences,
  putSync,
  runningPod,
  secretMissingPod,
} from './fake-fixtures.ts';
import { observeActiveRun, CACHE_BEHIND } from './sync-active.ts';
import { jobsBeyondHistory, withFinishedRun } from './sync-history.ts';
import { startRun } from './sync-start.ts';
import { defersStart, syncPhase } from './sync-status.ts';
import { reconcileSync } from './sync.ts';

const current = (ctx: FakeContext, name = 'to-crm') => ctx.store.sync(NS, name)!;
const conditions = (sync: Sync) => sync.status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`);

function setup(spec: Partial<Sync['spec']> = {}): FakeContext {
  const ctx = fakeContext();
  putReferences(ctx.cluster);
  putSync(ctx.cluster, 'to-crm', spec);
  return ctx;
}

describe('reconcileSync over a fake cluster', () => {
  it('starts the due run as a Job, records it, and announces RunStarted only', async () => {
    const ctx = setup();
    const result = await reconcileSync(ctx, current(ctx));
    const job = onlyJob(ctx.cluster);
    const sync = current(ctx);
    expect(sync.status?.activeRun).toMatchObject({ job: job.metadata?.name, trigger: 'schedule' });
    expect(sync.status?.phase).toBe('Pending');
    expect(conditions(sync)).toEqual([
      'Ready=Unknown/FirstRunInProgress',
      'Reconciling=True/FirstRunInProgress',
      'Running=True/RunActive',
    ]);
    expect(ctx.events.reasons()).toEqual(['RunStarted']);
    expect(result).toMatchObject({ requeueAfterMs: expect.any(Number) });
  });

  it('records a finished run in status and history, with its own Event and no second one for Ready', async () => {
    const ctx = setup();
    await reconcileSync(ctx, current(ctx));
    const jobName = onlyJob(ctx.cluster).metadata!.name!;
    runningPod(ctx.cluster, jobName);
    await reconcileSync(ctx, current(ctx));
    expect(current(ctx).status?.phase).toBe('Querying');
    ctx.cluster.pods.length = 0;
    completeJob(ctx.cluster, jobName);
    await reconcileSync(ctx, current(ctx));
    const sync = current(ctx);
    expect(sync.status).toMatchObject({
      lastRun: { id: jobName, result: 'Succeeded' },
      history: [{ id: jobName }],
      phase: 'Succeeded',
      modelFingerprint: 'fp1',
      observedGeneration: 1,
    });
    expect(sync.status?.activeRun).toBeUndefined();
    expect(conditions(sync)).toEqual(['Ready=True/Succeeded', 'Running=False/Idle']);
    expect(ctx.events.reasons()).toEqual(['RunStarted', 'RunSucceeded']);
  });

  it('stalls on a missing Model with one Warning Event, however often it is reconciled', async () => {
    const ctx = setup({ modelRef: { name: 'nope' } });
    await reconcileSync(ctx, current(ctx));
    await reconcileSync(ctx, current(ctx));
    expect(conditions(current(ctx))).toEqual([
      'Ready=False/ModelNotFound',
      'Stalled=True/ModelNotFound',
      'Running=False/Idle',
    ]);
    expect(ctx.cluster.jobs.size).toBe(0);
    expect(ctx.events.recorded).toEqual([
      expect.objectContaining({ type: 'Warning', reason: 'ModelNotFound' }),
    ]);
  });

  it('keeps a capability probe that gave no answer transient: Ready=False, backoff, re-probed', async () => {
    let probes = 0;
    const ctx = fakeContext({
      capabilities: async () => {
        if (++probes === 1)
          throw new SynclineError('CapabilityProbeFailed', 'the probe timed out', { retryable: true });
        return {
          modes: ['upsert'],
          deleteBehaviors: ['ignore'],
          comparesAllColumns: true,
          defaultBatchSize: 100,
        };
      },
    });
    putReferences(ctx.cluster);
    putSync(ctx.cluster);
    expect(await reconcileSync(ctx, current(ctx))).toEqual({ requeueWithBackoff: true });
    expect(conditions(current(ctx))).toEqual([
      'Ready=False/CapabilityProbeFailed',
      'Reconciling=True/CapabilityProbeFailed',
      'Running=False/Idle',
    ]);
    expect(ctx.cluster.jobs.size).toBe(0);
    // The retry probes again, and the run starts.
    await reconcileSync(ctx, current(ctx));
    expect(probes).toBe(2);
    expect(ctx.cluster.jobs.size).toBe(1);
    expect(conditions(current(ctx))).not.toContain('Stalled=True/CapabilityProbeFailed');
  });

  it('runs after a failed Sync with afterSyncs onFailure continue, and waits for its success with stop', async () => {
    const failed = {
      lastSuccessfulRunAt: '2025-03-01T09:00:00Z',
      lastRun: {
        id: 'upstream-1',
        startedAt: '2025-03-01T09:50:00Z',
        finishedAt: '2025-03-01T09:55:00Z',
        result: 'Failed',
      },
    };
    const lastRun = {
      id: 'to-crm-0',
      startedAt: '2025-03-01T09:30:00Z',
      finishedAt: '2025-03-01T09:31:00Z',
      result: 'Succeeded',
    };
    for (const [onFailure, runs] of [
      ['continue', 1],
      ['stop', 0],
    ] as const) {
      const ctx = fakeContext();
      putReferences(ctx.cluster);
      putSync(ctx.cluster, 'upstream', { schedule: {} }, failed);
      const after = { afterSyncs: { names: ['upstream'], onFailure } };
      putSync(ctx.cluster, 'to-crm', { schedule: { triggers: [after] } }, { lastRun, history: [lastRun] });
      await reconcileSync(ctx, current(ctx));
      expect(ctx.cluster.jobs.size, onFailure).toBe(runs);
      if (runs) expect(current(ctx).status?.activeRun).toMatchObject({ trigger: 'dependency' });
      expect(current(ctx).status?.schedule).toBe('after dependencies');
    }
  });

  it('fails a run of a Job deleted before it finished (JobDeleted)', async () => {
    const ctx = setup();
    await reconcileSync(ctx, current(ctx));
    const jobName = onlyJob(ctx.cluster).metadata!.name!;
    ctx.cluster.jobs.clear();
    await reconcileSync(ctx, current(ctx));
    expect(current(ctx).status?.lastRun).toMatchObject({
      id: jobName,
      result: 'Failed',
      reason: 'JobDeleted',
    });
    expect(ctx.events.reasons()).toEqual(['RunStarted', 'JobDeleted']);
  });
});

describe('the active run (sync-active.ts)', () => {
  it('fails a run whose pod cannot start past the timeout, deleting its Job only after the write', async () => {
    const ctx = setup();
    await reconcileSync(ctx, current(ctx));
    const jobName = onlyJob(ctx.cluster).metadata!.name!;
    secretMissingPod(ctx.cluster, jobName);
    const sync = current(ctx);
    const run = {
      sync,
      namespace: NS,
      name: 'to-crm',
      status: sync.status!,
      jobs: ctx.store.jobs(NS, {}),
      historyLimit: 10,
    };
    const early = await observeActiveRun(ctx, { ...run, now: ctx.now() });
    expect(early).toMatchObject({
      active: { reason: 'SecretNotFound' },
      warning: { reason: 'SecretNotFound' },
    });
    const late = new Date(ctx.now().getTime() + ctx.config.podStartTimeoutMs + 1000);
    const stopped = await observeActiveRun(ctx, { ...run, now: late });
    expect(stopped).toMatchObject({
      finished: { record: { result: 'Failed', reason: 'SecretNotFound' } },
      deleteAfterWrite: [jobName],
    });
  });

  it('waits for the cache when the Job is gone because of a newer status write', async () => {
    const ctx = setup();
    await reconcileSync(ctx, current(ctx));
    const sync = current(ctx);
    ctx.cluster.jobs.clear();
    await ctx.cluster.patchStatus('syncs', NS, 'to-crm', { schedule: 'x' });
    const run = {
      sync,
      namespace: NS,
      name: 'to-crm',
      now: ctx.now(),
      status: sync.status!,
      jobs: [],
      historyLimit: 10,
    };
    expect(await observeActiveRun(ctx, run)).toBe(CACHE_BEHIND);
  });
});

describe('starting a run (sync-start.ts)', () => {
  it('never re-creates a Job it saw deleted, and refuses a Job of its name that is not its own', async () => {
    const ctx = setup();
    const sync = current(ctx);
    const run = {
      sync,
      namespace: NS,
      name: 'to-crm',
      now: ctx.now(),
      status: {},
      jobs: [],
      historyLimit: 10,
    };
    const start = { trigger: 'manual' as const, fullResync: false, scheduledAt: ctx.now(), key: 'm-abc' };
    const refs = {
      model: ctx.store.model(NS, 'customers')!,
      destination: ctx.store.destination(NS, 'crm')!,
      dependencies: [],
      lookupSync: () => undefined,
    };
    ctx.cluster.deletedJobs.add(`${NS}/to-crm-m-abc`);
    expect(await startRun(ctx, run, start, refs)).toMatchObject({
      finished: { record: { reason: 'JobDeleted' } },
      handled: true,
    });
    ctx.cluster.deletedJobs.clear();
    ctx.cluster.jobs.set(`${NS}/to-crm-m-abc`, { metadata: { name: 'to-crm-m-abc', namespace: NS } });
    expect(await startRun(ctx, run, start, refs)).toMatchObject({
      planError: { reason: 'RunNotStarted' },
      handled: false,
    });
  });
});

describe('history and status (sync-history.ts, sync-status.ts)', () => {
  it('keeps historyLimit records and Jobs, newest first, never the active one', () => {
    let status = {};
    for (const id of ['a', 'b', 'c'])
      status = withFinishedRun(
        status,
        { record: { id, job: id, result: 'Succeeded', finishedAt: `t-${id}` } },
        2,
      );
    expect(status).toMatchObject({ history: [{ id: 'c' }, { id: 'b' }], lastSuccessfulRunAt: 't-c' });
    const job = (name: string, at: string) => ({
      metadata: { name, creationTimestamp: at as never },
      status: { conditions: [{ type: 'Complete', status: 'True' }] },
    });
    const jobs = [
      job('a', '2026-01-01T00:01:00Z'),
      job('b', '2026-01-01T00:02:00Z'),
      job('c', '2026-01-01T00:03:00Z'),
      job('d', '2026-01-01T00:04:00Z'),
    ];
    expect(jobsBeyondHistory({ jobs, historyLimit: 2 } as never, 'd')).toEqual(['a']);
  });

  it('documents as phase exactly the values the operator writes', () => {
    // The runner reports nothing before it ends, so Diffing and Delivering could never be written.
    const written = new Set([
      syncPhase(undefined, false, undefined),
      syncPhase({ id: 'r' }, false, undefined),
      syncPhase({ id: 'r' }, true, undefined),
      syncPhase(undefined, false, { id: 'r', result: 'Succeeded' }),
      syncPhase(undefined, false, { id: 'r', result: 'Failed' }),
    ]);
    expect([...syncStatus.shape.phase.unwrap().options].sort()).toEqual([...written].sort());
  });

  it('writes Pending, Querying, Succeeded or Failed as phase, and defers only a plain scheduled start', () => {
    expect(syncPhase({ id: 'r' }, false, undefined)).toBe('Pending');
    expect(syncPhase({ id: 'r' }, true, undefined)).toBe('Querying');
    expect(syncPhase(undefined, false, { id: 'r', result: 'Failed' })).toBe('Failed');
    const run = { sync: { metadata: { generation: 2 } }, status: { observedGeneration: 2 } } as never;
    expect(defersStart(run, { created: true, trigger: 'schedule', announcesAnything: false })).toBe(true);
    expect(defersStart(run, { created: true, trigger: 'manual', announcesAnything: false })).toBe(false);
    expect(defersStart(run, { created: true, trigger: 'schedule', announcesAnything: true })).toBe(false);
  });
});
