import { describe, expect, it } from 'vitest';
import { exactNumber, isRawJson, parseDuckJson, parseJsonExact, toJson, toPgText } from './values.ts';

describe('parseJsonExact', () => {
  it('keeps numbers a double holds as numbers and every other as its exact text', () => {
    const parsed = parseJsonExact(
      '{"small":42,"half":1.5,"one":1.0,"e":1e3,"big":9007199254740993,"huge":123456789012345678901234567890,' +
        '"long":0.1000000000000000000001,"inf":1e400,"neg":-0,"negf":-0.0,"list":[18446744073709551617,2]}',
    ) as Record<string, unknown>;
    expect(parsed['small']).toBe(42);
    expect(parsed['half']).toBe(1.5);
    expect(parsed['one']).toBe(1);
    expect(parsed['e']).toBe(1000);
    expect(Object.is(parsed['neg'], -0)).toBe(true);
    expect(Object.is(parsed['negf'], -0)).toBe(true);
    for (const name of ['big', 'huge', 'long', 'inf']) expect(isRawJson(parsed[name]), name).toBe(true);
    expect(toJson(parsed)).toBe(
      '{"small":42,"half":1.5,"one":1,"e":1000,"big":9007199254740993,"huge":123456789012345678901234567890,' +
        '"long":0.1000000000000000000001,"inf":1e400,"neg":-0,"negf":-0,"list":[18446744073709551617,2]}',
    );
    // JSON.stringify writes RawJson as it is too (plan samples, run summaries).
    expect(JSON.stringify(parsed['list'])).toBe('[18446744073709551617,2]');
  });

  it('tells exact doubles from rounded ones by their digits', () => {
    expect(exactNumber('0.1', 0.1)).toBe(0.1);
    expect(exactNumber('100000000000000000000.0', 1e20)).toBe(1e20);
    expect(isRawJson(exactNumber('9007199254740993', 9007199254740992))).toBe(true);
    expect(isRawJson(exactNumber('0.1000000000000000055511151231257827', 0.1))).toBe(true);
  });
});

describe('toPgText', () => {
  it('writes RawJson numbers and -0 exactly into jsonb, arrays and numeric columns', () => {
    const doc = parseJsonExact('{"a":9007199254740993,"b":[0.1000000000000000000001]}');
    expect(toPgText(doc, 'jsonb')).toBe('{"a":9007199254740993,"b":[0.1000000000000000000001]}');
    expect(toPgText(parseJsonExact('[9007199254740993,-9223372036854775808]'), 'bigint[]')).toBe(
      '{"9007199254740993","-9223372036854775808"}',
    );
    expect(toPgText(parseJsonExact('123456789012345678901234567890.5'), 'numeric')).toBe(
      '123456789012345678901234567890.5',
    );
    expect(toPgText(-0, 'double precision')).toBe('-0');
    expect(toPgText(parseJsonExact('[-0.0,1.5]'), 'double precision[]')).toBe('{"-0","1.5"}');
  });
});

describe('parseDuckJson', () => {
  it("reads DuckDB's bare NaN/Infinity as strings and leaves the same words inside strings alone", () => {
    expect(parseDuckJson('[NaN,-Infinity,Infinity,-0.0,"NaN \\" Infinity",{"a":NaN}]')).toEqual([
      'NaN',
      '-Infinity',
      'Infinity',
      -0,
      'NaN " Infinity',
      { a: 'NaN' },
    ]);
    expect(Object.is((parseDuckJson('[-0.0]') as number[])[0], -0)).toBe(true);
  });

  it('still fails on text that is not JSON for another reason', () => {
    expect(() => parseDuckJson('[NaN,')).toThrow(SyntaxError);
    expect(() => parseDuckJson('{oops}')).toThrow(SyntaxError);
  });
});
