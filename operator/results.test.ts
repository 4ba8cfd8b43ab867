import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { checkResultFromOutcome, jobOutcome, podProblem, runRecordFromOutcome } from './results.ts';

const job = (conditions: { type: string; reason?: string; message?: string }[] = [], deadline = 600): V1Job =>
  ({
    metadata: { name: 'j', creationTimestamp: '2025-03-01T10:00:00Z' as never },
    spec: { activeDeadlineSeconds: deadline, template: {} },
    status: {
      startTime: '2025-03-01T10:00:01Z' as never,
      conditions: conditions.map((c) => ({
        ...c,
        status: 'True',
        lastTransitionTime: '2025-03-01T10:01:00Z' as never,
      })),
    },
  }) as V1Job;

const pod = (state: object, extra: object = {}): V1Pod =>
  ({
    metadata: { name: 'j-x', creationTimestamp: '2025-03-01T10:00:00Z' as never },
    status: {
      containerStatuses: [{ name: 'runner', state, ready: false, restartCount: 0, image: 'i', imageID: '' }],
      ...extra,
    },
  }) as V1Pod;

const summary = {
  apiVersion: 'syncline.io/v1alpha1',
  kind: 'RunSummary',
  runId: 'r1',
  namespace: 'team',
  sync: 's',
  mode: 'upsert',
  startedAt: '2025-03-01T10:00:02Z',
  finishedAt: '2025-03-01T10:00:09Z',
  result: 'Succeeded',
  message: '3 rows delivered',
  counts: { queried: 3, added: 3, changed: 0, removed: 0, delivered: 3, failed: 0, skipped: 0 },
  operations: { upsert: 3 },
  timings: {},
  columns: [{ name: 'id', type: 'INTEGER' }],
  modelFingerprint: 'fp1',
};

