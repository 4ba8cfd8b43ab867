// The statement-type rule on its own. Against BigQuery a dry run reports the type; the emulator the other
// tests use reports SELECT for every job (see test/warehouses/bigquery/README.md), so it cannot show a
// script refused, and this checks the rule the connector applies to what BigQuery reports.
import { describe, expect, it } from 'vitest';
import { isSynclineError } from '../../core/errors.ts';
import { checkStatementType } from './source.ts';

const labels = { namespace: 'growth', sync: 'accounts', runId: 'run-1', model: 'growth/accounts' };

describe('bigquery source: statement type', () => {
  it('accepts only SELECT', () => {
    expect(() => checkStatementType('SELECT', labels)).not.toThrow();
    for (const type of [
      'SCRIPT',
      'DELETE',
      'INSERT',
      'MERGE',
      'CREATE_TABLE_AS_SELECT',
      'EXPORT_DATA',
      undefined,
    ]) {
      let thrown: unknown;
      try {
        checkStatementType(type, labels);
      } catch (error) {
        thrown = error;
      }
      expect(isSynclineError(thrown) && thrown.reason).toBe('ModelNotReadOnly');
      expect((thrown as Error).message).toContain('Model growth/accounts must be a single read-only SELECT');
      expect((thrown as Error).message).toContain(`statement type ${type ?? '(none)'}`);
    }
  });
});
