import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DuckDBConnection } from '@duckdb/node-api';
import { changeBuilder, fieldsSql, idempotencyKey, jsonValueSql } from './fields.ts';
import { resolveShape } from './mappings.ts';

let instance: DuckDBInstance;
let conn: DuckDBConnection;
beforeAll(async () => {
  instance = await DuckDBInstance.create(':memory:');
  conn = await instance.connect();
  await conn.run("SET TimeZone = 'UTC'");
});
afterAll(() => {
  conn.closeSync();
  instance.closeSync();
});

async function value(sql: string): Promise<unknown> {
  const reader = await conn.runAndReadAll(`SELECT CAST(${sql} AS VARCHAR) AS v`);
  return JSON.parse(String(reader.getRowsJson()[0]?.[0]));
}

describe('jsonValueSql', () => {
  it('keeps every value exact and JSON-safe', async () => {
    expect(await value(jsonValueSql('42::BIGINT', 'BIGINT'))).toBe(42);
    expect(await value(jsonValueSql('9223372036854775807::BIGINT', 'BIGINT'))).toBe('9223372036854775807');
    expect(await value(jsonValueSql('12345678901234567890.123456789::DECIMAL(38,9)', 'DECIMAL(38,9)'))).toBe(
      '12345678901234567890.123456789',
    );
    expect(await value(jsonValueSql("'nan'::DOUBLE", 'DOUBLE'))).toBe('NaN');
    expect(await value(jsonValueSql("'-inf'::DOUBLE", 'DOUBLE'))).toBe('-Infinity');
    expect(await value(jsonValueSql("'inf'::REAL", 'REAL'))).toBe('Infinity');
    expect(await value(jsonValueSql('NULL::DOUBLE', 'DOUBLE'))).toBe(null);
    expect(await value(jsonValueSql('1.5::DOUBLE', 'DOUBLE'))).toBe(1.5);
    expect(
      await value(jsonValueSql("TIMESTAMPTZ '2024-05-06 07:08:09.5+02'", 'TIMESTAMP WITH TIME ZONE')),
    ).toBe('2024-05-06T05:08:09.500000Z');
    expect(await value(jsonValueSql(`'{"a":[1,{"b":null}]}'::JSON`, 'JSON'))).toEqual({
      a: [1, { b: null }],
    });
    expect(await value(jsonValueSql("['x', NULL]::VARCHAR[]", 'VARCHAR[]'))).toEqual(['x', null]);
    expect(await value(jsonValueSql(`'line\nbreak "quoted" ✓'`, 'VARCHAR'))).toBe('line\nbreak "quoted" ✓');
  });
});

describe('fieldsSql and changeBuilder', () => {
  const columns = [
    { name: 'id', type: 'INTEGER' },
    { name: 'first', type: 'VARCHAR' },
    { name: 'city', type: 'VARCHAR' },
  ];
  const shape = resolveShape({
    mappings: [
      { to: 'id', from: 'id', valueType: 'string' },
      { to: 'address.city', from: 'city', valueType: 'string' },
      { to: 'address.kind', value: 'home', valueType: 'string' },
      { to: 'greeting', template: 'Hello {{ row.first }}', valueType: 'string' },
      { to: 'vip', value: 'true', valueType: 'boolean' },
    ],
    columns,
    primaryKey: 'id',
    comparesAllColumns: false,
  });
  const sql = fieldsSql(shape, 'id', 'p.id');

  it('builds nested fields, static values and template slots in SQL, and renders templates in JS', async () => {
    const reader = await conn.runAndReadAll(
      `SELECT CAST(json_object('operation', 'upsert', 'key', '1', 'fields', ${sql.fields}, 'change', 'added', 'row', ${sql.row}, 'epoch', 'run-1') AS VARCHAR) ` +
        `FROM (SELECT 1 AS id, 'Ada' AS first, 'London' AS city) c`,
    );
    const change = changeBuilder(shape, 'ns/sync')(String(reader.getRowsJson()[0]?.[0]));
    expect(change.fields).toEqual({
      id: 1,
      address: { city: 'London', kind: 'home' },
      greeting: 'Hello Ada',
      vip: true,
    });
    expect(change.idempotencyKey).toBe(
      idempotencyKey('ns/sync', '1', 'upsert', JSON.stringify(change.fields), 'run-1'),
    );
  });

  it('sends only the key fields for a delete, and empties the others for a clear', async () => {
    const reader = await conn.runAndReadAll(
      `SELECT CAST(${sql.removal.delete} AS VARCHAR), CAST(${sql.removal.clear} AS VARCHAR) FROM (SELECT 7 AS id) p`,
    );
    const [del, clear] = reader.getRowsJson()[0] as [string, string];
    expect(JSON.parse(del)).toEqual({ id: 7 });
    expect(JSON.parse(clear)).toEqual({
      id: 7,
      address: { city: null, kind: null },
      greeting: null,
      vip: null,
    });
  });

  it('gives the same change of one epoch the same idempotency key, and different changes different keys', () => {
    const a = idempotencyKey('ns/s', '1', 'upsert', '{"a":1}', 'r1');
    expect(idempotencyKey('ns/s', '1', 'upsert', '{"a":1}', 'r1')).toBe(a);
    expect(idempotencyKey('ns/s', '1', 'update', '{"a":1}', 'r1')).not.toBe(a);
    expect(idempotencyKey('ns/s', '2', 'upsert', '{"a":1}', 'r1')).not.toBe(a);
    expect(idempotencyKey('ns/s', '1', 'upsert', '{"a":2}', 'r1')).not.toBe(a);
    expect(idempotencyKey('ns/t', '1', 'upsert', '{"a":1}', 'r1')).not.toBe(a);
    // The same values sent again by a later run (A→B→A) are another change.
    expect(idempotencyKey('ns/s', '1', 'upsert', '{"a":1}', 'r3')).not.toBe(a);
  });
});
