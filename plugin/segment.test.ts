import { describe, expect, it } from 'vitest';
import type { Model, Source } from '../crds/index.ts';
import type { SyncGraph } from './cluster.ts';
import { segmentPlanModel } from './segment.ts';

const model = (name: string, spec: Record<string, unknown>) =>
  ({
    metadata: { name, namespace: 'growth' },
    spec: { sourceRef: { name: 'dw' }, ...spec },
  }) as unknown as Model;

const people = model('people', {
  table: 'analytics.people',
  primaryKey: 'id',
  filterable: [{ name: 'country', type: 'string' }],
});
const germany = model('germany', {
  segment: { parent: { name: 'people' }, where: { column: 'country', equals: 'DE' } },
});
const graph = (m: Model) =>
  ({
    model: m,
    source: { metadata: { name: 'dw' }, spec: { type: 'bigquery' } } as unknown as Source,
  }) as SyncGraph;
const cluster = { namespace: 'growth', list: async <T>() => [people, germany] as T[] };

describe('kubectl syncline plan of a segment', () => {
  it("plans the compiled SQL of the Source's dialect, from the namespace's Models", async () => {
    const { model: planned, compiledSql } = await segmentPlanModel(cluster, graph(germany));
    expect(compiledSql).toBe(
      "select `p`.* from (SELECT * FROM `analytics`.`people`) as `p` where `p`.`country` = 'DE'",
    );
    expect(planned.spec).toMatchObject({ query: compiledSql, primaryKey: 'id' });
    expect(planned.spec.segment).toBeUndefined();
  });

  it('leaves a Model that is no segment as it is', async () => {
    expect(await segmentPlanModel(cluster, graph(people))).toEqual({ model: people });
  });
});
