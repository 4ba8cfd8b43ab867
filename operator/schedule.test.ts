import { describe, expect, it } from 'vitest';
import {
  decide,
  dependenciesSatisfied,
  nextSlotAfter,
  RESYNC_REQUESTED_ANNOTATION,
  RUN_REQUESTED_ANNOTATION,
  RETRY_BASE_MS,
  RETRY_CAP_MS,
  timetable,
  transientRetry,
  type ScheduleInput,
} from './schedule.ts';

const created = new Date('2025-03-01T10:00:00Z');
const base = (over: Partial<ScheduleInput> = {}): ScheduleInput => ({
  now: created,
  createdAt: created,
  schedule: { interval: '1m' },
  paused: false,
  annotations: {},
  status: {},
  active: false,
  blocked: false,
  ...over,
});

describe('timetable', () => {
  it('evaluates cron in the time zone, across a DST change', () => {
    const table = timetable({ cron: '30 2 * * *', timeZone: 'Europe/Berlin' });
    // 02:30 in Berlin is 01:30Z in winter and 00:30Z in summer.
    expect(table?.nextAfter(new Date('2025-03-27T12:00:00Z')).toISOString()).toBe('2025-03-28T01:30:00.000Z');
    expect(table?.nextAfter(new Date('2025-04-01T12:00:00Z')).toISOString()).toBe('2025-04-02T00:30:00.000Z');
    // 2025-03-30 has no 02:30 in Berlin (02:00 -> 03:00): the day still gets its run.
    expect(table?.nextAfter(new Date('2025-03-29T12:00:00Z')).getUTCDate()).toBe(30);
    expect(table?.text).toBe('cron 30 2 * * * (Europe/Berlin)');
  });

  it('rejects an unknown time zone with its own reason', () => {
    expect(() => timetable({ cron: '* * * * *', timeZone: 'Mars/Olympus' })).toThrowError(
      expect.objectContaining({ reason: 'InvalidTimeZone' }),
    );
  });

  it('skips the slots an outage missed', () => {
    const table = timetable({ interval: '1m' })!;
    const slot = new Date('2025-03-01T10:00:00Z');
    expect(nextSlotAfter(table, slot, new Date('2025-03-01T10:30:10Z')).toISOString()).toBe(
      '2025-03-01T10:31:10.000Z',
    );
  });
});

