// The operator's check of a Model of a BI question: its Sources exist, are Ready and fit its mode.
import { describe, expect, it } from 'vitest';
import type { Model, Source } from '../crds/index.ts';
import { modelConditions } from './model.ts';
import { model as baseModel, source as baseSource } from './testdata/fixtures.ts';

const metabase = (name: string, ready = true): Source => ({
  ...baseSource({}, ready ? undefined : {}),
  metadata: { name, namespace: 'team' },
  spec: {
    type: 'metabase',
    metabase: {
      url: 'https://mb.example.com',
      apiKey: { secretKeyRef: { name: 'mb', key: 'k' } },
      downloadRowLimit: 1048575,
      timeoutSeconds: 300,
    },
  },
});
const model = (block: Record<string, unknown>, sourceRef = 'warehouse'): Model => {
  const m = baseModel();
  const { query: _query, ...spec } = m.spec;
  return { ...m, spec: { ...spec, sourceRef: { name: sourceRef }, ...block } as Model['spec'] };
};
const conditions = (m: Model, sources: Source[]) =>
  modelConditions(m, {
    store: { source: (_ns: string, name: string) => sources.find((s) => s.metadata.name === name) } as never,
  });

describe('a Model of a Metabase question', () => {
  const sql = { metabase: { question: 42, as: 'sql', sourceRef: { name: 'mb' } } };

  it('is Ready when the warehouse and the Metabase Source are', () => {
    expect(conditions(model(sql), [baseSource(), metabase('mb')]).ready.status).toBe('True');
  });

  it('is stalled when its Metabase Source is missing or of another type, and waits while it is not Ready', () => {
    expect(conditions(model(sql), [baseSource()])).toMatchObject({
      ready: {
        status: 'False',
        reason: 'SourceNotFound',
        message: expect.stringContaining('spec.metabase.sourceRef'),
      },
      stalled: { reason: 'SourceNotFound' },
    });
    const notMetabase = { ...baseSource(), metadata: { name: 'mb', namespace: 'team' } };
    expect(conditions(model(sql), [baseSource(), notMetabase]).ready).toMatchObject({
      reason: 'InvalidModel',
    });
    const waiting = conditions(model(sql), [baseSource(), metabase('mb', false)]);
    expect(waiting.ready).toMatchObject({ status: 'False', reason: 'SourceNotReady' });
    expect(waiting.stalled).toBeUndefined();
  });

  it('as: sql needs a warehouse in spec.sourceRef; as: results needs the Metabase Source there', () => {
    expect(conditions(model(sql, 'mb'), [metabase('mb')]).ready).toMatchObject({
      reason: 'InvalidModel',
      message: expect.stringContaining('the warehouse'),
    });
    const results = { metabase: { question: 42, as: 'results' } };
    expect(conditions(model(results, 'mb'), [metabase('mb')]).ready.status).toBe('True');
    expect(conditions(model(results), [baseSource()]).ready).toMatchObject({ reason: 'InvalidModel' });
  });
});
