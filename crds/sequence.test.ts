import { describe, expect, it } from 'vitest';
import { VALID_SPECS, objectFor } from '../test/fixtures/invalid-resources.ts';
import { checkResource } from './checks.ts';
import { schedule, sequenceSchedule, sequenceSpec } from './index.ts';

const problems = (spec: unknown) => {
  const result = checkResource('Sequence', objectFor('Sequence', 'load', spec as never));
  return result.ok ? [] : result.problems.map((p) => p.message);
};

describe('Sequence spec', () => {
  it('defaults onFailure to stop, paused to false and historyLimit to 10', () => {
    expect(sequenceSpec.parse({ steps: [{ sync: 'accounts' }, { sync: 'contacts' }] })).toEqual({
      steps: [
        { sync: 'accounts', onFailure: 'stop' },
        { sync: 'contacts', onFailure: 'stop' },
      ],
      paused: false,
      historyLimit: 10,
    });
  });

  it("has the Sync schedule's rules for interval, cron and timeZone, and not its triggers", () => {
    const rules = (s: { meta(): Record<string, unknown> | undefined }) =>
      (s.meta()?.['x-kubernetes-validations'] as { rule: string }[]).map((v) => v.rule);
    expect(rules(sequenceSchedule)).toEqual(rules(schedule).filter((r) => !r.includes('triggers')));
    expect(rules(sequenceSchedule).length).toBeGreaterThanOrEqual(4);
    expect(Object.keys(sequenceSchedule.shape)).toEqual(['interval', 'cron', 'timeZone']);
    for (const bad of [{ interval: '5s' }, { cron: 'often' }, { interval: '1h', cron: '@daily' }]) {
      expect(sequenceSchedule.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
      expect(schedule.safeParse(bad).success).toBe(false);
    }
    expect(sequenceSchedule.safeParse({ cron: '@daily', timeZone: 'Europe/Berlin' }).success).toBe(true);
  });

  it('is checked as the operator checks it: a time zone that does not exist, a cron that cannot fire', () => {
    expect(problems(VALID_SPECS.Sequence)).toEqual([]);
    expect(
      problems({ ...VALID_SPECS.Sequence, schedule: { cron: '0 6 * * *', timeZone: 'Mars/Base' } }),
    ).toEqual([
      expect.stringContaining(
        'spec.schedule.timeZone: schedule.timeZone "Mars/Base" is not an IANA time zone',
      ),
    ]);
    expect(problems({ ...VALID_SPECS.Sequence, schedule: { cron: '0 0 31 2 *' } })).toEqual([
      expect.stringContaining('(InvalidSchedule)'),
    ]);
  });
});
