// The size preview of a segment Model on a change of its definition: a runner Job counts it on the Source
// (the operator never queries one), and its count is written with the hash of the SQL it counted.
import { describe, expect, it } from 'vitest';
import { fakeContext } from './fake-cluster.ts';
import { completeJob, NS, onlyJob, putReferences } from './fake-fixtures.ts';
import { definitionHashOf } from './model-count.ts';
import { reconcileModel } from './model.ts';

type Ctx = ReturnType<typeof fakeContext>;

function putModel(ctx: Ctx, name: string, spec: Record<string, unknown>): void {
  ctx.cluster.put('models', {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Model',
    metadata: { name, namespace: NS, generation: 1 },
    spec: { sourceRef: { name: 'warehouse' }, ...spec },
  } as never);
}

function setup(): Ctx {
  const ctx = fakeContext();
  putReferences(ctx.cluster);
  putModel(ctx, 'people', {
    table: 'people',
    primaryKey: 'id',
    filterable: [{ name: 'country', type: 'string' }],
  });
  putModel(ctx, 'germany', {
    segment: { parent: { name: 'people' }, where: { column: 'country', equals: 'DE' } },
  });
  return ctx;
}

const reconcile = (ctx: Ctx) => reconcileModel(ctx, ctx.store.model(NS, 'germany')!);
const status = (ctx: Ctx) => ctx.store.model(NS, 'germany')!.status ?? {};

describe('the size preview of a segment', () => {
  it('is counted by a runner Job when the definition changes, and written with the hash of what it counted', async () => {
    const ctx = setup();
    expect(await reconcile(ctx)).toEqual({ requeueAfterMs: expect.any(Number) });
    const sql = status(ctx).compiledSql!;
    const job = onlyJob(ctx.cluster);
    const container = job.spec?.template.spec?.containers[0];
    expect(container?.args?.at(-1)).toBe('count-segment');
    const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e]));
    expect(JSON.parse(env['SYNCLINE_COUNT_PLAN']?.value ?? '{}')).toEqual({
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'SegmentCountPlan',
      namespace: NS,
      model: 'germany',
      source: { name: 'warehouse', spec: expect.objectContaining({ type: 'postgres' }) },
      sql,
      definitionHash: definitionHashOf(sql),
    });
    expect(job.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Model', name: 'germany' });
    // Running: looked at again, not started twice.
    expect(await reconcile(ctx)).toEqual({ requeueAfterMs: expect.any(Number) });
    expect(ctx.cluster.jobs.size).toBe(1);
    completeJob(ctx.cluster, job.metadata!.name!, {
      ok: true,
      reason: 'SegmentCounted',
      message: 'segment Model team/germany has 42 member(s)',
      members: 42,
      definitionHash: definitionHashOf(sql),
    } as never);
    expect(await reconcile(ctx)).toBeUndefined();
    expect(status(ctx).segment).toEqual({
      members: 42,
      countedAt: expect.any(String),
      definitionHash: definitionHashOf(sql),
    });
    // Counted: nothing more to do until the definition changes.
    expect(await reconcile(ctx)).toBeUndefined();
    expect(ctx.cluster.jobs.size).toBe(1);

    const stored = ctx.cluster.objects.get(`models/${NS}/germany`)!;
    (stored.spec as { segment: { where: object } }).segment.where = { column: 'country', equals: 'FR' };
    expect(await reconcile(ctx)).toEqual({ requeueAfterMs: expect.any(Number) });
    expect(ctx.cluster.jobs.size).toBe(2);
    expect(status(ctx).segment?.members).toBe(42); // the old count stays until the new one is in
    expect(status(ctx).segment?.definitionHash).not.toBe(definitionHashOf(status(ctx).compiledSql!));
  });

  it('warns once a count fails, and does not start it again for the same definition', async () => {
    const ctx = setup();
    await reconcile(ctx);
    const name = onlyJob(ctx.cluster).metadata!.name!;
    completeJob(ctx.cluster, name, {
      ok: false,
      reason: 'SourceQueryFailed',
      message: 'relation "people" does not exist',
    } as never);
    ctx.cluster.jobs.get(`${NS}/${name}`)!.status = {
      conditions: [{ type: 'Failed', status: 'True', lastTransitionTime: new Date() as never }],
    };
    expect(await reconcile(ctx)).toBeUndefined();
    expect(ctx.events.recorded).toContainEqual(
      expect.objectContaining({
        reason: 'SegmentCountFailed',
        message: expect.stringContaining('SourceQueryFailed: relation "people" does not exist'),
      }),
    );
    expect(ctx.cluster.jobs.size).toBe(1);
    expect(status(ctx).segment).toBeUndefined();
  });
});
