import { describe, expect, it } from 'vitest';
import { fakeContext } from './fake-cluster.ts';
import { NS, putReferences } from './fake-fixtures.ts';
import { reconcileModel } from './model.ts';
import { segmentRunModel } from './model-segment.ts';
import { recordModelColumns } from './sync-announce.ts';

type Ctx = ReturnType<typeof fakeContext>;

function putModel(ctx: Ctx, name: string, spec: Record<string, unknown>): void {
  ctx.cluster.put('models', {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Model',
    metadata: { name, namespace: NS, generation: 1 },
    spec: { sourceRef: { name: 'warehouse' }, ...spec },
  } as never);
}

function setup(where: Record<string, unknown>): Ctx {
  const ctx = fakeContext();
  putReferences(ctx.cluster);
  putModel(ctx, 'people', {
    table: 'people',
    primaryKey: 'id',
    filterable: [
      { name: 'country', type: 'string' },
      { name: 'ltv', type: 'number' },
    ],
    relationships: [
      { name: 'orders', modelRef: { name: 'orders' }, column: 'id', relatedColumn: 'person_id' },
    ],
  });
  putModel(ctx, 'orders', {
    table: 'orders',
    primaryKey: 'id',
    filterable: [{ name: 'total', type: 'number' }],
  });
  putModel(ctx, 'germany', { segment: { parent: { name: 'people' }, where } });
  return ctx;
}

async function reconcile(ctx: Ctx, name = 'germany') {
  await reconcileModel(ctx, ctx.store.model(NS, name)!);
  return ctx.store.model(NS, name)!.status ?? {};
}

const conditions = (status: {
  conditions?: { type: string; status: string; reason: string; message: string }[];
}) => (status.conditions ?? []).map((c) => `${c.type}=${c.status}/${c.reason}`);

describe('a segment Model', () => {
  it('shows its compiled SQL in the status and is Ready while its Source is', async () => {
    const ctx = setup({ column: 'country', equals: "D'E" });
    const status = await reconcile(ctx);
    expect(conditions(status)).toEqual(['Ready=True/SourceReady']);
    expect(status.compiledSql).toBe(
      `select "p".* from (SELECT * FROM "people") as "p" where "p"."country" = 'D''E'`,
    );
  });

  it('stalls with UnknownSegmentColumn, naming the closest filterable column, and clears the SQL', async () => {
    const ctx = setup({ column: 'country', equals: 'DE' });
    expect((await reconcile(ctx)).compiledSql).toBeDefined();
    const model = ctx.cluster.objects.get(`models/${NS}/germany`)!;
    model.spec = {
      ...(model.spec as object),
      segment: { parent: { name: 'people' }, where: { column: 'countyr', equals: 'DE' } },
    };
    const status = await reconcile(ctx);
    expect(conditions(status)).toEqual([
      'Ready=False/UnknownSegmentColumn',
      'Stalled=True/UnknownSegmentColumn',
    ]);
    expect(status.conditions?.[0]?.message).toContain('did you mean "country"?');
    expect(status.compiledSql).toBeUndefined();
    expect(ctx.events.reasons()).toContain('UnknownSegmentColumn');
  });

  it.each([
    [
      'an unknown relationship',
      { related: { relationship: 'order' } },
      'UnknownRelationship',
      'did you mean "orders"?',
    ],
    [
      'a segment that does not exist',
      { inSegment: { name: 'nowhere' } },
      'SegmentNotFound',
      '"nowhere" does not exist',
    ],
    ['inSegment of itself', { inSegment: { name: 'germany' } }, 'SegmentCycle', 'germany -> germany'],
    [
      'a related column not filterable',
      { related: { relationship: 'orders', aggregate: 'sum', column: 'tax', gt: 1 } },
      'UnknownSegmentColumn',
      'Model "orders"',
    ],
    ['a number compared with text', { column: 'ltv', gt: 'lots' }, 'InvalidSegment', 'is of type number'],
  ])('stalls on %s', async (_name, where, reason, message) => {
    const status = await reconcile(setup(where));
    expect(conditions(status)).toEqual([`Ready=False/${reason}`, `Stalled=True/${reason}`]);
    expect(status.conditions?.[0]?.message).toContain(message);
  });

  it('stalls on a cycle of parents and on a parent chain deeper than 3 segments', async () => {
    const ctx = setup({ column: 'country', equals: 'DE' });
    putModel(ctx, 'a', { segment: { parent: { name: 'b' }, where: { column: 'country', isNull: true } } });
    putModel(ctx, 'b', { segment: { parent: { name: 'a' }, where: { column: 'country', isNull: true } } });
    expect(conditions(await reconcile(ctx, 'a'))).toEqual([
      'Ready=False/SegmentCycle',
      'Stalled=True/SegmentCycle',
    ]);
    for (const [name, parent] of [
      ['g2', 'germany'],
      ['g3', 'g2'],
      ['g4', 'g3'],
    ])
      putModel(ctx, name as string, {
        segment: { parent: { name: parent }, where: { column: 'ltv', gt: 1 } },
      });
    expect(conditions(await reconcile(ctx, 'g3'))).toEqual(['Ready=True/SourceReady']);
    const deep = await reconcile(ctx, 'g4');
    expect(conditions(deep)).toEqual(['Ready=False/SegmentTooDeep', 'Stalled=True/SegmentTooDeep']);
  });

  it('runs as a query Model of its compiled SQL with the parent primary key', () => {
    const ctx = setup({ related: { relationship: 'orders', gte: 2 } });
    const run = segmentRunModel(ctx.store.model(NS, 'germany')!, ctx.store);
    expect(run.spec.segment).toBeUndefined();
    expect(run.spec.primaryKey).toBe('id');
    expect(run.spec.query).toContain('(select COUNT(*) as "n" from (SELECT * FROM "orders") as "r0"');
  });

  it('keeps the size preview a finished run of its Sync counted, with the columns it saw', async () => {
    const ctx = setup({ column: 'country', equals: 'DE' });
    await reconcile(ctx);
    const sync = { metadata: { name: 'to-crm', namespace: NS }, spec: { modelRef: { name: 'germany' } } };
    const summary = {
      runId: 'r1',
      result: 'Succeeded',
      dryRun: false,
      finishedAt: '2026-12-03T12:00:00.000Z',
      counts: { queried: 1234 },
      columns: [{ name: 'id', type: 'BIGINT' }],
      modelFingerprint: 'f1',
    };
    await recordModelColumns(ctx, sync as never, summary as never);
    const status = ctx.store.model(NS, 'germany')!.status!;
    expect(status.segment).toMatchObject({ members: 1234, countedAt: '2026-12-03T12:00:00.000Z' });
    expect(status.columns).toEqual([{ name: 'id', type: 'BIGINT' }]);
    await recordModelColumns(
      ctx,
      sync as never,
      { ...summary, counts: { queried: 1200 }, columns: [] } as never,
    );
    expect(ctx.store.model(NS, 'germany')!.status!.segment?.members).toBe(1200);
    await recordModelColumns(
      ctx,
      sync as never,
      { ...summary, result: 'Failed', counts: { queried: 3 } } as never,
    );
    expect(ctx.store.model(NS, 'germany')!.status!.segment?.members).toBe(1200);
  });
});
