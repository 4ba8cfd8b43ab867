import { describe, expect, it } from 'vitest';
import type { Mapping } from '../../crds/index.ts';
import type { ColumnInfo } from '../../core/connectors.ts';
import { mappedColumns } from './table.ts';

const columns: ColumnInfo[] = [
  { name: 'id', type: 'BIGINT' },
  { name: 'note', type: 'VARCHAR' },
];

describe('mappedColumns', () => {
  it('lets a later mapping to the same field replace an earlier one, in the earlier one’s place, as the engine does', () => {
    const mappings: Mapping[] = [
      { to: 'a', from: 'id', valueType: 'string' },
      { to: 'b', from: 'id', valueType: 'string' },
      { to: 'a', from: 'note', valueType: 'string' },
      { to: 'c.x', from: 'id', valueType: 'string' },
      { to: 'c', from: 'id', valueType: 'string' },
      { to: 'd', from: 'id', valueType: 'string' },
      { to: 'd.x', from: 'id', valueType: 'string' },
    ];
    expect(mappedColumns(mappings, columns)).toEqual([
      { name: 'a', type: 'text' },
      { name: 'b', type: 'bigint' },
      { name: 'c', type: 'bigint' },
      { name: 'd', type: 'jsonb' },
    ]);
  });
});
