import { describe, expect, it } from 'vitest';
import { modelFingerprint, resolveShape, staticValue } from './mappings.ts';

const columns = [
  { name: 'id', type: 'BIGINT' },
  { name: 'first', type: 'VARCHAR' },
  { name: 'last', type: 'VARCHAR' },
  { name: 'meta', type: 'JSON' },
];

describe('resolveShape', () => {
  it('maps every column when mappings are omitted, and compares them', () => {
    const shape = resolveShape({ mappings: undefined, columns, primaryKey: 'id', comparesAllColumns: false });
    expect(shape.mappings.map((m) => m.to)).toEqual(['id', 'first', 'last', 'meta']);
    expect(shape.compared.map((c) => c.name)).toEqual(['id', 'first', 'last', 'meta']);
    expect(shape.keyFields).toEqual(['id']);
  });

  it('compares the columns the mappings read, template variables, and each static value and template', () => {
    const shape = resolveShape({
      mappings: [
        { to: 'user_id', from: 'id', valueType: 'string' },
        { to: 'name', template: '{{ row.first | upcase }} {{ row["last"] }}', valueType: 'string' },
        { to: 'source', value: '7', valueType: 'number' },
      ],
      columns,
      primaryKey: 'id',
      comparesAllColumns: false,
    });
    expect(shape.readColumns.map((c) => c.name)).toEqual(['id', 'first', 'last']);
    // id goes to the field user_id: the pair is compared too, so renaming the field resends.
    expect(shape.compared.map((c) => c.name)).toEqual([
      'id',
      'first',
      'last',
      'user_id=id',
      '__syncline_template:name',
      '__syncline_value:source',
    ]);
    expect(shape.compared.find((c) => c.name === 'user_id=id')).toMatchObject({
      column: 'id',
      sql: 'c."id"',
    });
    expect(shape.compared.find((c) => c.name === '__syncline_value:source')?.sql).toBe("'7'");
    expect(shape.keyFields).toEqual(['user_id']);
  });

  it('compares every column for destinations that compare all columns', () => {
    const shape = resolveShape({
      mappings: [{ to: 'id', from: 'id', valueType: 'string' }],
      columns,
      primaryKey: 'id',
      comparesAllColumns: true,
    });
    expect(shape.compared.map((c) => c.name)).toEqual(['id', 'first', 'last', 'meta']);
  });

  it('a template that reads the whole row reads every column', () => {
    const shape = resolveShape({
      mappings: [{ to: 'all', template: '{{ row | json }}', valueType: 'string' }],
      columns,
      primaryKey: 'id',
      comparesAllColumns: false,
    });
    expect(shape.readColumns).toHaveLength(4);
  });

  it('names the unknown column and the columns there are', () => {
    expect(() =>
      resolveShape({
        mappings: [{ to: 'x', from: 'nope', valueType: 'string' }],
        columns,
        primaryKey: 'id',
        comparesAllColumns: false,
      }),
    ).toThrow(
      /mapping to "x" reads column "nope", which the model does not have; the model's columns are: id, first, last, meta/,
    );
    expect(() =>
      resolveShape({ mappings: undefined, columns, primaryKey: 'uid', comparesAllColumns: false }),
    ).toThrow(/primary key reads column "uid"/);
    expect(() =>
      resolveShape({
        mappings: [{ to: 'x', template: '{{ row.nope }}', valueType: 'string' }],
        columns,
        primaryKey: 'id',
        comparesAllColumns: false,
      }),
    ).toThrow(expect.objectContaining({ reason: 'UnknownColumn' }));
    expect(() =>
      resolveShape({
        mappings: [{ to: 'x', template: '{{ row.first', valueType: 'string' }],
        columns,
        primaryKey: 'id',
        comparesAllColumns: false,
      }),
    ).toThrow(expect.objectContaining({ reason: 'InvalidTemplate' }));
  });
});

describe('staticValue and modelFingerprint', () => {
  it('types static values as valueType says', () => {
    expect(staticValue({ to: 'a', value: '42', valueType: 'number' })).toBe(42);
    expect(staticValue({ to: 'a', value: 'true', valueType: 'boolean' })).toBe(true);
    expect(staticValue({ to: 'a', value: '{"x":[1]}', valueType: 'json' })).toEqual({ x: [1] });
    expect(staticValue({ to: 'a', value: '42', valueType: 'string' })).toBe('42');
    expect(() => staticValue({ to: 'a', value: '{', valueType: 'json' })).toThrow(
      expect.objectContaining({ reason: 'InvalidMapping' }),
    );
  });

  it('changes with column names and primary key, not with order or types', () => {
    const base = modelFingerprint(columns, 'id');
    expect(modelFingerprint([...columns].reverse(), 'id')).toBe(base);
    expect(
      modelFingerprint(
        columns.map((c) => ({ ...c, type: 'VARCHAR' })),
        'id',
      ),
    ).toBe(base);
    expect(modelFingerprint([...columns, { name: 'extra', type: 'INTEGER' }], 'id')).not.toBe(base);
    expect(modelFingerprint(columns, 'first')).not.toBe(base);
  });
});

describe('context columns (associations)', () => {
  it('reads and compares them without mapping them, and names an unknown one', () => {
    const shape = resolveShape({
      mappings: [{ to: 'user_id', from: 'id', valueType: 'string' }],
      columns,
      primaryKey: 'id',
      comparesAllColumns: false,
      contextColumns: ['last'],
    });
    expect(shape.contextColumns.map((c) => c.name)).toEqual(['last']);
    expect(shape.readColumns.map((c) => c.name)).toContain('last');
    expect(shape.compared.map((c) => c.name)).toContain('last');
    expect(shape.mappings.map((m) => m.to)).toEqual(['user_id']);
    expect(() =>
      resolveShape({
        mappings: undefined,
        columns,
        primaryKey: 'id',
        comparesAllColumns: false,
        contextColumns: ['nope'],
      }),
    ).toThrow(/nope/);
  });
});
