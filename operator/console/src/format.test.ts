import { describe, expect, it } from 'vitest';
import { apiBase, idempotencyKey } from './api.ts';
import { duration, relative, tone } from './format.ts';
import { parseRoute, routeHref } from './route.ts';

describe('format', () => {
  it('writes durations at the scale they have', () => {
    expect([duration(850), duration(4200), duration(200_000), duration(7_500_000)]).toEqual([
      '850 ms',
      '4.2 s',
      '3 min 20 s',
      '2 h 5 min',
    ]);
    expect(duration(undefined)).toBe('–');
  });

  it('writes times relative to now, in both directions', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    expect(relative('2026-01-01T12:05:00Z', now)).toBe('in 5 min');
    expect(relative('2026-01-01T09:00:00Z', now)).toBe('3 h ago');
    expect(relative('2026-01-01T12:00:03Z', now)).toBe('just now');
    expect(relative(undefined, now)).toBe('–');
  });

  it('gives results and statuses a tone', () => {
    expect(['Succeeded', 'PartiallySucceeded', 'False', 'Unknown'].map(tone)).toEqual([
      'ok',
      'warn',
      'bad',
      'idle',
    ]);
  });
});

describe('api', () => {
  it('finds the API under the prefix the console is served at', () => {
    expect(apiBase('/console/')).toBe('/api/v1');
    expect(apiBase('/syncline/console/')).toBe('/syncline/api/v1');
  });

  it('makes a new idempotency key each time', () => {
    expect(idempotencyKey()).toMatch(/^console-[0-9a-f]{32}$/);
    expect(idempotencyKey()).not.toBe(idempotencyKey());
  });
});

describe('routes', () => {
  it('reads and writes the pages of the fragment', () => {
    expect(parseRoute('')).toEqual({ page: 'syncs' });
    expect(parseRoute('#/?namespace=team-a')).toEqual({ page: 'syncs', namespace: 'team-a' });
    expect(parseRoute('#/ns/team-a/syncs/orders.v2')).toEqual({
      page: 'sync',
      namespace: 'team-a',
      name: 'orders.v2',
    });
    const run = { page: 'run', namespace: 'a', name: 'b', id: 'b-s-1', key: 'x/y z' } as const;
    expect(parseRoute(routeHref(run))).toEqual(run);
    expect(parseRoute('#/elsewhere')).toEqual({ page: 'syncs' });
  });
});
