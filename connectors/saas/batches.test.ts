import { describe, expect, it } from 'vitest';
import { byKey, chunk, jsonBytes, sendIsolating, writeByOperation, type PartOutcome } from './batches.ts';

describe('chunk', () => {
  it('keeps to records per request', () => {
    expect(chunk([1, 2, 3, 4, 5], { maxItems: 2 })).toEqual([[1, 2], [3, 4], [5]]);
  });
  it('keeps to bytes per request, an oversized item alone', () => {
    const items = ['a'.repeat(10), 'b'.repeat(10), 'c'.repeat(50), 'd'];
    const groups = chunk(items, { maxItems: 100, maxBytes: 30, size: jsonBytes });
    expect(groups).toEqual([[items[0], items[1]], [items[2]], [items[3]]]);
  });
});

describe('sendIsolating', () => {
  it('bisects a rejected batch down to the bad rows, delivers the good ones with few requests', async () => {
    const items = Array.from({ length: 16 }, (_, i) => i);
    const bad = new Set([3, 11]);
    const sent: number[][] = [];
    const delivered: number[] = [];
    const send = async (part: readonly number[]): Promise<PartOutcome<{ ok: true; id: number }>> => {
      sent.push([...part]);
      const culprit = part.find((i) => bad.has(i));
      if (culprit !== undefined)
        return {
          kind: 'rejected',
          splittable: true,
          failure: { ok: false, reason: `Property values were not valid (row ${culprit})`, retryable: false },
        };
      delivered.push(...part);
      return { kind: 'items', outcomes: part.map((id) => ({ ok: true as const, id })) };
    };
    const results = await sendIsolating(items, send);
    expect(results.map((r) => r.ok)).toEqual(items.map((i) => !bad.has(i)));
    expect(results[3]).toMatchObject({ ok: false, reason: 'Property values were not valid (row 3)' });
    expect(delivered.sort((a, b) => a - b)).toEqual(items.filter((i) => !bad.has(i)));
    expect(sent.length).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(16)) * 2 + 1);
  });

  it('does not split a refusal one row cannot cause (a 429, a 5xx)', async () => {
    let calls = 0;
    const results = await sendIsolating<number, { ok: true }>([1, 2, 3, 4], async () => {
      calls++;
      return {
        kind: 'rejected',
        splittable: false,
        failure: { ok: false, reason: 'HTTP 503', retryable: true },
      };
    });
    expect(calls).toBe(1);
    expect(results.every((r) => !r.ok && r.retryable)).toBe(true);
  });

  it('sends nothing once the run is stopped', async () => {
    const controller = new AbortController();
    controller.abort();
    const results = await sendIsolating(
      [1, 2],
      async () => {
        throw new Error('sent');
      },
      { signal: controller.signal },
    );
    expect(results).toEqual([
      { ok: false, reason: 'not sent: the run was stopped', retryable: true },
      { ok: false, reason: 'not sent: the run was stopped', retryable: true },
    ]);
  });
});

describe('byKey', () => {
  it('maps results back by key whatever their order, case-insensitively when asked', () => {
    const results = [
      { id: '2', email: 'b@x.com' },
      { id: '1', email: 'a@x.com' },
    ];
    const out = byKey(
      [['A@X.com'], ['b@x.com'], ['c@x.com']],
      results,
      (r) => [r.email],
      () => ({ ok: false as const, reason: 'no result', retryable: false }),
      (k) => k.toLowerCase(),
    );
    expect(out).toEqual([results[1], results[0], { ok: false, reason: 'no result', retryable: false }]);
  });
});

describe('writeByOperation', () => {
  it('answers refused changes at once and the rest per operation, each result in its change’s place', async () => {
    type Change = { operation: string; key: string };
    type Item = { index: number; change: Change };
    type Result = { ok: boolean; id?: string; why?: string };
    const batch: Change[] = [
      { operation: 'upsert', key: 'a' },
      { operation: 'delete', key: 'b' },
      { operation: 'upsert', key: 'bad' },
      { operation: 'upsert', key: 'c' },
    ];
    const calls: string[] = [];
    const results = await writeByOperation<Item, Result>(
      batch,
      (change, index) => (change.key === 'bad' ? { ok: false, why: 'refused' } : { index, change }),
      async (operation, items) => {
        calls.push(`${operation}:${items.map((i) => i.change.key).join(',')}`);
        return items.map((i) => ({ ok: true, id: `${operation}-${i.change.key}` }));
      },
    );
    expect(calls).toEqual(['upsert:a,c', 'delete:b']);
    expect(results).toEqual([
      { ok: true, id: 'upsert-a' },
      { ok: true, id: 'delete-b' },
      { ok: false, why: 'refused' },
      { ok: true, id: 'upsert-c' },
    ]);
  });
});
