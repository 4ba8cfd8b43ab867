import { describe, expect, it } from 'vitest';
import { retryDelay, lowest } from './backoff.ts';
import { compactSummary } from './report.ts';
import { runSummary, TERMINATION_MESSAGE_LIMIT } from '../core/summary.ts';

const summary = runSummary.parse({
  apiVersion: 'syncline.io/v1alpha1',
  kind: 'RunSummary',
  runId: 'r1',
  namespace: 'ns',
  sync: 's',
  mode: 'upsert',
  startedAt: '2026-01-01T00:00:00Z',
  finishedAt: '2026-01-01T00:00:01Z',
  result: 'PartiallySucceeded',
  reason: 'RowsRejected',
  message: 'm'.repeat(3000),
  counts: { queried: 10, added: 1, changed: 2, removed: 3, delivered: 4, failed: 100, skipped: 0 },
  timings: { totalMs: 5 },
  rejected: Array.from({ length: 100 }, (_, i) => ({
    key: `key-${i}`,
    operation: 'upsert',
    reason: 'r'.repeat(300),
  })),
  columns: Array.from({ length: 200 }, (_, i) => ({ name: `c${i}`, type: 'VARCHAR' })),
  samples: { upsert: [{ key: '1', fields: { a: 1 } }] },
});

describe('compactSummary', () => {
  it('fits the termination message limit and keeps result, reason and counts', () => {
    const text = compactSummary(summary);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(TERMINATION_MESSAGE_LIMIT);
    const parsed = JSON.parse(text) as Record<string, unknown>;
    expect(parsed).toMatchObject({
      result: 'PartiallySucceeded',
      reason: 'RowsRejected',
      counts: summary.counts,
      runId: 'r1',
    });
    expect(parsed['samples']).toBeUndefined();
  });

  it('keeps a small summary whole, except samples and columns', () => {
    const small = { ...summary, message: 'ok', rejected: summary.rejected.slice(0, 2) };
    const parsed = JSON.parse(compactSummary(small)) as Record<string, unknown>;
    expect(parsed['rejected']).toEqual(small.rejected);
    expect(parsed['message']).toBe('ok');
  });
});

describe('backoff', () => {
  it('waits a random time up to base * 2^attempt, capped, and at least Retry-After', () => {
    const settings = { baseMs: 100, capMs: 1000 };
    expect(retryDelay(0, settings, 0, () => 0.999)).toBe(99);
    expect(retryDelay(3, settings, 0, () => 0.5)).toBe(400);
    expect(retryDelay(10, settings, 0, () => 0.999)).toBe(999);
    expect(retryDelay(0, settings, 0, () => 0)).toBe(0);
    expect(retryDelay(0, settings, 5000, () => 0.5)).toBe(5000);
  });

  it('picks the stricter limit', () => {
    expect(lowest(undefined, 5, 3)).toBe(3);
    expect(lowest(undefined, undefined)).toBeUndefined();
  });
});
