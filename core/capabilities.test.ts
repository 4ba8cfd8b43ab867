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

  describe('a match field, where the mode matches rows to records by one', () => {
    const saas: DestinationCapabilities = {
      ...caps,
      modes: ['upsert', 'insert', 'update'],
      needsTarget: 'object',
      requiresMatchField: ['upsert', 'update'],
      matchFieldHint: 'an External ID field',
    };
    const target = { object: 'Contact' };
    const deleteBehavior = 'ignore' as const;

    it('is required in those modes, naming the Sync, the destination type and the fix', () => {
      const upsert = capabilityProblem(saas, { mode: 'upsert', deleteBehavior, target }, 'salesforce', {
        sync: 'team/to-sf',
      });
      expect([upsert?.reason, upsert?.message]).toEqual([
        'MatchFieldRequired',
        'Sync team/to-sf: mode "upsert" matches rows to records of the salesforce destination by ' +
          'spec.target.matchField, which is not set: set it to an External ID field of object "Contact", ' +
          'and map it (usually from the primary key)',
      ]);
      expect(capabilityProblem(saas, { mode: 'update', deleteBehavior, target }, 'salesforce')?.reason).toBe(
        'MatchFieldRequired',
      );
    });

    it('names the unique fields when they were discovered, or that there are none', () => {
      const named = capabilityProblem(saas, { mode: 'upsert', deleteBehavior, target }, 'salesforce', {
        uniqueFields: ['External_Id__c', 'Email__c'],
      });
      expect(named?.message).toContain(
        'set it to one of the unique fields of object "Contact": External_Id__c, Email__c',
      );
      const none = capabilityProblem(saas, { mode: 'upsert', deleteBehavior, target }, 'salesforce', {
        uniqueFields: [],
      });
      expect(none?.message).toContain('include no unique one: make a field unique in the tool');
    });

    it('is not required in other modes, nor by destinations that match by other means', () => {
      expect(
        capabilityProblem(saas, { mode: 'insert', deleteBehavior, target }, 'salesforce'),
      ).toBeUndefined();
      expect(
        capabilityProblem(
          saas,
          { mode: 'upsert', deleteBehavior, target: { ...target, matchField: 'Ext__c' } },
          'sf',
        ),
      ).toBeUndefined();
      expect(
        capabilityProblem(
          { ...saas, requiresMatchField: undefined },
          { mode: 'upsert', deleteBehavior, target },
          'http',
        ),
      ).toBeUndefined();
    });
  });
});
