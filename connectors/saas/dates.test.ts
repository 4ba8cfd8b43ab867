import { describe, expect, it } from 'vitest';
import { epochMsOfText } from './dates.ts';

describe('epochMsOfText', () => {
  it('reads dates as midnight UTC and timestamps in their zone (UTC without one), to the millisecond', () => {
    expect(epochMsOfText('2024-02-29')).toBe(Date.UTC(2024, 1, 29));
    expect(epochMsOfText('2024-02-29 13:14:15.123456')).toBe(Date.UTC(2024, 1, 29, 13, 14, 15, 123));
    expect(epochMsOfText('2024-02-29T13:14:15+02')).toBe(Date.UTC(2024, 1, 29, 11, 14, 15));
    expect(epochMsOfText('2024-02-29T13:14:15-0130')).toBe(Date.UTC(2024, 1, 29, 14, 44, 15));
  });

  it('refuses a day that does not exist and text that is no date', () => {
    expect(epochMsOfText('2023-02-29')).toBeUndefined();
    expect(epochMsOfText('2024-13-01 00:00')).toBeUndefined();
    expect(epochMsOfText('yesterday')).toBeUndefined();
  });
});
