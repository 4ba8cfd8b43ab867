import { describe, expect, it } from 'vitest';
import type { Condition } from '../crds/index.ts';
import { fakeContext } from './fake-cluster.ts';
import { NS, putReferences } from './fake-fixtures.ts';
import { transitionEvent, writeStatus } from './status-writer.ts';

const ready = (status: Condition['status'], reason: string): Condition[] => [
  { type: 'Ready', status, reason, message: reason, lastTransitionTime: '2026-01-01T00:00:00Z' },
];

describe('transitionEvent (the one rule)', () => {
  it('is an Event when Ready changes status or reason: Normal for True, Warning for False', () => {
    expect(transitionEvent(undefined, ready('True', 'SourceReady'))).toMatchObject({ type: 'Normal' });
    expect(transitionEvent(ready('True', 'A'), ready('False', 'B'))).toMatchObject({
      type: 'Warning',
      reason: 'B',
    });
    expect(transitionEvent(ready('False', 'A'), ready('False', 'B'))).toMatchObject({ reason: 'B' });
  });

  it('is none for the same state, for Unknown, and for a reason the reconciler announces itself', () => {
    expect(transitionEvent(ready('False', 'A'), ready('False', 'A'))).toBeUndefined();
    expect(transitionEvent(ready('True', 'A'), ready('Unknown', 'Checking'))).toBeUndefined();
    expect(
      transitionEvent(ready('True', 'A'), ready('False', 'RunFailed'), new Set(['RunFailed'])),
    ).toBeUndefined();
  });
});

describe('writeStatus', () => {
  it('patches status with observedGeneration and conditions, then records the transition once', async () => {
    const ctx = fakeContext();
    putReferences(ctx.cluster);
    const object = ctx.store.model(NS, 'customers')!;
    const set = { ready: { status: 'False' as const, reason: 'SourceNotFound', message: 'gone' } };
    const first = await writeStatus(ctx, {
      plural: 'models',
      object,
      before: object.status ?? {},
      after: {},
      set,
    });
    expect(first.written).toBe(true);
    const stored = ctx.store.model(NS, 'customers')!;
    expect(stored.status?.observedGeneration).toBe(1);
    expect(stored.status?.conditions?.[0]).toMatchObject({ status: 'False', observedGeneration: 1 });
    expect(ctx.events.recorded).toEqual([
      expect.objectContaining({ type: 'Warning', reason: 'SourceNotFound' }),
    ]);

    const again = await writeStatus(ctx, {
      plural: 'models',
      object: stored,
      before: stored.status!,
      after: stored.status!,
      set,
    });
    expect(again.written).toBe(false);
    expect(ctx.events.recorded).toHaveLength(1);
  });

  it('writes only its own keys, and nothing when deferred', async () => {
    const ctx = fakeContext();
    putReferences(ctx.cluster);
    const object = ctx.store.model(NS, 'customers')!;
    // Columns written by someone else since the cache was read stay as they are.
    ctx.cluster.objects.get(`models/${NS}/customers`)!.status!['columns'] = [{ name: 'id', type: 'INTEGER' }];
    const set = { ready: { status: 'True' as const, reason: 'SourceReady', message: 'ok' } };
    const deferred = await writeStatus(ctx, {
      plural: 'models',
      object,
      before: {},
      after: {},
      set,
      defer: true,
    });
    expect(deferred).toMatchObject({ written: false, status: { observedGeneration: 1 } });
    expect(ctx.cluster.calls).toEqual([]);
    // Written without the resourceVersion (the cache is older than the columns' write).
    const { resourceVersion: _rv, ...metadata } = object.metadata;
    await writeStatus(ctx, {
      plural: 'models',
      object: { ...object, metadata },
      before: {},
      after: {},
      set,
      keys: [],
    });
    expect(ctx.store.model(NS, 'customers')!.status).toMatchObject({
      columns: [{ name: 'id' }],
      observedGeneration: 1,
    });
  });
});
