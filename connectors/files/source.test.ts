import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import { isSynclineError } from '../../core/errors.ts';
import { openDuck, rowsOf, testContext } from '../shared/test-context.ts';
import type { StageRequest } from '../../core/connectors.ts';
import { source } from './index.ts';

const ctx = testContext();
const folder = join(ctx.tmpDir, 'data');
let duck: Awaited<ReturnType<typeof openDuck>>;
let n = 0;

function spec(extra: Partial<NonNullable<SourceSpec['files']>> = {}): SourceSpec {
  return { type: 'files', files: { url: folder, ...extra } } as SourceSpec;
}

function request(model: Partial<ModelSpec>, sourceSpec = spec()): StageRequest {
  n += 1;
  return {
    ...ctx,
    source: sourceSpec,
    model: { sourceRef: { name: 'files' }, primaryKey: 'id', ...model } as ModelSpec,
    duck: duck.duck,
    table: `staged_${n}`,
    labels: { namespace: 'default', sync: 's', runId: `r${n}` },
  };
}

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isSynclineError(error)) return error.reason;
    throw error;
  }
  throw new Error('expected a SynclineError');
}

beforeAll(async () => {
  duck = await openDuck();
  mkdirSync(join(folder, 'parts'), { recursive: true });
  writeFileSync(
    join(folder, 'customers.csv'),
    'id,name,note,amount\n' +
      '1,Ada,"line one\nline two",10.50\n' +
      '2,"Zoë ""Z"" 😀, 中文","",7\n' +
      '3,Bob,,0.25\n',
  );
  writeFileSync(join(folder, 'parts', 'a.csv'), 'id,v\n1,x\n2,y\n');
  writeFileSync(join(folder, 'parts', 'b.csv'), 'id,v\n3,z\n');
  writeFileSync(
    join(folder, 'events.jsonl'),
    '{"id": 9007199254740993, "kind": "a", "payload": {"n": 1}}\n{"id": 2, "kind": null, "payload": {"n": 2}}\n',
  );
  writeFileSync(join(folder, 'semi.txt'), 'id;name\n1;a\n2;b\n');
  await duck.duck.run(
    `COPY (SELECT 1::BIGINT AS id, 12345678901234567890.123456789::DECIMAL(38,9) AS big, TIMESTAMPTZ '2024-05-01 10:00:00.123456+00' AS at, [1, 2]::INTEGER[] AS tags)
     TO '${join(folder, 'items.parquet')}' (FORMAT parquet)`,
  );
});

afterAll(() => {
  duck.close();
  ctx.cleanup();
});

describe('files source', () => {
  it('stages a CSV keeping Unicode, newlines, quotes and NULL apart from the empty string', async () => {
    const req = request({ table: 'customers.csv' });
    const result = await source!.stage(req);
    expect(result.rows).toBe(3);
    expect(result.columns.map((c) => c.name)).toEqual(['id', 'name', 'note', 'amount']);
    const rows = await rowsOf(duck.duck, `SELECT * FROM ${req.table} ORDER BY id`);
    expect(rows[0]).toMatchObject({ name: 'Ada', note: 'line one\nline two' });
    expect(rows[1]).toMatchObject({ name: 'Zoë "Z" 😀, 中文', note: '' });
    expect(rows[2]?.note).toBeNull();
  });

  it('stages every file a glob matches', async () => {
    const result = await source!.stage(request({ table: 'parts/*.csv' }));
    expect(result.rows).toBe(3);
  });

  it('stages JSON lines with big integers exact', async () => {
    const req = request({ table: 'events.jsonl' });
    const result = await source!.stage(req);
    expect(result.columns.find((c) => c.name === 'id')?.type).toBe('BIGINT');
    const rows = await rowsOf(duck.duck, `SELECT id::VARCHAR AS id FROM ${req.table} ORDER BY id DESC`);
    expect(rows.map((r) => r.id)).toContain('9007199254740993');
  });

  it('stages Parquet with its types', async () => {
    const req = request({ table: 'items.parquet' });
    const result = await source!.stage(req);
    expect(result.columns).toEqual([
      { name: 'id', type: 'BIGINT' },
      { name: 'big', type: 'DECIMAL(38,9)' },
      { name: 'at', type: 'TIMESTAMP WITH TIME ZONE' },
      { name: 'tags', type: 'INTEGER[]' },
    ]);
    const rows = await rowsOf(duck.duck, `SELECT big::VARCHAR AS big FROM ${req.table}`);
    expect(rows[0]?.big).toBe('12345678901234567890.123456789');
  });

  it('uses files.format and csv options over the extension', async () => {
    const req = request(
      { table: 'semi.txt' },
      spec({ format: 'csv', csv: { delimiter: ';', header: true } }),
    );
    const result = await source!.stage(req);
    expect(result.columns.map((c) => c.name)).toEqual(['id', 'name']);
    expect(result.rows).toBe(2);
  });

  it('runs a DuckDB query whose relative paths resolve against the folder', async () => {
    const req = request({
      query: "SELECT id, upper(name) AS name FROM read_csv('customers.csv') WHERE id < 3;",
    });
    const result = await source!.stage(req);
    expect(result.rows).toBe(2);
    const rows = await rowsOf(duck.duck, `SELECT name FROM ${req.table} ORDER BY id`);
    expect(rows[0]?.name).toBe('ADA');
    // The search path does not leak into the engine's connection.
    const setting = await rowsOf(duck.duck, "SELECT current_setting('file_search_path') AS p");
    expect(setting[0]?.p).toBe('');
  });

  it('reports a missing folder, a missing file and a broken query with their reasons', async () => {
    await expect(source!.check(spec(), ctx)).resolves.toBeUndefined();
    expect(
      await reason(source!.check({ type: 'files', files: { url: join(folder, 'nope') } } as SourceSpec, ctx)),
    ).toBe('PathNotFound');
    expect(
      await reason(
        source!.check({ type: 'files', files: { url: join(folder, 'customers.csv') } } as SourceSpec, ctx),
      ),
    ).toBe('PathNotFound');
    expect(await reason(source!.stage(request({ table: 'missing.csv' })))).toBe('PathNotFound');
    expect(await reason(source!.stage(request({ query: 'SELECT * FROM no_such_table' })))).toBe(
      'SourceQueryFailed',
    );
    expect(await reason(source!.stage(request({ table: 'customers.xyz' })))).toBe('PathNotFound');
  });
});
