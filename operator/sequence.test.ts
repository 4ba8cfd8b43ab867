// The Sequence reconciler over an in-memory cluster (fake-cluster.ts), with the real Sync reconciler
// starting and finishing the runs its steps request: the order of the steps, the failure rules, replays
// of a request after a lost status write or on a new leader, a missing Sync, a paused one.
import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { SynclineError } from '../core/errors.ts';
import { sequenceStatus, type Sequence, type SequenceSpec, type Sync } from '../crds/index.ts';
import { readLedger } from './api/ledger.ts';
import { fakeContext, type FakeContext } from './fake-cluster.ts';
import { completeJob, NS, putReferences } from './fake-fixtures.ts';
import { RESYNC_REQUESTED_ANNOTATION, RUN_REQUESTED_ANNOTATION } from './schedule.ts';
import { finishedRun } from './sequence-steps.ts';
import { reconcileSequence } from './sequence.ts';
import { reconcileSync } from './sync.ts';

const SEQ = 'crm-load';
const sync = (ctx: FakeContext, name: string) => ctx.store.sync(NS, name)!;
const sequence = (ctx: FakeContext) => ctx.cluster.get<Sequence>('sequences', NS, SEQ)!;
const conditions = (obj: { status?: { conditions?: { type: string; status: string; reason: string }[] } }) =>
  obj.status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`);
const steps = (ctx: FakeContext) =>
  (sequence(ctx).status?.activeRun ?? sequence(ctx).status?.lastRun)?.steps.map(
    (s) => `${s.sync}:${s.phase}`,
  );
const requested = (ctx: FakeContext, name: string) =>
  sync(ctx, name).metadata.annotations?.[RUN_REQUESTED_ANNOTATION];
const annotations = (ctx: FakeContext) => ctx.cluster.calls.filter((c) => c.startsWith('patchAnnotations'));

/** Syncs run only on request (no schedule), and a Sequence of them, asked to run once. */
function setup(
  names: string[],
  spec: Partial<SequenceSpec> = {},
  options: { request?: boolean; paused?: string[] } = {},
): FakeContext {
  const ctx = fakeContext();
  putReferences(ctx.cluster);
  for (const name of names)
    ctx.cluster.put('syncs', {
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'Sync',
      metadata: { name, namespace: NS },
      spec: {
        modelRef: { name: 'customers' },
        destinationRef: { name: 'crm' },
        mode: 'upsert',
        ...(options.paused?.includes(name) ? { paused: true } : {}),
      },
    } as Sync);
  ctx.cluster.put('sequences', {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Sequence',
    metadata: {
      name: SEQ,
      namespace: NS,
      ...(options.request === false
        ? {}
        : { annotations: { [RUN_REQUESTED_ANNOTATION]: '2026-01-01T11:59:00Z' } }),
    },
    spec: { steps: names.map((name) => ({ sync: name })), ...spec },
  } as Sequence);
  return ctx;
}

const reconcile = (ctx: FakeContext) => reconcileSequence(ctx, sequence(ctx));

/** The Sync's reconciler acts on the request (starts the Job) and the Sequence looks again. */
async function startStep(ctx: FakeContext, name: string): Promise<string> {
  await reconcileSync(ctx, sync(ctx, name));
  const job = sync(ctx, name).status?.activeRun?.job;
  if (!job) throw new Error(`no run of ${name} started: ${JSON.stringify(sync(ctx, name).status)}`);
  await reconcile(ctx);
  return job;
}

/** The step's run ends (the runner's summary, or a partial report of a failure), then both look. */
async function finishStep(
  ctx: FakeContext,
  name: string,
  failure?: { reason: string; message: string },
): Promise<void> {
  const job = sync(ctx, name).status!.activeRun!.job!;
  if (failure) failJob(ctx, job, failure);
  else completeJob(ctx.cluster, job);
  await reconcileSync(ctx, sync(ctx, name));
  await reconcile(ctx);
}

function failJob(ctx: FakeContext, jobName: string, failure: { reason: string; message: string }): void {
  const job = ctx.cluster.jobs.get(`${NS}/${jobName}`)!;
  job.status = {
    startTime: '2026-01-01T12:00:00Z' as never,
    conditions: [{ type: 'Failed', status: 'True', lastTransitionTime: '2026-01-01T12:00:10Z' as never }],
  };
  ctx.cluster.pods.push({
    metadata: { name: `${jobName}-x`, namespace: NS, labels: { 'batch.kubernetes.io/job-name': jobName } },
    status: {
      containerStatuses: [
        {
          name: 'runner',
          state: { terminated: { exitCode: 1, message: JSON.stringify({ result: 'Failed', ...failure }) } },
          ready: false,
          restartCount: 0,
          image: 'i',
          imageID: '',
        },
      ],
    },
  } as V1Pod);
}

const QUERY_FAILED = { reason: 'SourceQueryFailed', message: 'column "nope" does not exist' };

describe('reconcileSequence over a fake cluster', () => {
  it('runs three steps in order, one at a time, and records the run in status and history', async () => {
    const ctx = setup(['accounts', 'contacts', 'deals']);
    await reconcile(ctx);
    expect(steps(ctx)).toEqual(['accounts:Pending', 'contacts:Waiting', 'deals:Waiting']);
    expect(requested(ctx, 'accounts')).toMatch(/^sequence-/);
    expect(requested(ctx, 'contacts')).toBeUndefined();
    expect(conditions(sequence(ctx))).toEqual([
      'Ready=Unknown/FirstRunInProgress',
      'Reconciling=True/FirstRunInProgress',
      'Running=True/RunActive',
    ]);

    await startStep(ctx, 'accounts');
    expect(steps(ctx)).toEqual(['accounts:Running', 'contacts:Waiting', 'deals:Waiting']);
    await reconcile(ctx); // nothing new: contacts waits while accounts runs
    expect(requested(ctx, 'contacts')).toBeUndefined();

    await finishStep(ctx, 'accounts');
    expect(steps(ctx)).toEqual(['accounts:Succeeded', 'contacts:Pending', 'deals:Waiting']);
    expect(requested(ctx, 'deals')).toBeUndefined();
    await startStep(ctx, 'contacts');
    await finishStep(ctx, 'contacts');
    await startStep(ctx, 'deals');
    await finishStep(ctx, 'deals');

    const status = sequence(ctx).status!;
    expect(sequenceStatus.safeParse(status).success).toBe(true);
    expect(status.activeRun).toBeUndefined();
    expect(status).toMatchObject({
      phase: 'Succeeded',
      order: 'accounts, contacts, deals',
      schedule: 'manual',
      handledRunRequest: '2026-01-01T11:59:00Z',
      lastRun: { trigger: 'manual', result: 'Succeeded', message: 'all 3 step(s) succeeded' },
    });
    expect(status.history?.map((r) => r.id)).toEqual([status.lastRun?.id]);
    expect(steps(ctx)).toEqual(['accounts:Succeeded', 'contacts:Succeeded', 'deals:Succeeded']);
    // Each step names the run of its Sync, a run the Sync's status records as triggered by the sequence.
    for (const [i, name] of ['accounts', 'contacts', 'deals'].entries()) {
      const runId = status.lastRun?.steps[i]?.runId;
      expect(sync(ctx, name).status?.lastRun).toMatchObject({ id: runId, trigger: 'sequence' });
    }
    const jobs = ctx.cluster.calls.filter((c) => c.startsWith('createJob')).map((c) => c.split('/')[1]);
    expect(jobs.map((j) => j?.split('-m-')[0])).toEqual(['accounts', 'contacts', 'deals']);
    expect(conditions(sequence(ctx))).toEqual(['Ready=True/Succeeded', 'Running=False/Idle']);
    const own = ctx.events.recorded.filter((e) => e.object === SEQ);
    expect(own.map((e) => `${e.type}/${e.reason}`)).toEqual(['Normal/RunStarted', 'Normal/RunSucceeded']);
    expect(own[0]?.message).toContain('accounts, contacts, deals');

    // Nothing more to do, however often it is reconciled.
    const calls = ctx.cluster.calls.length;
    await reconcile(ctx);
    expect(ctx.cluster.calls.length).toBe(calls);
  });

  it('a failed step with onFailure stop ends the run Failed, naming the step, and never requests the next', async () => {
    const ctx = setup(['accounts', 'contacts']);
    await reconcile(ctx);
    await startStep(ctx, 'accounts');
    await finishStep(ctx, 'accounts', QUERY_FAILED);

    const status = sequence(ctx).status!;
    expect(status.activeRun).toBeUndefined();
    expect(status.lastRun).toMatchObject({ result: 'Failed', reason: 'SourceQueryFailed' });
    expect(status.lastRun?.message).toBe(
      'step 1 of 2 (accounts) failed: column "nope" does not exist; the 1 step(s) after it did not run',
    );
    expect(steps(ctx)).toEqual(['accounts:Failed', 'contacts:Skipped']);
    expect(requested(ctx, 'contacts')).toBeUndefined();
    expect(status.phase).toBe('Failed');
    // SourceQueryFailed needs a person: Stalled, with the run's own Warning Event and no second one.
    expect(conditions(sequence(ctx))).toEqual([
      'Ready=False/SourceQueryFailed',
      'Running=False/Idle',
      'Stalled=True/SourceQueryFailed',
    ]);
    const own = ctx.events.recorded.filter((e) => e.object === SEQ);
    expect(own.map((e) => `${e.type}/${e.reason}`)).toEqual([
      'Normal/RunStarted',
      'Warning/SourceQueryFailed',
    ]);
    expect(own[1]?.message).toContain('step 1 of 2 (accounts) failed');
  });

  it('a failed step with onFailure continue lets the next one run; the run PartiallySucceeded', async () => {
    const ctx = setup(['accounts', 'contacts']);
    const seq = ctx.cluster.objects.get(`sequences/${NS}/${SEQ}`)!;
    (seq['spec'] as SequenceSpec).steps[0]!.onFailure = 'continue';
    await reconcile(ctx);
    await startStep(ctx, 'accounts');
    await finishStep(ctx, 'accounts', QUERY_FAILED);
    expect(steps(ctx)).toEqual(['accounts:Failed', 'contacts:Pending']);
    await startStep(ctx, 'contacts');
    await finishStep(ctx, 'contacts');

    const lastRun = sequence(ctx).status?.lastRun;
    expect(lastRun).toMatchObject({ result: 'PartiallySucceeded' });
    expect(lastRun?.message).toBe('step 1 of 2 (accounts) failed (onFailure: continue): SourceQueryFailed');
    expect(lastRun?.steps[0]).toMatchObject({ phase: 'Failed', onFailure: 'continue', ...QUERY_FAILED });
    expect(conditions(sequence(ctx))).toEqual(['Ready=True/PartiallySucceeded', 'Running=False/Idle']);
    expect(ctx.events.recorded.filter((e) => e.object === SEQ).map((e) => e.reason)).toEqual([
      'RunStarted',
      'RunPartiallySucceeded',
    ]);
  });

  it('asked again after a lost status write, or by a new leader, requests nothing new', async () => {
    const ctx = setup(['accounts', 'contacts']);
    ctx.cluster.failNext.patchStatus = new SynclineError('KubeApiConflict', 'conflict', { retryable: true });
    await expect(reconcile(ctx)).rejects.toThrow('conflict');
    const first = requested(ctx, 'accounts');
    expect(first).toMatch(/^sequence-/);
    expect(sequence(ctx).status).toBeUndefined();

    await reconcile(ctx); // the same run (its id comes from the request), the same key: a replay
    expect(annotations(ctx)).toHaveLength(1);
    expect(requested(ctx, 'accounts')).toBe(first);
    expect(readLedger(sync(ctx, 'accounts'))).toHaveLength(1);
    const runId = sequence(ctx).status?.activeRun?.steps[0]?.runId;
    expect(runId).toBe(readLedger(sync(ctx, 'accounts'))[0]?.id);

    // The next step's request is lost too, and a new leader (a fresh process, no memory) takes over.
    await startStep(ctx, 'accounts');
    const before = structuredClone(sequence(ctx));
    completeJob(ctx.cluster, sync(ctx, 'accounts').status!.activeRun!.job!);
    await reconcileSync(ctx, sync(ctx, 'accounts'));
    ctx.cluster.failNext.patchStatus = new SynclineError('KubeApiConflict', 'conflict', { retryable: true });
    await expect(reconcile(ctx)).rejects.toThrow('conflict');
    expect(annotations(ctx)).toHaveLength(2);
    const leader = fakeContext({ cluster: ctx.cluster });
    await reconcileSequence(leader, { ...sequence(ctx), status: before.status! });
    expect(annotations(ctx)).toHaveLength(2);
    expect(readLedger(sync(ctx, 'contacts'))).toHaveLength(1);
    expect(steps(ctx)).toEqual(['accounts:Succeeded', 'contacts:Pending']);
    expect(sequence(ctx).status?.activeRun?.steps[1]?.runId).toBe(readLedger(sync(ctx, 'contacts'))[0]?.id);
  });

  it('stalls when a step names a Sync that does not exist, and starts no run', async () => {
    const ctx = setup(['accounts']);
    const seq = ctx.cluster.objects.get(`sequences/${NS}/${SEQ}`)!;
    (seq['spec'] as SequenceSpec).steps.push({ sync: 'nope', onFailure: 'stop' });
    await reconcile(ctx);
    await reconcile(ctx);
    const status = sequence(ctx).status!;
    expect(conditions(sequence(ctx))).toEqual([
      'Ready=False/SequenceStepNotFound',
      'Stalled=True/SequenceStepNotFound',
      'Running=False/Idle',
    ]);
    const stalled = status.conditions?.find((c) => c.type === 'Stalled');
    expect(stalled?.message).toBe(
      'step 2 (nope) of 2 names a Sync that does not exist in namespace team: create it, or fix spec.steps[].sync',
    );
    expect(status.activeRun).toBeUndefined();
    expect(status.handledRunRequest).toBeUndefined(); // the request waits for the fix
    expect(annotations(ctx)).toEqual([]);
    expect(ctx.events.reasons()).toEqual(['SequenceStepNotFound']); // once, from the status writer

    // Once the Sync exists, the pending request starts the run.
    ctx.cluster.put('syncs', { ...sync(ctx, 'accounts'), metadata: { name: 'nope', namespace: NS } });
    await reconcile(ctx);
    expect(steps(ctx)).toEqual(['accounts:Pending', 'nope:Waiting']);
  });

  it('a step whose Sync is paused waits, and the Running condition says why', async () => {
    const ctx = setup(['accounts', 'contacts'], {}, { paused: ['accounts'] });
    await reconcile(ctx);
    await reconcileSync(ctx, sync(ctx, 'accounts')); // paused: no Job
    expect(ctx.cluster.jobs.size).toBe(0);
    await reconcile(ctx);
    expect(steps(ctx)).toEqual(['accounts:Pending', 'contacts:Waiting']);
    const running = sequence(ctx).status?.conditions?.find((c) => c.type === 'Running');
    expect(running?.message).toContain('the Sync accounts is paused');
    expect(running?.message).toContain('until its spec.paused is false');

    const stored = ctx.cluster.objects.get(`syncs/${NS}/accounts`)!;
    (stored['spec'] as Sync['spec']).paused = false;
    await startStep(ctx, 'accounts');
    expect(steps(ctx)).toEqual(['accounts:Running', 'contacts:Waiting']);
  });

  it('follows a step run that a full resync of its Sync superseded', async () => {
    const ctx = setup(['accounts', 'contacts']);
    await reconcile(ctx);
    const stored = ctx.cluster.objects.get(`syncs/${NS}/accounts`)!;
    const meta = stored.metadata as unknown as { annotations: Record<string, string> };
    meta.annotations[RESYNC_REQUESTED_ANNOTATION] = '2026-01-01T12:00:00Z';
    const resyncJob = await startStep(ctx, 'accounts');
    const step = sequence(ctx).status?.activeRun?.steps[0];
    expect(step).toMatchObject({ phase: 'Running', runId: resyncJob });
    await finishStep(ctx, 'accounts');
    expect(steps(ctx)).toEqual(['accounts:Succeeded', 'contacts:Pending']);
  });

  it('runs on its schedule, and skips a slot that comes due while a run is active', async () => {
    const ctx = setup(['accounts'], { schedule: { interval: '1m' } }, { request: false });
    const result = await reconcile(ctx);
    expect(sequence(ctx).status?.activeRun).toMatchObject({ trigger: 'schedule' });
    expect(sequence(ctx).status?.schedule).toBe('every 1m');
    expect(result).toMatchObject({ requeueAfterMs: expect.any(Number) });
    ctx.setNow('2026-01-01T12:01:30.000Z');
    await reconcile(ctx);
    expect(sequence(ctx).status).toMatchObject({ skippedRuns: 1, nextRunAt: '2026-01-01T12:02:00.000Z' });
    expect(ctx.events.reasons()).toContain('RunSkipped');
  });

  it('a request made while a run is active runs after it, soon after the first finished', async () => {
    const ctx = setup(['accounts']);
    await reconcile(ctx);
    const first = sequence(ctx).status?.activeRun?.id;
    const stored = ctx.cluster.objects.get(`sequences/${NS}/${SEQ}`)!;
    const meta = stored.metadata as unknown as { annotations: Record<string, string> };
    meta.annotations[RUN_REQUESTED_ANNOTATION] = '2026-01-01T12:00:30Z';
    await startStep(ctx, 'accounts');
    expect(sequence(ctx).status?.activeRun?.id).toBe(first);
    completeJob(ctx.cluster, sync(ctx, 'accounts').status!.activeRun!.job!);
    await reconcileSync(ctx, sync(ctx, 'accounts'));
    expect(await reconcile(ctx)).toEqual({ requeueAfterMs: 1_005 });
    expect(sequence(ctx).status?.lastRun?.id).toBe(first);
    await reconcile(ctx);
    const second = sequence(ctx).status?.activeRun;
    expect(second?.id).not.toBe(first);
    expect(sequence(ctx).status?.handledRunRequest).toBe('2026-01-01T12:00:30Z');
  });

  it('a step whose Sync is Stalled waits, and the Running condition names the Sync and why', async () => {
    const ctx = setup(['accounts']);
    const stored = ctx.cluster.objects.get(`syncs/${NS}/accounts`)!;
    (stored['spec'] as Sync['spec']).modelRef = { name: 'missing' };
    await reconcile(ctx);
    await reconcileSync(ctx, sync(ctx, 'accounts'));
    await reconcile(ctx);
    expect(steps(ctx)).toEqual(['accounts:Pending']);
    const running = sequence(ctx).status?.conditions?.find((c) => c.type === 'Running');
    expect(running?.message).toContain('the Sync accounts is Stalled (ModelNotFound: ');
  });

  it('requests no further step while the Sequence is paused', async () => {
    const ctx = setup(['accounts', 'contacts']);
    await reconcile(ctx);
    await startStep(ctx, 'accounts');
    const seq = ctx.cluster.objects.get(`sequences/${NS}/${SEQ}`)!;
    (seq['spec'] as SequenceSpec).paused = true;
    await finishStep(ctx, 'accounts');
    expect(steps(ctx)).toEqual(['accounts:Succeeded', 'contacts:Waiting']);
    expect(requested(ctx, 'contacts')).toBeUndefined();
    const running = sequence(ctx).status?.conditions?.find((c) => c.type === 'Running');
    expect(running?.message).toContain('the Sequence is paused: step 2 of 2 (contacts) is not requested');
  });
});

describe('finishedRun', () => {
  const run = (phases: [string, 'stop' | 'continue'][]) => ({
    id: 'r',
    startedAt: '2026-01-01T12:00:00Z',
    steps: phases.map(([phase, onFailure], i) => ({
      sync: `s${i}`,
      phase: phase as never,
      onFailure,
      finishedAt: `2026-01-01T12:0${i}:00Z`,
    })),
  });
  const now = new Date('2026-01-01T13:00:00Z');

  it('is PartiallySucceeded when a step partially succeeded, and ends when its last step did', () => {
    const done = finishedRun(
      run([
        ['Succeeded', 'stop'],
        ['PartiallySucceeded', 'stop'],
      ]),
      now,
    );
    expect(done).toMatchObject({ result: 'PartiallySucceeded', finishedAt: '2026-01-01T12:01:00.000Z' });
    expect(done.message).toBe('step 2 of 2 (s1) partially succeeded');
  });

  it('is Failed with the reason of the step that stopped it', () => {
    const failed = run([
      ['Failed', 'continue'],
      ['Failed', 'stop'],
      ['Skipped', 'stop'],
    ]);
    failed.steps[1] = { ...failed.steps[1]!, reason: 'OOMKilled', message: 'out of memory' } as never;
    expect(finishedRun(failed, now)).toMatchObject({
      result: 'Failed',
      reason: 'OOMKilled',
      message: 'step 2 of 3 (s1) failed: out of memory; the 1 step(s) after it did not run',
    });
  });
});