describe('decide', () => {
  it('runs a new interval Sync at once, then every interval', () => {
    const d = decide(base());
    expect(d.start).toMatchObject({ trigger: 'schedule', fullResync: false });
    expect(d.start?.key).toBe(`s-${Math.floor(created.getTime() / 1000).toString(36)}`);
    expect(d.nextRunAt?.toISOString()).toBe('2025-03-01T10:01:00.000Z');
    expect(d.text).toBe('every 1m');
  });

  it('waits for the next slot and says when', () => {
    const now = new Date('2025-03-01T10:00:20Z');
    const d = decide(base({ now, status: { nextRunAt: '2025-03-01T10:01:00.000Z', schedule: 'every 1m' } }));
    expect(d.start).toBeUndefined();
    expect(d.requeueAfterMs).toBe(40_000);
  });

  it('starts missed runs once after an outage', () => {
    const now = new Date('2025-03-01T12:00:30Z');
    const d = decide(base({ now, status: { nextRunAt: '2025-03-01T10:01:00.000Z', schedule: 'every 1m' } }));
    expect(d.start?.scheduledAt.toISOString()).toBe('2025-03-01T10:01:00.000Z');
    expect(d.nextRunAt!.getTime()).toBeGreaterThan(now.getTime());
    const again = decide(
      base({
        now,
        status: {
          nextRunAt: d.nextRunAt!.toISOString(),
          schedule: 'every 1m',
          lastRun: { id: 'x', startedAt: now.toISOString() },
        },
      }),
    );
    expect(again.start).toBeUndefined();
  });

  it('skips and counts a due run while one is active', () => {
    const now = new Date('2025-03-01T10:01:01Z');
    const d = decide(
      base({
        now,
        active: true,
        activeKey: 's-other',
        status: { nextRunAt: '2025-03-01T10:01:00.000Z', schedule: 'every 1m' },
      }),
    );
    expect(d.start).toBeUndefined();
    expect(d.skipped).toBe(1);
    expect(d.nextRunAt?.toISOString()).toBe('2025-03-01T10:02:00.000Z');
  });

  it('does not count the active run itself as skipped', () => {
    const slot = new Date('2025-03-01T10:01:00Z');
    const d = decide(
      base({
        now: new Date('2025-03-01T10:01:01Z'),
        active: true,
        activeKey: `s-${Math.floor(slot.getTime() / 1000).toString(36)}`,
        status: { nextRunAt: slot.toISOString(), schedule: 'every 1m' },
      }),
    );
    expect(d.skipped).toBe(0);
  });

  it('starts nothing while paused, and shows it', () => {
    const d = decide(base({ paused: true, annotations: { [RUN_REQUESTED_ANNOTATION]: 'now' } }));
    expect(d.start).toBeUndefined();
    expect(d.text).toBe('every 1m (paused)');
    expect(d.nextRunAt).toBeUndefined();
    expect(d.handledRunRequest).toBeUndefined();
  });

  it('runs once per manual request annotation value', () => {
    const status = { nextRunAt: '2025-03-01T10:05:00.000Z', schedule: 'every 1m' };
    const d = decide(base({ annotations: { [RUN_REQUESTED_ANNOTATION]: '2025-03-01T10:00:00Z' }, status }));
    expect(d.start).toMatchObject({ trigger: 'manual' });
    expect(d.handledRunRequest).toBe('2025-03-01T10:00:00Z');
    const again = decide(
      base({
        annotations: { [RUN_REQUESTED_ANNOTATION]: '2025-03-01T10:00:00Z' },
        status: { ...status, handledRunRequest: '2025-03-01T10:00:00Z' },
      }),
    );
    expect(again.start).toBeUndefined();
  });

  it('keeps a request pending while a run is active', () => {
    const d = decide(
      base({
        active: true,
        annotations: { [RESYNC_REQUESTED_ANNOTATION]: 'r1' },
        status: { nextRunAt: '2025-03-01T10:05:00.000Z', schedule: 'every 1m' },
      }),
    );
    expect(d.start).toBeUndefined();
    expect(d.handledResyncRequest).toBeUndefined();
    const after = decide(
      base({
        annotations: { [RESYNC_REQUESTED_ANNOTATION]: 'r1' },
        status: { nextRunAt: '2025-03-01T10:05:00.000Z', schedule: 'every 1m' },
      }),
    );
    expect(after.start).toMatchObject({ trigger: 'resync', fullResync: true });
  });

  it('runs a dependent Sync after each dependency succeeded since its last run', () => {
    const deps = [
      { name: 'a', lastSuccessfulRunAt: '2025-03-01T09:59:00Z' },
      { name: 'b', lastSuccessfulRunAt: '2025-03-01T09:58:00Z' },
    ];
    const d = decide(base({ schedule: undefined, dependencies: deps }));
    expect(d.start).toMatchObject({ trigger: 'dependency' });
    expect(d.text).toBe('after dependencies');
    expect(dependenciesSatisfied(deps, { id: 'x', startedAt: '2025-03-01T09:58:30Z' })).toBe(false);
    expect(dependenciesSatisfied([{ name: 'a' }], undefined)).toBe(false);
  });

  it('with onFailure continue, runs once each dependency finished since its last run, whatever the result', () => {
    const lastRun = { id: 'x', startedAt: '2025-03-01T09:50:00Z' };
    // a succeeded at 09:59; b failed at 09:58 (its last success is from before this Sync's last run).
    const deps = [
      { name: 'a', lastSuccessfulRunAt: '2025-03-01T09:59:00Z', lastFinishedRunAt: '2025-03-01T09:59:00Z' },
      { name: 'b', lastSuccessfulRunAt: '2025-03-01T09:00:00Z', lastFinishedRunAt: '2025-03-01T09:58:00Z' },
    ];
    const input = (over: Partial<ScheduleInput>) =>
      base({ schedule: undefined, dependencies: deps, status: { lastRun }, ...over });
    expect(decide(input({})).start).toBeUndefined(); // stop, the default: b has not succeeded since
    expect(decide(input({ dependenciesOnFailure: 'stop' })).start).toBeUndefined();
    const go = decide(input({ dependenciesOnFailure: 'continue' }));
    expect(go.start).toMatchObject({ trigger: 'dependency', fullResync: false });
    expect(dependenciesSatisfied(deps, lastRun, 'continue')).toBe(true);
    expect(dependenciesSatisfied(deps, lastRun, 'stop')).toBe(false);
    // b still running (no finish since): nothing yet.
    const running = [deps[0]!, { name: 'b', lastFinishedRunAt: '2025-03-01T09:40:00Z' }];
    expect(dependenciesSatisfied(running, lastRun, 'continue')).toBe(false);
    // A new round of finishes is a new run (a new key); the same finishes the same run on every replica.
    const later = decide(
      input({
        dependenciesOnFailure: 'continue',
        dependencies: [deps[0]!, { ...deps[1]!, lastFinishedRunAt: '2025-03-01T09:59:30Z' }],
      }),
    );
    expect(later.start?.key).not.toBe(go.start?.key);
    expect(decide(input({ dependenciesOnFailure: 'continue' })).start?.key).toBe(go.start?.key);
  });

  it('keeps the run key of dependsOn Syncs when the rule is stop', () => {
    const deps = [
      { name: 'a', lastSuccessfulRunAt: '2025-03-01T09:59:00Z', lastFinishedRunAt: '2025-03-01T09:59:30Z' },
    ];
    const before = decide(
      base({
        schedule: undefined,
        dependencies: [{ name: 'a', lastSuccessfulRunAt: '2025-03-01T09:59:00Z' }],
      }),
    );
    const now = decide(base({ schedule: undefined, dependencies: deps, dependenciesOnFailure: 'stop' }));
    expect(now.start?.key).toBe(before.start?.key);
  });

  it('says which webhook triggers start a Sync in the schedule text', () => {
    const dbt = { dbtCloud: { accountId: 1, jobId: 123, results: ['succeeded' as const] } };
    const fivetran = { fivetran: { connectorId: 'mystified_presiding', results: ['succeeded' as const] } };
    expect(decide(base({ schedule: { triggers: [dbt] } })).text).toBe('on dbt Cloud job 123');
    expect(decide(base({ schedule: { interval: '1m', triggers: [dbt, fivetran] } })).text).toBe(
      'every 1m, on dbt Cloud job 123, Fivetran connector mystified_presiding',
    );
    expect(decide(base({ schedule: { triggers: [dbt, dbt, fivetran] } })).text).toBe(
      'on dbt Cloud job 123, dbt Cloud job 123 and 1 more',
    );
    expect(decide(base({ schedule: { triggers: [dbt] }, paused: true })).text).toBe(
      'on dbt Cloud job 123 (paused)',
    );
    // A webhook trigger starts no run by itself: the receiver requests it.
    expect(decide(base({ schedule: { triggers: [dbt] } })).start).toBeUndefined();
  });

  it('gives the same run key on every replica', () => {
    const a = decide(base({ annotations: { [RUN_REQUESTED_ANNOTATION]: 'x' } }));
    const b = decide(
      base({ annotations: { [RUN_REQUESTED_ANNOTATION]: 'x' }, now: new Date(created.getTime() + 500) }),
    );
    expect(a.start?.key).toBe(b.start?.key);
  });

  it('recomputes the next run when the schedule changes', () => {
    const now = new Date('2025-03-01T10:10:00Z');
    const d = decide(
      base({
        now,
        schedule: { interval: '1h' },
        status: {
          nextRunAt: '2025-03-01T10:11:00.000Z',
          schedule: 'every 1m',
          lastRun: { id: 'x', startedAt: '2025-03-01T10:09:00Z' },
        },
      }),
    );
    expect(d.start).toBeUndefined();
    expect(d.nextRunAt?.toISOString()).toBe('2025-03-01T11:09:00.000Z');
  });
});

