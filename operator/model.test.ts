import { describe, expect, it } from 'vitest';
import { fakeContext } from './fake-cluster.ts';
import { NS, putReferences } from './fake-fixtures.ts';
import { reconcileModel } from './model.ts';

describe('reconcileModel', () => {
  it('is Ready while its Source is, and Stalled with one Warning Event when the Source goes', async () => {
    const ctx = fakeContext();
    putReferences(ctx.cluster);
    await reconcileModel(ctx, ctx.store.model(NS, 'customers')!);
    expect(ctx.store.model(NS, 'customers')!.status?.conditions).toEqual([
      expect.objectContaining({ type: 'Ready', status: 'True', reason: 'SourceReady' }),
    ]);
    ctx.cluster.objects.delete(`sources/${NS}/warehouse`);
    await reconcileModel(ctx, ctx.store.model(NS, 'customers')!);
    await reconcileModel(ctx, ctx.store.model(NS, 'customers')!);
    const conditions = ctx.store.model(NS, 'customers')!.status?.conditions ?? [];
    expect(conditions.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual([
      'Ready=False/SourceNotFound',
      'Stalled=True/SourceNotFound',
    ]);
    // Ready was already True (SourceReady): no Event for it; one for the loss, none for its repeat.
    expect(ctx.events.reasons()).toEqual(['SourceNotFound']);
  });
});
