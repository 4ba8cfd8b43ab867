import { describe, expect, it } from 'vitest';
import { modelSpec, type ModelSpec } from '../../crds/index.ts';
import { isSynclineError } from '../errors.ts';
import { compileSegment } from './compile.ts';
import type { SegmentDialect } from './dialects.ts';
import { splitBounds, splitGroupOf } from './splits.ts';

const sourceRef = { name: 'dw' };
const MODELS: Record<string, ModelSpec> = {
  people: modelSpec.parse({
    sourceRef,
    table: 'Analytics."People"',
    primaryKey: 'id',
    filterable: [
      { name: 'name', type: 'string' },
      { name: 'ltv', type: 'number' },
    ],
  }),
};

function compile(where: Record<string, unknown>, dialect: SegmentDialect = 'postgres'): string {
  const spec = modelSpec.parse({ sourceRef, segment: { parent: { name: 'people' }, where } });
  return compileSegment({ name: 'seg', spec }, dialect, (n) => (n === 'seg' ? spec : MODELS[n])).sql;
}

function failure(where: Record<string, unknown>): { reason: string; message: string } {
  try {
    compile(where);
  } catch (error) {
    if (isSynclineError(error)) return { reason: error.reason, message: error.message };
    throw error;
  }
  throw new Error('expected the segment not to compile');
}

const HOSTILE = "it's a \\ '; DROP TABLE people; --\nnext";

describe('segment values are literals of each dialect', () => {
  it.each([
    ['postgres', `'it''s a \\ ''; DROP TABLE people; --\nnext'`],
    ['duckdb', `'it''s a \\ ''; DROP TABLE people; --\nnext'`],
    ['mysql', `'it''s a \\\\ ''; DROP TABLE people; --\nnext'`],
    ['snowflake', `('it''s a ' || CHR(92) || ' ''; DROP TABLE people; --\nnext')`],
    ['bigquery', `'it\\'s a \\\\ \\'; DROP TABLE people; --\\nnext'`],
  ] as const)('%s', (dialect, literal) => {
    expect(compile({ column: 'name', equals: HOSTILE }, dialect)).toContain(literal);
  });

  it('a number written as text is compiled as a number', () => {
    expect(compile({ column: 'ltv', gt: '10.5' })).toMatch(/"p"\."ltv" > 10\.5\)?$/);
  });
});

describe('segment names', () => {
  it("quote the parent's table as its connector does: unquoted parts folded as the database folds them, quoted ones kept", () => {
    expect(compile({ column: 'ltv', isNull: true })).toContain(
      'from (SELECT * FROM "analytics"."People") as "p"',
    );
    expect(compile({ column: 'ltv', isNull: true }, 'snowflake')).toContain('FROM "ANALYTICS"."People"');
    expect(compile({ column: 'ltv', isNull: true }, 'duckdb')).toContain(`FROM 'Analytics."People"'`);
  });

  it('refuse a column that is not filterable, naming the closest one', () => {
    expect(failure({ column: 'ltvv', gt: 1 })).toEqual({
      reason: 'UnknownSegmentColumn',
      message:
        'spec.segment.where: column "ltvv" is not a filterable column of Model "people": did you mean "ltv"?',
    });
  });

  it('refuse a relationship the parent does not declare', () => {
    expect(failure({ related: { relationship: 'orders' } }).reason).toBe('UnknownRelationship');
  });
});

describe('splits', () => {
  it('bound each group by its cumulative share of 2^32, as 8 hex digits', () => {
    expect(
      splitBounds([
        { name: 't', percent: 90 },
        { name: 'h', percent: 10 },
      ]),
    ).toEqual([{ name: 't', below: 'e6666666' }, { name: 'h' }]);
    expect(
      splitBounds([
        { name: 'a', percent: 25 },
        { name: 'b', percent: 25 },
        { name: 'c', percent: 50 },
      ]),
    ).toEqual([{ name: 'a', below: '40000000' }, { name: 'b', below: '80000000' }, { name: 'c' }]);
  });

  it('put about each share of many keys in its group', () => {
    const segment = {
      splits: [
        { name: 't', percent: 90 },
        { name: 'h', percent: 10 },
      ],
      splitSalt: 's',
    };
    const groups = Array.from({ length: 10_000 }, (_, i) => splitGroupOf(segment, String(i)));
    const holdout = groups.filter((g) => g === 'h').length;
    expect(holdout).toBeGreaterThan(900);
    expect(holdout).toBeLessThan(1100);
  });
});
