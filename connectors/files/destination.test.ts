import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationSpec, Mapping, SyncSpec } from '../../crds/index.ts';
import { isSynclineError } from '../../core/errors.ts';
import { change, deliveryContext, openDuck, rowsOf, testContext } from '../shared/test-context.ts';
import type { ColumnInfo } from '../../core/connectors.ts';
import { recordColumns } from './destination.ts';
import { destination } from './index.ts';

const base = testContext();
const out = join(base.tmpDir, 'out');
let duck: Awaited<ReturnType<typeof openDuck>>;

const columns: ColumnInfo[] = [
  { name: 'id', type: 'BIGINT' },
  { name: 'amount', type: 'DECIMAL(38,9)' },
  { name: 'at', type: 'TIMESTAMP WITH TIME ZONE' },
  { name: 'note', type: 'VARCHAR' },
  { name: 'tags', type: 'VARCHAR[]' },
  { name: 'raw', type: 'BLOB' },
];

// Values in the form the engine hands them over: big integers and decimals as exact strings.
const changes = () => [
  change('upsert', '9007199254740993', {
    id: '9007199254740993',
    amount: '12345678901234567890123456789.123456789',
    at: '2024-06-01T10:00:00.123456Z',
    note: 'Zoë 😀 "q", comma\nline',
    tags: ['a', null],
    raw: '\\x00\\xFFA',
  }),
  change('delete', '2', { id: 2 }),
  change('clear', '3', { id: 3, amount: null, at: null, note: null, tags: null, raw: null }),
];

async function open(
  format: 'csv' | 'jsonl' | 'parquet',
  runId: string,
  sync: Partial<SyncSpec> = {},
  mappings?: Mapping[],
) {
  const spec = { type: 'files', files: { url: out, format } } as DestinationSpec;
  const harness = deliveryContext(base, {
    destination: spec,
    sync,
    columns,
    primaryKey: 'id',
    mappings,
    runId,
  });
  return { ...harness, writer: await destination!.open(harness.ctx) };
}

beforeAll(async () => {
  duck = await openDuck();
});

afterAll(() => {
  duck.close();
  base.cleanup();
});

