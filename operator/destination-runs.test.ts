// Runs of several Syncs against one Destination share its limit (rateLimit.maxConcurrentRuns).
import type { V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { Destination, Sync } from '../crds/index.ts';
import { maxConcurrentRuns, runsToWaitFor } from './destination-runs.ts';
import { fakeContext, type FakeContext } from './fake-cluster.ts';
import { completeJob, NS, putReferences, putSync } from './fake-fixtures.ts';
import { reconcileSync } from './sync.ts';
import { destination, sync } from './testdata/fixtures.ts';

const job = (name: string, finished = false): V1Job => ({
  metadata: { name },
  ...(finished ? { status: { conditions: [{ type: 'Complete', status: 'True' }] } } : {}),
});

describe('the decision', () => {
  const a = sync({}, { name: 'a' });
  const b = sync({}, { name: 'b' });
  const c = sync({}, { name: 'c' });
  const decide = (over: Partial<Parameters<typeof runsToWaitFor>[0]>) =>
    runsToWaitFor({
      sync: a,
      limit: 1,
      siblings: [a, b, c],
      jobsOf: () => [],
      reserved: [],
      jobDeleted: () => false,
      ...over,
    });

  it('unbounded destinations never wait', () => {
    expect(decide({ limit: undefined, jobsOf: (s) => [job(`${s.metadata.name}-1`)] })).toBeUndefined();
  });

  it('waits while the limit is reached by runs of other Syncs, not by its own or finished ones', () => {
    const jobs: Record<string, V1Job[]> = { a: [job('a-1')], b: [job('b-1', true), job('b-2')], c: [] };
    const jobsOf = (s: Sync) => jobs[s.metadata.name] ?? [];
    expect(decide({ jobsOf })).toEqual([{ sync: 'b', job: 'b-2' }]);
    expect(decide({ jobsOf, limit: 2 })).toBeUndefined();
    jobs['c'] = [job('c-1')];
    expect(decide({ jobsOf, limit: 2 })).toHaveLength(2);
    jobs['b'] = [job('b-2', true)];
    jobs['c'] = [];
    expect(decide({ jobsOf })).toBeUndefined();
  });

  it('counts a Job this process just created until the cache has it (or saw it deleted)', () => {
    const reserved = [{ sync: 'b', job: 'b-9' }];
    expect(decide({ reserved })).toEqual(reserved);
    expect(
      decide({ reserved, jobsOf: (s) => (s.metadata.name === 'b' ? [job('b-9', true)] : []) }),
    ).toBeUndefined();
    expect(decide({ reserved, jobDeleted: () => true })).toBeUndefined();
    expect(decide({ reserved: [{ sync: 'a', job: 'a-9' }] })).toBeUndefined();
  });

  it('defaults to 1 for a shared API quota, unbounded otherwise; the Destination decides', () => {
    const d = (maxRuns?: number): Destination => {
      const base = destination();
      return {
        ...base,
        spec: {
          ...base.spec,
          ...(maxRuns ? { rateLimit: { concurrency: 4, maxConcurrentRuns: maxRuns } } : {}),
        },
      };
    };
    expect(maxConcurrentRuns(d(), { sharedQuota: true })).toBe(1);
    expect(maxConcurrentRuns(d(), {})).toBeUndefined();
    expect(maxConcurrentRuns(d(), undefined)).toBeUndefined();
    expect(maxConcurrentRuns(d(3), { sharedQuota: true })).toBe(3);
    expect(maxConcurrentRuns(d(2), {})).toBe(2);
  });
});

describe('over a fake cluster', () => {
  const conditions = (ctx: FakeContext, name: string) =>
    ctx.store.sync(NS, name)?.status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`);
  const runJobs = (ctx: FakeContext, sync: string) =>
    [...ctx.cluster.jobs.values()].filter((j) => j.metadata?.labels?.['syncline.io/sync'] === sync);

  function setup(capabilities: { sharedQuota?: boolean } = { sharedQuota: true }): FakeContext {
    const ctx = fakeContext({
      capabilities: async () => ({
        modes: ['upsert', 'update', 'insert', 'all', 'archive'],
        deleteBehaviors: ['ignore', 'clear', 'delete'],
        comparesAllColumns: true,
        defaultBatchSize: 100,
        ...capabilities,
      }),
    });
    putReferences(ctx.cluster);
    putSync(ctx.cluster, 'first');
    putSync(ctx.cluster, 'second');
    return ctx;
  }

  it('keeps the second due run pending while the first runs, says why, and starts it when that ends', async () => {
    const ctx = setup();
    await reconcileSync(ctx, ctx.store.sync(NS, 'first')!);
    const [running] = runJobs(ctx, 'first');
    expect(running).toBeDefined();

    const waiting = await reconcileSync(ctx, ctx.store.sync(NS, 'second')!);
    expect(runJobs(ctx, 'second')).toHaveLength(0);
    const second = ctx.store.sync(NS, 'second')!;
    expect(conditions(ctx, 'second')).toEqual([
      'Ready=True/Scheduled',
      'Reconciling=True/DestinationBusy',
      'Running=False/Idle',
    ]);
    expect(second.status?.conditions?.find((c) => c.type === 'Reconciling')?.message).toBe(
      `the due run waits for run ${running!.metadata!.name} (Sync first) of Destination "crm" to end ` +
        '(rateLimit.maxConcurrentRuns 1); it starts when one does',
    );
    // Pending: the due slot stays due, and the end of the first run brings it back.
    expect(new Date(second.status!.nextRunAt!).getTime()).toBeLessThanOrEqual(ctx.now().getTime());
    expect(ctx.runs.waiters(`${NS}/crm`)).toEqual([`${NS}/second`]);
    expect(waiting).toEqual({ requeueAfterMs: 30_005 });
    // No Warning: waiting for a turn is not a problem.
    expect(ctx.events.recorded.filter((e) => e.object === 'second' && e.type === 'Warning')).toEqual([]);

    completeJob(ctx.cluster, running!.metadata!.name!);
    await reconcileSync(ctx, ctx.store.sync(NS, 'second')!);
    expect(runJobs(ctx, 'second')).toHaveLength(1);
    // The start reaches status when the new Job's event brings the Sync back (a deferred start).
    await reconcileSync(ctx, ctx.store.sync(NS, 'second')!);
    expect(conditions(ctx, 'second')).toEqual([
      'Ready=Unknown/FirstRunInProgress',
      'Reconciling=True/FirstRunInProgress',
      'Running=True/RunActive',
    ]);
    expect(ctx.runs.waiters(`${NS}/crm`)).toEqual([]);
  });

  it('counts a run it just started before the Job reaches the cache', async () => {
    const ctx = setup();
    const store = ctx.store;
    // A cache that has not seen any Job yet.
    ctx.store = { ...store, jobs: () => [] };
    await reconcileSync(ctx, store.sync(NS, 'first')!);
    await reconcileSync(ctx, store.sync(NS, 'second')!);
    expect(ctx.cluster.jobs.size).toBe(1);
    expect(conditions(ctx, 'second')).toContain('Reconciling=True/DestinationBusy');
  });

  it('changes nothing for destinations without a shared quota, and honours maxConcurrentRuns', async () => {
    const ctx = setup({});
    await reconcileSync(ctx, ctx.store.sync(NS, 'first')!);
    await reconcileSync(ctx, ctx.store.sync(NS, 'second')!);
    expect(ctx.cluster.jobs.size).toBe(2);

    const bounded = setup({});
    const stored = bounded.cluster.objects.get(`destinations/${NS}/crm`)!;
    (stored as unknown as { spec: Destination['spec'] }).spec.rateLimit = {
      concurrency: 4,
      maxConcurrentRuns: 1,
    };
    await reconcileSync(bounded, bounded.store.sync(NS, 'first')!);
    await reconcileSync(bounded, bounded.store.sync(NS, 'second')!);
    expect(bounded.cluster.jobs.size).toBe(1);
  });
});
