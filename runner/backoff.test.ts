// The delivery's rate limit, on a fake clock: how many requests may start in each second does not depend
// on how busy the machine is.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { rateLimiter } from './backoff.ts';

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-12-03T00:00:00Z') });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Start `n` acquisitions at once; the times (ms since the start) at which each was granted. */
function acquireAll(limiter: ReturnType<typeof rateLimiter>, n: number, signal?: AbortSignal) {
  const start = Date.now();
  const granted: number[] = [];
  const settled = Array.from({ length: n }, () =>
    limiter.acquire(signal).then(
      () => void granted.push(Date.now() - start),
      (error: unknown) => error,
    ),
  );
  return { granted, settled };
}

describe('the delivery rate limit', () => {
  it('grants no more than the rate in any second, starting empty, and every request in the end', async () => {
    const { granted, settled } = acquireAll(rateLimiter(20), 50);
    await vi.advanceTimersByTimeAsync(0);
    expect(granted).toEqual([]); // no burst on top of the rate
    await vi.advanceTimersByTimeAsync(3000);
    await Promise.all(settled);
    expect(granted).toHaveLength(50);
    for (const at of granted) {
      const inWindow = granted.filter((t) => t >= at && t < at + 1000).length;
      expect(inWindow, `requests granted in the second from ${at} ms`).toBeLessThanOrEqual(20);
    }
    // 50 at 20 per second: the last no sooner than 2.5 s of the fake clock.
    expect(Math.max(...granted)).toBeGreaterThanOrEqual(2450);
  });

  it('never waits without a rate, and a stopped run stops waiting', async () => {
    const free = acquireAll(rateLimiter(undefined), 100);
    await vi.advanceTimersByTimeAsync(0);
    expect(free.granted).toHaveLength(100);

    const controller = new AbortController();
    const slow = acquireAll(rateLimiter(1), 5, controller.signal);
    await vi.advanceTimersByTimeAsync(1500);
    expect(slow.granted).toHaveLength(1);
    controller.abort(new Error('stopped'));
    const outcomes = await Promise.all(slow.settled);
    expect(outcomes.filter((o) => o instanceof Error)).toHaveLength(4);
    expect(slow.granted).toHaveLength(1);
  });
});