describe('files destination', () => {
  it('writes one JSON lines file per run, published only on close', async () => {
    const { writer, requests } = await open('jsonl', 'run-1');
    expect(await writer.write(changes())).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    // The live debugger: each batch by operation with its keys, then the publishing of the file.
    expect(requests.map((r) => [r.operation, r.keys, r.status])).toEqual([
      ['upsert', ['9007199254740993'], '1 records buffered'],
      ['delete', ['2'], '1 records buffered'],
      ['clear', ['3'], '1 records buffered'],
    ]);
    const file = join(out, 'default', 'test-sync', 'run-1.jsonl');
    expect(existsSync(file)).toBe(false);
    await writer.close();
    expect(requests.at(-1)).toMatchObject({
      operation: 'publish',
      target: `files ${file}`,
      keys: [],
      status: '3 records written',
    });
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(
      '{"_operation":"upsert","_key":"9007199254740993","id":"9007199254740993","amount":"12345678901234567890123456789.123456789",' +
        '"at":"2024-06-01T10:00:00.123456Z","note":"Zoë 😀 \\"q\\", comma\\nline","tags":["a",null],"raw":"\\\\x00\\\\xFFA"}',
    );
    expect(JSON.parse(lines[1] ?? '')).toEqual({ _operation: 'delete', _key: '2', id: 2 });
    expect(readdirSync(join(out, 'default', 'test-sync'))).toEqual(['run-1.jsonl']);
  });

  it('writes Parquet with the model’s types, values exact', async () => {
    const { writer } = await open('parquet', 'run-2');
    await writer.write(changes());
    await writer.close();
    const file = join(out, 'default', 'test-sync', 'run-2.parquet');
    const types = await rowsOf(
      duck.duck,
      `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '${file}')`,
    );
    expect(types.map((t) => `${t.column_name} ${t.column_type}`)).toEqual([
      '_operation VARCHAR',
      '_key VARCHAR',
      'id BIGINT',
      'amount DECIMAL(38,9)',
      'at TIMESTAMP WITH TIME ZONE',
      'note VARCHAR',
      'tags VARCHAR[]',
      'raw BLOB',
    ]);
    const rows = await rowsOf(
      duck.duck,
      `SELECT _operation, id::VARCHAR AS id, amount::VARCHAR AS amount, "at"::VARCHAR AS "at", note, hex(raw) AS raw FROM '${file}'`,
    );
    expect(rows[0]).toEqual({
      _operation: 'upsert',
      id: '9007199254740993',
      amount: '12345678901234567890123456789.123456789',
      at: '2024-06-01 10:00:00.123456+00',
      note: 'Zoë 😀 "q", comma\nline',
      raw: '00FF41',
    });
    expect(rows[2]).toMatchObject({ _operation: 'clear', id: '3', amount: null, note: null });
  });

  it('writes CSV with a header, and accepts concurrent batches', async () => {
    const mappings: Mapping[] = [
      { to: 'customer_id', from: 'id', valueType: 'string' },
      { to: 'label', template: '{{ row.note }}', valueType: 'string' },
    ];
    const { writer } = await open('csv', 'run-3', { mode: 'all' }, mappings);
    const batches = Array.from({ length: 20 }, (_, b) =>
      Array.from({ length: 50 }, (_, i) =>
        change('upsert', b * 50 + i, { customer_id: b * 50 + i, label: `row "${b * 50 + i}", ok` }),
      ),
    );
    const results = await Promise.all(batches.map((batch) => writer.write(batch)));
    expect(results.flat().every((r) => r.ok)).toBe(true);
    await writer.close();
    const file = join(out, 'default', 'test-sync', 'run-3.csv');
    const text = readFileSync(file, 'utf8');
    expect(text.split('\n')[0]).toBe('_operation,_key,customer_id,label');
    const rows = await rowsOf(
      duck.duck,
      `SELECT count(*)::INTEGER AS n, count(DISTINCT customer_id)::INTEGER AS ids FROM read_csv('${file}')`,
    );
    expect(rows[0]).toEqual({ n: 1000, ids: 1000 });
    expect(text).toContain('"row ""7"", ok"');
  });

  it('falls back to inferred types when a value does not fit the model type', async () => {
    const { writer, ctx } = await open('parquet', 'run-4');
    await writer.write([change('upsert', 'x', { id: 'not-a-number' })]);
    await writer.close();
    const rows = await rowsOf(
      duck.duck,
      `SELECT id FROM '${join(out, 'default', 'test-sync', 'run-4.parquet')}'`,
    );
    expect(rows).toEqual([{ id: 'not-a-number' }]);
    expect((ctx.log as typeof base.log).lines.some((l) => l.level === 'warn')).toBe(true);
  });

  it('fails close() when the file cannot be published, and check() when the folder is not writable', async () => {
    const blocked = join(base.tmpDir, 'blocked');
    writeFileSync(blocked, 'a file where a folder should be');
    const spec = { type: 'files', files: { url: join(blocked, 'sub'), format: 'jsonl' } } as DestinationSpec;
    const harness = deliveryContext(base, {
      destination: spec,
      sync: {},
      columns,
      primaryKey: 'id',
      runId: 'run-5',
    });
    const writer = await destination!.open(harness.ctx);
    await writer.write(changes());
    const error = await writer.close().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ reason: 'DestinationWriteFailed' });
    const checked = await destination!.check(spec, base).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isSynclineError(checked) && checked.reason).toBe('PathNotWritable');
    mkdirSync(join(base.tmpDir, 'fine'));
    await expect(
      destination!.check(
        { type: 'files', files: { url: join(base.tmpDir, 'fine') } } as DestinationSpec,
        base,
      ),
    ).resolves.toBeUndefined();
    expect(readdirSync(join(base.tmpDir, 'fine'))).toEqual([]);
  });
});

describe('recordColumns', () => {
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
    expect(recordColumns(mappings, columns)).toEqual([
      { name: 'a', type: 'VARCHAR' },
      { name: 'b', type: 'BIGINT' },
      { name: 'c', type: 'BIGINT' },
      { name: 'd', type: 'JSON' },
    ]);
  });
});
