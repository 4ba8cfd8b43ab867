import { describe, expect, it } from 'vitest';
import { VALID_SPECS, objectFor } from '../test/fixtures/invalid-resources.ts';
import { checkResource } from './checks.ts';
import { runsAfter, syncSpec, type SyncSpec } from './index.ts';

const spec = (over: Record<string, unknown>) => ({ ...structuredClone(VALID_SPECS.Sync), ...over });

describe('spec.schedule.triggers', () => {
  it('accepts dbt Cloud, Fivetran and afterSyncs triggers beside an interval, with their defaults', () => {
    const parsed = syncSpec.parse(
      spec({
        schedule: {
          interval: '1h',
          triggers: [
            { dbtCloud: { accountId: 1, jobId: 123 } },
            {
              dbtCloud: {
                accountId: 1,
                jobId: 124,
                results: ['succeeded', 'failed', 'cancelled'],
                webhook: 'dbt-prod',
              },
            },
            { fivetran: { connectorId: 'mystified_presiding' } },
            { afterSyncs: { names: ['contacts', 'companies'] } },
          ],
        },
      }),
    );
    const [dbt, dbtAll, fivetran, after] = parsed.schedule?.triggers ?? [];
    expect(dbt?.dbtCloud?.results).toEqual(['succeeded']);
    expect(dbtAll?.dbtCloud?.results).toEqual(['succeeded', 'failed', 'cancelled']);
    expect(fivetran?.fivetran?.results).toEqual(['succeeded']);
    expect(after?.afterSyncs?.onFailure).toBe('stop');
    expect(
      checkResource(
        'Sync',
        objectFor('Sync', 'ok', spec({ schedule: { triggers: [{ afterSyncs: { names: ['a'] } }] } })),
      ).ok,
    ).toBe(true);
  });

  it('accepts a Sync run only by triggers (no interval or cron)', () => {
    const result = checkResource(
      'Sync',
      objectFor(
        'Sync',
        'ok',
        spec({ schedule: { triggers: [{ fivetran: { connectorId: 'c1', results: ['failed'] } }] } }),
      ),
    );
    expect(result.ok ? [] : result.problems).toEqual([]);
  });

  it('names the field of a problem inside a trigger', () => {
    const result = checkResource(
      'Sync',
      objectFor('Sync', 'bad', spec({ schedule: { triggers: [{ afterSyncs: { names: ['a', 'a'] } }] } })),
    );
    expect(result.ok ? [] : result.problems.map((p) => p.path)).toEqual([
      'spec.schedule.triggers[0].afterSyncs.names',
    ]);
  });
});

describe('runsAfter', () => {
  const base = syncSpec.parse(VALID_SPECS.Sync);
  const withSpec = (over: Partial<SyncSpec>): SyncSpec => ({ ...base, ...over });

  it('reads an afterSyncs trigger, with its onFailure', () => {
    const after = runsAfter(
      withSpec({ schedule: { triggers: [{ afterSyncs: { names: ['a', 'b'], onFailure: 'continue' } }] } }),
    );
    expect(after).toEqual({
      names: ['a', 'b'],
      onFailure: 'continue',
      field: 'spec.schedule.triggers[].afterSyncs',
    });
  });

  it('reads dependsOn, the older spelling, as afterSyncs with onFailure stop', () => {
    expect(runsAfter(withSpec({ dependsOn: [{ name: 'a' }] }))).toEqual({
      names: ['a'],
      onFailure: 'stop',
      field: 'spec.dependsOn',
    });
  });

  it('is undefined for a Sync that runs after no other, and stop for a stored trigger without its default', () => {
    expect(runsAfter(withSpec({ dependsOn: [] }))).toBeUndefined();
    expect(
      runsAfter(
        withSpec({
          schedule: { triggers: [{ dbtCloud: { accountId: 1, jobId: 2, results: ['succeeded'] } }] },
        }),
      ),
    ).toBeUndefined();
    const stored = { schedule: { triggers: [{ afterSyncs: { names: ['a'] } }] } } as unknown as SyncSpec;
    expect(runsAfter(stored)?.onFailure).toBe('stop');
  });
});