describe('pod problems', () => {
  it('names a missing Secret and a missing key', () => {
    expect(
      podProblem(
        pod({ waiting: { reason: 'CreateContainerConfigError', message: 'secret "pg" not found' } }),
      ),
    ).toMatchObject({ reason: 'SecretNotFound', stuck: true });
    const key = podProblem(
      pod({
        waiting: {
          reason: 'CreateContainerConfigError',
          message: "couldn't find key password in Secret team/pg",
        },
      }),
    );
    expect(key?.reason).toBe('SecretNotFound');
    expect(key?.message).toContain('"password"');
  });

  it('names image pull failures and unschedulable pods', () => {
    expect(
      podProblem(pod({ waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "x"' } }))
        ?.reason,
    ).toBe('ImagePullFailed');
    expect(
      podProblem(
        pod(
          {},
          {
            conditions: [
              { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes' },
            ],
          },
        ),
      ),
    ).toMatchObject({ reason: 'Unschedulable', stuck: false });
    expect(podProblem(pod({ running: {} }))).toBeUndefined();
  });
});

describe('job outcomes', () => {
  it('is active until the Job has a final condition', () => {
    expect(jobOutcome(job(), [pod({ running: {} })]).state).toBe('active');
  });

  it('reads the run summary from the termination message', () => {
    const outcome = jobOutcome(job([{ type: 'Complete' }]), [
      pod({ terminated: { exitCode: 0, reason: 'Completed', message: JSON.stringify(summary) } }),
    ]);
    expect(outcome.state).toBe('finished');
    if (outcome.state !== 'finished') return;
    const { record } = runRecordFromOutcome(
      { id: 'r1', job: 'j', trigger: 'schedule', startedAt: '2025-03-01T10:00:00Z' },
      outcome,
    );
    expect(record).toMatchObject({
      id: 'r1',
      result: 'Succeeded',
      counts: { delivered: 3 },
      trigger: 'schedule',
      message: '3 rows delivered',
    });
  });

  it('reports a runner failure with its reason', () => {
    const failed = {
      ...summary,
      result: 'Failed',
      reason: 'DuplicatePrimaryKeys',
      message: 'keys 1, 2 repeat',
    };
    const outcome = jobOutcome(job([{ type: 'Failed', reason: 'BackoffLimitExceeded' }]), [
      pod({ terminated: { exitCode: 1, reason: 'Error', message: JSON.stringify(failed) } }),
    ]);
    if (outcome.state !== 'finished') throw new Error('not finished');
    expect(runRecordFromOutcome({ id: 'r1' }, outcome).record).toMatchObject({
      result: 'Failed',
      reason: 'DuplicatePrimaryKeys',
    });
  });

  it('reports OOMKilled as its real cause', () => {
    const outcome = jobOutcome(job([{ type: 'Failed', reason: 'BackoffLimitExceeded' }]), [
      pod({ terminated: { exitCode: 137, reason: 'OOMKilled' } }),
    ]);
    if (outcome.state !== 'finished') throw new Error('not finished');
    expect(runRecordFromOutcome({ id: 'r1' }, outcome).record).toMatchObject({
      result: 'Failed',
      reason: 'OOMKilled',
    });
  });

  it('reports an eviction for a full /tmp as its cause, with what to raise', () => {
    const outcome = jobOutcome(job([{ type: 'Failed', reason: 'BackoffLimitExceeded' }]), [
      pod(
        { terminated: { exitCode: 137, reason: 'ContainerStatusUnknown' } },
        {
          phase: 'Failed',
          reason: 'Evicted',
          message: 'Usage of EmptyDir volume "tmp" exceeds the limit "10Gi". ',
        },
      ),
    ]);
    expect(outcome).toMatchObject({
      succeeded: false,
      reason: 'Evicted',
      message:
        'the runner pod was evicted (Usage of EmptyDir volume "tmp" exceeds the limit "10Gi".): raise ' +
        'spec.runner.resources.limits.ephemeral-storage (the /tmp scratch volume is as large as it), within ' +
        'the maximum the operator allows, or make the model smaller',
    });
  });

  it('reports a deadline, or the pod problem that caused it', () => {
    const deadline = jobOutcome(job([{ type: 'Failed', reason: 'DeadlineExceeded' }], 60), [
      pod({ terminated: { exitCode: 143, reason: 'Error' } }),
    ]);
    expect(deadline).toMatchObject({ reason: 'DeadlineExceeded' });
    const neverStarted = jobOutcome(job([{ type: 'Failed', reason: 'DeadlineExceeded' }]), [], {
      reason: 'SecretNotFound',
      message: 'Secret "pg" does not exist',
    });
    expect(neverStarted).toMatchObject({ reason: 'SecretNotFound', succeeded: false });
  });

  it('keeps what a run stopped at its deadline delivered and committed, under the deadline reason', () => {
    const stopped = {
      ...summary,
      result: 'Failed',
      reason: 'Aborted',
      message: 'the run was stopped during delivery: 2 of 3 row operation(s) delivered and committed',
      counts: { ...summary.counts, delivered: 2 },
    };
    const outcome = jobOutcome(job([{ type: 'Failed', reason: 'DeadlineExceeded' }], 60), [
      pod({ terminated: { exitCode: 1, reason: 'Error', message: JSON.stringify(stopped) } }),
    ]);
    if (outcome.state !== 'finished') throw new Error('not finished');
    const { record } = runRecordFromOutcome({ id: 'r1' }, outcome);
    expect(record).toMatchObject({ result: 'Failed', reason: 'DeadlineExceeded', counts: { delivered: 2 } });
    expect(record.message).toMatch(
      /activeDeadlineSeconds \(60 s\).*; the run was stopped during delivery: 2 of 3/,
    );
  });

  it('reads a connection check result', () => {
    const ok = jobOutcome(job([{ type: 'Complete' }]), [
      pod({
        terminated: {
          exitCode: 0,
          message: '{"ok":true,"reason":"ConnectionSucceeded","message":"connected"}',
        },
      }),
    ]);
    const bad = jobOutcome(job([{ type: 'Failed', reason: 'BackoffLimitExceeded' }]), [
      pod({
        terminated: {
          exitCode: 1,
          message:
            '{"ok":false,"reason":"AuthenticationFailed","message":"password authentication failed for user reader"}',
        },
      }),
    ]);
    if (ok.state !== 'finished' || bad.state !== 'finished') throw new Error('not finished');
    expect(checkResultFromOutcome(ok)).toEqual({
      ok: true,
      reason: 'ConnectionSucceeded',
      message: 'connected',
    });
    expect(checkResultFromOutcome(bad)).toMatchObject({ ok: false, reason: 'AuthenticationFailed' });
  });
});