describe('decide while blocked', () => {
  it('keeps a due run pending without a timer, and starts it once when unblocked', () => {
    const now = new Date('2025-03-01T10:00:05Z');
    const blocked = decide(base({ now, blocked: true }));
    expect(blocked.start).toBeUndefined();
    expect(blocked.nextRunAt?.toISOString()).toBe(created.toISOString());
    expect(blocked.requeueAfterMs).toBeUndefined();
    const later = new Date('2025-03-01T10:30:00Z');
    const unblocked = decide(
      base({ now: later, status: { nextRunAt: blocked.nextRunAt!.toISOString(), schedule: blocked.text } }),
    );
    expect(unblocked.start?.trigger).toBe('schedule');
    expect(unblocked.nextRunAt!.getTime()).toBeGreaterThan(later.getTime());
  });
});

describe('retries of runs that failed for a transient reason', () => {
  const finishedAt = '2025-03-01T10:00:00.000Z';
  const failed = (id: string, reason: string) => ({ id, result: 'Failed' as const, reason, finishedAt });

  it('retries a transient failure after a backoff that doubles with each one in a row, up to a cap', () => {
    const last = failed('r3', 'LeaseHeld');
    const once = transientRetry({ lastRun: last, history: [last] });
    expect(once?.at.getTime()).toBe(Date.parse(finishedAt) + RETRY_BASE_MS);
    const thrice = transientRetry({
      lastRun: last,
      history: [
        last,
        failed('r2', 'SourceUnreachable'),
        failed('r1', 'Aborted'),
        { id: 'r0', result: 'Succeeded' },
      ],
    });
    expect(thrice?.at.getTime()).toBe(Date.parse(finishedAt) + 4 * RETRY_BASE_MS);
    const many = Array.from({ length: 40 }, (_, i) => failed(`r${40 - i}`, 'LeaseHeld'));
    expect(transientRetry({ lastRun: many[0], history: many })?.at.getTime()).toBe(
      Date.parse(finishedAt) + RETRY_CAP_MS,
    );
    expect(once?.key).toBe(transientRetry({ lastRun: last })?.key);
    expect(once?.key).not.toBe(transientRetry({ lastRun: failed('r4', 'LeaseHeld') })?.key);
  });

  it('does not retry a success or a failure that needs a person', () => {
    expect(transientRetry({ lastRun: { id: 'r', result: 'Succeeded', finishedAt } })).toBeUndefined();
    expect(transientRetry({ lastRun: failed('r', 'SafetyRailTripped') })).toBeUndefined();
    expect(transientRetry({ lastRun: failed('r', 'AuthenticationFailed') })).toBeUndefined();
  });

  it('starts the retry when it is due, before the next slot, and comes back for it otherwise', () => {
    const retry = { at: new Date('2025-03-01T10:00:30Z'), key: 't-abc' };
    const hourly = { interval: '1h' };
    const early = decide(
      base({
        now: new Date('2025-03-01T10:00:10Z'),
        schedule: hourly,
        retry,
        status: { nextRunAt: '2025-03-01T11:00:00.000Z', schedule: 'every 1h' },
      }),
    );
    expect(early.start).toBeUndefined();
    expect(early.requeueAfterMs).toBe(20_000);
    expect(early.retryAt).toEqual(retry.at);
    const due = decide(
      base({
        now: new Date('2025-03-01T10:00:31Z'),
        schedule: hourly,
        retry,
        status: { nextRunAt: '2025-03-01T11:00:00.000Z', schedule: 'every 1h' },
      }),
    );
    expect(due.start).toMatchObject({ trigger: 'retry', key: 't-abc', fullResync: false });
    const paused = decide(
      base({ now: new Date('2025-03-01T10:00:31Z'), schedule: hourly, retry, paused: true }),
    );
    expect(paused.start).toBeUndefined();
  });
});
