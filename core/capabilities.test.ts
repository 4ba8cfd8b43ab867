import { describe, expect, it } from 'vitest';
import { capabilityProblem } from './capabilities.ts';
import type { DestinationCapabilities } from './connectors.ts';

const caps: DestinationCapabilities = {
  modes: ['upsert', 'insert'],
  deleteBehaviors: ['delete'],
  comparesAllColumns: false,
  defaultBatchSize: 100,
  needsTarget: 'table',
};

describe('capabilityProblem', () => {
  it('accepts what the destination supports, and ignoring deletes always', () => {
    expect(
      capabilityProblem(caps, { mode: 'upsert', deleteBehavior: 'delete', target: { table: 't' } }, 'x'),
    ).toBeUndefined();
    expect(
      capabilityProblem(caps, { mode: 'insert', deleteBehavior: 'ignore', target: { table: 't' } }, 'x'),
    ).toBeUndefined();
  });

  it('names the mode, the delete behaviour or the target the destination lacks', () => {
    const mode = capabilityProblem(
      caps,
      { mode: 'all', deleteBehavior: 'ignore', target: { table: 't' } },
      'pg',
    );
    expect([mode?.reason, mode?.message]).toEqual([
      'UnsupportedMode',
      'mode "all" is not supported by pg destinations; use one of: upsert, insert',
    ]);
    const deletes = capabilityProblem(
      caps,
      { mode: 'upsert', deleteBehavior: 'clear', target: { table: 't' } },
      'pg',
    );
    expect(deletes?.reason).toBe('UnsupportedDeleteBehavior');
    expect(deletes?.message).toContain('use one of: ignore, delete');
    const target = capabilityProblem(caps, { mode: 'upsert', deleteBehavior: 'delete' }, 'pg');
    expect(target?.reason).toBe('MissingTarget');
    expect(target?.message).toContain('spec.target.table');
  });
});
