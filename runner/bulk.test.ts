import { DuckDBInstance, type DuckDBBlobValue, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ColumnInfo } from '../core/connectors.ts';
import { toPgText } from '../connectors/shared/values.ts';
import type { Mapping } from '../crds/index.ts';
import {
  bulkBatchSql,
  bulkKeysSql,
  bulkLineSql,
  bulkRowsSource,
  bulkRowsSql,
  KEY_SEPARATOR,
  lineFor,
} from './bulk.ts';
import { operationsQuery } from './diff.ts';
import { noEpochs } from './pending.ts';
import { changeBuilder } from './fields.ts';
import { resolveShape, SNAPSHOT_KEY } from './mappings.ts';

let instance: DuckDBInstance;
let conn: DuckDBConnection;

/** A CSV line as BulkBatch defines it: text quoted, other values bare, an unquoted empty value is null. */
function parseLine(line: string): (string | null)[] {
  expect(line.endsWith('\n')).toBe(true);
  const values: (string | null)[] = [];
  let i = 0;
  const body = line.slice(0, -1);
  for (;;) {
    if (body[i] === '"') {
      let text = '';
      i++;
      for (;;) {
        const q = body.indexOf('"', i);
        text += body.slice(i, q);
        if (body[q + 1] === '"') {
          text += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      values.push(text);
    } else {
      const end = body.indexOf(',', i);
      const bare = body.slice(i, end === -1 ? body.length : end);
      expect(bare).not.toMatch(/["\n]/);
      values.push(bare === '' ? null : bare);
      i += bare.length;
    }
    if (i >= body.length) break;
    expect(body[i]).toBe(',');
    i++;
    if (i === body.length) {
      values.push(null);
      break;
    }
  }
  return values;
}

const COLUMNS: ColumnInfo[] = [
  { name: 'id', type: 'BIGINT' },
  { name: 'big', type: 'HUGEINT' },
  { name: 'amount', type: 'DECIMAL(38,9)' },
  { name: 'score', type: 'DOUBLE' },
  { name: 'ratio', type: 'FLOAT' },
  { name: 'active', type: 'BOOLEAN' },
  { name: 'at', type: 'TIMESTAMP WITH TIME ZONE' },
  { name: 'local', type: 'TIMESTAMP' },
  { name: 'day', type: 'DATE' },
  { name: 'clock', type: 'TIME' },
  { name: 'span', type: 'INTERVAL' },
  { name: 'uid', type: 'UUID' },
  { name: 'note', type: 'VARCHAR' },
];

beforeAll(async () => {
  instance = await DuckDBInstance.create(':memory:');
  conn = await instance.connect();
  await conn.run("SET TimeZone = 'UTC'");
  await conn.run(`CREATE TABLE valid_rows (${COLUMNS.map((c) => `"${c.name}" ${c.type}`).join(', ')})`);
  await conn.run(`INSERT INTO valid_rows VALUES
    (1, 170141183460469231731687303715884105727, 12345678901234567890.123456789, 0.1, 0.1, true,
     TIMESTAMPTZ '2024-05-06 07:08:09.5+02', TIMESTAMP '2024-05-06 07:08:09.123456', DATE '2024-02-29',
     TIME '23:59:59.5', INTERVAL '1 day 2 hours', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
     'say "hi",' || chr(10) || 'bye ✓'),
    (2, -1, -0.5, 'inf', 'nan', false, NULL, NULL, NULL, NULL, NULL, NULL, ''),
    (3, NULL, NULL, 1e300, -1.5, NULL, TIMESTAMPTZ '1970-01-01 00:00:00+00', NULL, NULL, NULL, NULL, NULL, NULL)`);
  // Two rows still in the model (one upsert, one unchanged), one removed row per removal kind.
  await conn.run(`CREATE TABLE diff AS SELECT * FROM (VALUES
    ('1', 'added', 'upsert', 1::BIGINT, NULL::BIGINT),
    ('2', 'changed', 'upsert', 2, NULL),
    ('3', 'changed', 'upsert', 3, NULL),
    ('9', 'removed', 'delete', NULL, 9),
    ('10', 'removed', 'clear', NULL, 10),
    ('11', 'removed', 'delete', NULL, NULL)
  ) t(${SNAPSHOT_KEY}, change, op, current_key, previous_key)`);
});

afterAll(() => {
  conn?.closeSync();
  instance?.closeSync();
});

function shapeOf(mappings: Mapping[] | undefined, columns = COLUMNS) {
  return resolveShape({ mappings, columns, primaryKey: 'id', comparesAllColumns: false });
}

describe('bulk lines', () => {
  it('carry the text the row-object path delivers, for every scalar type and every operation', async () => {
    const mappings: Mapping[] = [
      ...COLUMNS.map((c) => ({ to: c.name, from: c.name, valueType: 'string' as const })),
      { to: 'origin', value: 'syncline "bench"', valueType: 'string' },
      { to: 'weight', value: '2.5', valueType: 'number' },
      { to: 'flag', value: 'true', valueType: 'boolean' },
    ];
    const shape = shapeOf(mappings);
    const fields = mappings.map((m) => m.to);
    const line = bulkLineSql(shape, 'id', fields);
    expect(line).toBeDefined();

    const bulk = new Map<string, (string | null)[]>();
    for (const op of ['upsert', 'delete', 'clear'] as const) {
      await conn.run(bulkRowsSql('batch', shape, 'id', op));
      // Two batches of the operation's rows, each one CSV text and its keys in the same order.
      for (const [from, to] of [
        [0, 2],
        [2, 10],
      ] as const) {
        const reader = await conn.runAndReadAll(
          bulkBatchSql(bulkRowsSource('batch'), lineFor(line!, op), from, to),
        );
        const [blob, joined, separated] = reader.getRows()[0] ?? [];
        if (blob === null) continue;
        const csv = Buffer.from((blob as DuckDBBlobValue).bytes).toString('utf8');
        expect(separated).toBe(true);
        const keys = String(joined).split(KEY_SEPARATOR);
        const json = await conn.runAndReadAll(bulkKeysSql(bulkRowsSource('batch'), from, to));
        expect(JSON.parse(String(json.getRows()[0]?.[0]))).toEqual(keys);
        const lines = csv.match(/(?:[^"\n]|"(?:[^"]|"")*")*\n/g) ?? [];
        expect(lines.join('')).toBe(csv);
        expect(lines).toHaveLength(keys.length);
        keys.forEach((key, i) => bulk.set(key, parseLine(lines[i] as string)));
      }
    }
    const toChange = changeBuilder(shape, 'ns/sync');
    await noEpochs(conn);
    const rows = await conn.runAndReadAll(
      operationsQuery({ shape, primaryKey: 'id', syncId: 'ns/sync', runId: 'run-1' }),
    );
    const changes = rows.getRowsJson().map(([json]) => toChange(String(json)));
    expect(changes).toHaveLength(6);
    expect([...bulk.keys()].sort()).toEqual(changes.map((c) => c.key).sort());
    for (const change of changes) {
      const expected = fields.map((f) => {
        const value = change.fields[f];
        // The postgres writer puts the key text where a removed row's previous key is unknown.
        if (f === 'id' && (value === null || value === undefined)) return change.key;
        return toPgText(value, 'text');
      });
      expect({ key: change.key, values: bulk.get(change.key) }).toEqual({
        key: change.key,
        values: expected,
      });
    }
    // Spot checks of the harder values.
    expect(bulk.get('1')?.[fields.indexOf('note')]).toBe('say "hi",\nbye ✓');
    expect(bulk.get('2')?.[fields.indexOf('note')]).toBe('');
    expect(bulk.get('3')?.[fields.indexOf('note')]).toBeNull();
    expect(bulk.get('1')?.[fields.indexOf('at')]).toBe('2024-05-06T05:08:09.500000Z');
    expect(bulk.get('9')).toEqual(fields.map((f) => (f === 'id' ? '9' : null)));
    expect(bulk.get('11')?.[0]).toBe('11');
  });

  it('are not offered where a field needs the row-object path', () => {
    const withList: ColumnInfo[] = [...COLUMNS, { name: 'tags', type: 'VARCHAR[]' }];
    const all = (cols: ColumnInfo[]) => cols.map((c) => c.name);
    expect(bulkLineSql(shapeOf(undefined, withList), 'id', all(withList))).toBeUndefined();
    const template: Mapping[] = [
      { to: 'id', from: 'id', valueType: 'string' },
      { to: 'greeting', template: 'hi {{ row.note }}', valueType: 'string' },
    ];
    expect(bulkLineSql(shapeOf(template), 'id', ['id', 'greeting'])).toBeUndefined();
    const nested: Mapping[] = [
      { to: 'id', from: 'id', valueType: 'string' },
      { to: 'address.city', from: 'note', valueType: 'string' },
    ];
    expect(bulkLineSql(shapeOf(nested), 'id', ['id', 'address'])).toBeUndefined();
    const json: Mapping[] = [
      { to: 'id', from: 'id', valueType: 'string' },
      { to: 'doc', value: '{"a":1}', valueType: 'json' },
    ];
    expect(bulkLineSql(shapeOf(json), 'id', ['id', 'doc'])).toBeUndefined();
    expect(bulkLineSql(shapeOf(undefined), 'id', ['id', 'unmapped'])).toBeUndefined();
    expect(bulkLineSql(shapeOf(undefined), 'id', all(COLUMNS))).toBeDefined();
    // A column that would hide the batch table's rowid or its own columns.
    for (const name of ['rowid', 'ROWID', '__syncline_change', '__syncline_previous_key']) {
      const hiding: ColumnInfo[] = [...COLUMNS, { name, type: 'VARCHAR' }];
      expect(bulkLineSql(shapeOf(undefined, hiding), 'id', all(hiding))).toBeUndefined();
    }
  });
});
