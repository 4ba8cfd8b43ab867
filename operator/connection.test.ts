import { describe, expect, it } from 'vitest';
import type { Destination } from '../crds/index.ts';
import { checkDue, reconcileConnection } from './connection.ts';
import { fakeContext } from './fake-cluster.ts';
import { NS } from './fake-fixtures.ts';

function destination(ctx: ReturnType<typeof fakeContext>): Destination {
  ctx.cluster.put('destinations', {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Destination',
    metadata: { name: 'crm', namespace: NS },
    spec: { type: 'http', http: { url: 'http://127.0.0.1:9/contacts' } },
  } as Destination);
  return ctx.store.destination(NS, 'crm')!;
}

const ready = (d: Destination | undefined) =>
  d?.status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`);

describe('reconcileConnection', () => {
  it('starts a check Job, says Checking meanwhile, then Ready from its result with one Event', async () => {
    const ctx = fakeContext();
    const first = await reconcileConnection(ctx, destination(ctx));
    expect(first).toBeUndefined();
    const [job] = [...ctx.cluster.jobs.values()];
    expect(job?.metadata?.labels).toMatchObject({ 'syncline.io/component': 'check' });
    expect(ready(ctx.store.destination(NS, 'crm'))).toEqual([
      'Ready=Unknown/Checking',
      'Reconciling=True/Checking',
    ]);
    expect(ctx.events.recorded).toEqual([]);

    job!.status = {
      conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: '2026-01-01T12:00:05Z' as never }],
    };
    const done = await reconcileConnection(ctx, ctx.store.destination(NS, 'crm')!);
    expect(done).toEqual({ requeueAfterMs: ctx.config.check.recheckIntervalMs });
    const checked = ctx.store.destination(NS, 'crm')!;
    expect(ready(checked)).toEqual(['Ready=True/ConnectionSucceeded']);
    expect(checked.status).toMatchObject({
      lastCheckedAt: '2026-01-01T12:00:05.000Z',
      observedGeneration: 1,
    });
    expect(checkDue(checked, ctx.now(), ctx.config.check).due).toBe(false);
    expect(ctx.events.recorded).toEqual([
      expect.objectContaining({ type: 'Normal', reason: 'ConnectionSucceeded' }),
    ]);

    // Nothing new: no write, no Event, a requeue at the recheck.
    const calls = ctx.cluster.calls.length;
    await reconcileConnection(ctx, ctx.store.destination(NS, 'crm')!);
    expect(ctx.cluster.calls.slice(calls).filter((c) => c.startsWith('patchStatus'))).toEqual([]);
    expect(ctx.events.recorded).toHaveLength(1);
  });

  it('fails a check whose pod cannot start past the timeout, and deletes its Job', async () => {
    const ctx = fakeContext();
    await reconcileConnection(ctx, destination(ctx));
    const [job] = [...ctx.cluster.jobs.values()];
    job!.metadata!.creationTimestamp = '2026-01-01T11:00:00Z' as never;
    ctx.cluster.pods.push({
      metadata: {
        name: 'p',
        namespace: NS,
        labels: { 'batch.kubernetes.io/job-name': job!.metadata!.name! },
      },
      status: {
        containerStatuses: [
          {
            name: 'runner',
            state: { waiting: { reason: 'CreateContainerConfigError', message: 'secret "pg" not found' } },
            ready: false,
            restartCount: 0,
            image: 'i',
            imageID: '',
          },
        ],
      },
    });
    const result = await reconcileConnection(ctx, ctx.store.destination(NS, 'crm')!);
    expect(result).toEqual({ requeueAfterMs: ctx.config.check.retryIntervalMs });
    expect(ready(ctx.store.destination(NS, 'crm'))).toEqual(['Ready=False/SecretNotFound']);
    expect(ctx.cluster.jobs.size).toBe(0);
    expect(ctx.events.recorded).toEqual([
      expect.objectContaining({ type: 'Warning', reason: 'SecretNotFound' }),
    ]);
  });
});
