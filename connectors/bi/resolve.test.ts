// What resolveBiModel refuses before any request: a Model whose Sources do not fit its mode.
import { describe, expect, it } from 'vitest';
import { runPlan, type RunPlan } from '../../core/plan.ts';
import { secretResolver } from '../../core/secrets.ts';
import { resolveBiModel } from './resolve.ts';

const metabase = {
  type: 'metabase',
  metabase: { url: 'https://mb.invalid', apiKey: { secretKeyRef: { name: 'mb', key: 'k' } } },
};
const warehouse = { type: 'postgres', postgres: { host: 'db.invalid', database: 'shop', user: 'r' } };
const files = { type: 'files', files: { url: '/tmp' } };

function plan(as: 'sql' | 'results', source: object, biSource?: object): RunPlan {
  return runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId: 'r1',
    namespace: 'ns',
    sync: { name: 's', spec: { modelRef: { name: 'm' }, destinationRef: { name: 'd' }, mode: 'upsert' } },
    model: {
      name: 'm',
      spec: {
        sourceRef: { name: 'src' },
        metabase: { question: 1, as, ...(as === 'sql' ? { sourceRef: { name: 'mb' } } : {}) },
        primaryKey: 'id',
      },
    },
    source: { name: 'src', spec: source },
    ...(biSource ? { biSource: { name: 'mb', spec: biSource } } : {}),
    destination: { name: 'd', spec: { type: 'http', http: { url: 'https://x.invalid' } } },
    diffStore: { url: 'file:///tmp/x' },
  });
}
const ctx = { secrets: secretResolver({}, {}) };

describe('resolveBiModel', () => {
  it('leaves a results Model on its BI Source as it is', async () => {
    const given = plan('results', metabase);
    expect(await resolveBiModel(given, ctx)).toBe(given);
  });

  it.each([
    [
      'results on a warehouse Source',
      plan('results', warehouse),
      'InvalidModel',
      'names the metabase Source',
    ],
    ['sql on a files Source', plan('sql', files, metabase), 'InvalidModel', 'name the warehouse'],
    [
      'sql without the BI Source in the plan',
      plan('sql', warehouse),
      'InvalidRunPlan',
      'carries no metabase Source',
    ],
    [
      'sql with a BI Source of another type',
      plan('sql', warehouse, warehouse),
      'InvalidModel',
      'not a metabase Source',
    ],
  ])('refuses %s', async (_name, given, reason, words) => {
    await expect(resolveBiModel(given, ctx)).rejects.toMatchObject({
      reason,
      message: expect.stringContaining(words),
    });
  });
});
