import { describe, expect, it } from 'vitest';
import type { Diffed } from './diff.ts';
import type { Delivered } from './delivery.ts';
import { endingOf } from './report.ts';

const diffed = (totalOperations: number) =>
  ({ diff: { totalOperations, added: totalOperations, changed: 0, removed: 0 } }) as unknown as Diffed;
const delivered = (d: Partial<Delivered>): Delivered => ({
  delivered: 0,
  failed: 0,
  byOperation: {},
  rejected: [],
  closeReason: undefined,
  checkpoints: 0,
  ...d,
});

describe('endingOf', () => {
  it('succeeds when everything arrived', () => {
    expect(endingOf({ diffed: diffed(3), delivered: delivered({ delivered: 3 }) })).toEqual({
      result: 'Succeeded',
      reason: undefined,
      message: 'delivered 3 row operation(s): 3 added, 0 changed, 0 removed',
    });
  });

  it('partly succeeds, or fails with the writer’s close reason, when rows were rejected', () => {
    const rejected = [{ key: '7', operation: 'upsert', reason: 'bad email' }];
    expect(
      endingOf({ diffed: diffed(3), delivered: delivered({ delivered: 2, failed: 1, rejected }) }),
    ).toMatchObject({
      result: 'PartiallySucceeded',
      reason: 'RowsRejected',
      message: expect.stringContaining('first: key 7: bad email'),
    });
    expect(
      endingOf({
        diffed: diffed(3),
        delivered: delivered({ failed: 3, closeReason: 'DestinationCloseFailed' }),
      }),
    ).toMatchObject({
      result: 'Failed',
      reason: 'DestinationCloseFailed',
    });
  });

  it('a stopped run reports what it delivered and committed', () => {
    expect(endingOf({ diffed: diffed(10), delivered: delivered({ delivered: 4, stopped: true }) })).toEqual({
      result: 'Failed',
      reason: 'Aborted',
      message:
        'the run was stopped during delivery: 4 of 10 row operation(s) delivered and committed; the rest is sent by the next run',
    });
  });
});

describe('a writer that stopped early', () => {
  it('gives the run its reason (a spent daily quota), partly succeeded when something arrived', () => {
    const stopReason = { reason: 'DailyLimitReached', message: 'the daily API limit is reached' };
    expect(
      endingOf({ diffed: diffed(10), delivered: delivered({ delivered: 4, failed: 6, stopReason }) }),
    ).toEqual({
      result: 'PartiallySucceeded',
      reason: 'DailyLimitReached',
      message: 'delivered 4 row operation(s), then the daily API limit is reached (6 not delivered)',
    });
    expect(endingOf({ diffed: diffed(10), delivered: delivered({ failed: 10, stopReason }) }).result).toBe(
      'Failed',
    );
  });
});
