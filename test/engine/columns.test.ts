// What counts as a change, primary key checks, mapping checks, dry runs and concurrent commits.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Mapping, SyncSpec } from '../../crds/index.ts';
import type { RunProgress } from '../../runner/run.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, pgSettings, run, sql, tempState } from './helpers.ts';

let server: PostgresServer;
let srcUrl: string;
let dstUrl: string;
const states: { remove(): void }[] = [];
let counter = 0;

beforeAll(async () => {
  server = await startPostgres();
  srcUrl = await server.createDatabase('src');
  dstUrl = await server.createDatabase('dst');
});
afterAll(async () => {
  await server?.stop();
  for (const s of states) s.remove();
});

const map = (...names: string[]): Mapping[] =>
  names.map((n) => ({ to: n, from: n, valueType: 'string' as const }));

async function scenario(rows: number, sync: Partial<SyncSpec> = {}) {
  counter++;
  const table = `people_${counter}`;
  const target = `copy_${counter}`;
  const state = tempState();
  states.push(state);
  await sql(srcUrl, `CREATE TABLE ${table} (id int, first text, last text, email text, code int)`);
  await sql(
    srcUrl,
    `INSERT INTO ${table} SELECT g, 'first' || g, 'last' || g, CASE WHEN g % 2 = 0 THEN 'p' || g || '@x.org' END, g FROM generate_series(1, ${rows}) g`,
  );
  await sql(
    dstUrl,
    `CREATE TABLE ${target} (id int PRIMARY KEY, first text, last text, email text, code text, name text, extra text)`,
  );
  const plan = (
    o: {
      query?: string;
      sync?: Partial<SyncSpec>;
      primaryKey?: string;
      fullResync?: boolean;
      dryRun?: boolean;
      target?: string;
    } = {},
  ) =>
    makePlan({
      server,
      sourceDb: 'src',
      query: (o.query ?? 'SELECT id, first, last, email, code FROM $T').replaceAll('$T', table),
      destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
      sync: { mode: 'upsert', target: { table: o.target ?? target }, ...sync, ...o.sync },
      stateUrl: state.url,
      name: `sync-${counter}`,
      ...(o.primaryKey ? { primaryKey: o.primaryKey } : {}),
      ...(o.fullResync ? { fullResync: true } : {}),
      ...(o.dryRun ? { dryRun: true } : {}),
    });
  return {
    table,
    target,
    state,
    plan,
    source: (text: string) => sql(srcUrl, text.replaceAll('$T', table)),
    dest: (text: string) => sql(dstUrl, text.replaceAll('$D', target)),
    run: (o: Parameters<typeof plan>[0] = {}) => run(plan(o), server),
  };
}

describe('what counts as a change', () => {
  it('compares only mapped columns', async () => {
    const s = await scenario(6, { mappings: map('id', 'first') });
    await s.run();
    await s.source("UPDATE $T SET last = 'elsewhere', code = 99");
    expect((await s.run()).counts).toMatchObject({ changed: 0, delivered: 0 });
    await s.source("UPDATE $T SET first = 'F' WHERE id = 4");
    const summary = await s.run();
    expect(summary.counts).toMatchObject({ changed: 1, delivered: 1 });
  });

  it('counts a changed column type as a change, even where the values read the same', async () => {
    const s = await scenario(5, { mappings: map('id', 'code') });
    await s.run();
    const retyped = await s.run({ query: 'SELECT id, first, last, email, code::text AS code FROM $T' });
    expect(retyped.counts).toMatchObject({ changed: 5, delivered: 5 });
    expect(retyped.columns.find((c) => c.name === 'code')?.type).toBe('VARCHAR');
    // Same type again: nothing to do.
    expect(
      (await s.run({ query: 'SELECT id, first, last, email, code::text AS code FROM $T' })).counts.changed,
    ).toBe(0);
  });

  it('matches rows by key text when the key column changes type', async () => {
    const s = await scenario(4, { mappings: map('id', 'first') });
    await s.run();
    const retyped = await s.run({ query: 'SELECT id::bigint AS id, first, last, email, code FROM $T' });
    // The same records: changed (the key's type is compared), never removed and added again.
    expect(retyped.counts).toMatchObject({ added: 0, removed: 0, changed: 4 });
    await s.source("UPDATE $T SET first = 'x' WHERE id = 3");
    expect(
      (await s.run({ query: 'SELECT id::bigint AS id, first, last, email, code FROM $T' })).counts,
    ).toMatchObject({ added: 0, removed: 0, changed: 1 });
  });

  it('resyncs every row when a model column is added or dropped', async () => {
    const s = await scenario(4, { mappings: map('id', 'first') });
    await s.run();
    const added = await s.run({ query: "SELECT id, first, last, email, code, 'x' AS extra FROM $T" });
    expect(added.counts).toMatchObject({ changed: 4, delivered: 4 });
    expect(
      (await s.run({ query: "SELECT id, first, last, email, code, 'x' AS extra FROM $T" })).counts.changed,
    ).toBe(0);
    const dropped = await s.run({ query: 'SELECT id, first, last, email FROM $T' });
    expect(dropped.counts).toMatchObject({ changed: 4, delivered: 4 });
    expect(dropped.modelFingerprint).not.toBe(added.modelFingerprint);
  });

  it('refuses a changed primary key until a full resync is asked for', async () => {
    const s = await scenario(3, { mappings: map('id', 'first') });
    await s.run();
    // The destination keeps matching records by its id field, now filled from the new key column.
    const byCode = { mappings: [{ to: 'id', from: 'code', valueType: 'string' as const }, ...map('first')] };
    const refused = await s.run({ primaryKey: 'code', sync: byCode });
    expect(refused.result).toBe('Failed');
    expect(refused.reason).toBe('PrimaryKeyChanged');
    expect(refused.stage).toBe('diff');
    expect(refused.message).toContain('"id" to "code"');
    const resync = await s.run({ primaryKey: 'code', fullResync: true, sync: byCode });
    expect(resync.result).toBe('Succeeded');
    expect(resync.counts.delivered).toBe(3);
    expect((await s.run({ primaryKey: 'code', sync: byCode })).counts.delivered).toBe(0);
  });

  it('a newly mapped field resends only the rows where it has a value', async () => {
    const s = await scenario(10, { mappings: map('id', 'first') });
    await s.run();
    const summary = await s.run({ sync: { mappings: map('id', 'first', 'email') } });
    // Only even ids have an email; a field never sent counts as null.
    expect(summary.counts).toMatchObject({ changed: 5, delivered: 5 });
    const rows = await s.dest('SELECT id, email FROM $D WHERE email IS NOT NULL ORDER BY id');
    expect(rows.map((r) => r['id'])).toEqual([2, 4, 6, 8, 10]);
  });

  it('renaming a field, or filling it from another column, resends the rows that have a value for it', async () => {
    const to = (field: string, column: string): Mapping => ({ to: field, from: column, valueType: 'string' });
    const s = await scenario(6, { mappings: [...map('id'), to('name', 'first')] });
    expect((await s.run()).counts.delivered).toBe(6);
    expect((await s.run()).counts.changed).toBe(0);
    // The field name changes: every row has a first name, so every row goes again, filling the new field.
    const renamed = await s.run({ sync: { mappings: [...map('id'), to('extra', 'first')] } });
    expect(renamed.counts).toMatchObject({ changed: 6, delivered: 6 });
    expect((await s.dest("SELECT count(*)::int AS n FROM $D WHERE extra LIKE 'first%'"))[0]?.['n']).toBe(6);
    expect((await s.run({ sync: { mappings: [...map('id'), to('extra', 'first')] } })).counts.changed).toBe(
      0,
    );
    // The same field from another column: only the rows with an email (even ids) have something to send.
    const refilled = await s.run({ sync: { mappings: [...map('id'), to('extra', 'email')] } });
    expect(refilled.counts).toMatchObject({ changed: 3, delivered: 3 });
    // A column sent to a second field: a field never sent, so every row with the value goes.
    const twice = await s.run({
      sync: { mappings: [...map('id'), to('extra', 'email'), to('name', 'email')] },
    });
    expect(twice.counts).toMatchObject({ changed: 3, delivered: 3 });
    expect(
      (await s.run({ sync: { mappings: [...map('id'), to('extra', 'email'), to('name', 'email')] } })).counts
        .changed,
    ).toBe(0);
  });

  it('a static value is part of what is compared: adding or changing it resends every row', async () => {
    const s = await scenario(3, { mappings: map('id', 'first') });
    await s.run();
    const withStatic = (value: string) => ({
      mappings: [...map('id', 'first'), { to: 'extra', value, valueType: 'string' as const }],
    });
    expect((await s.run({ sync: withStatic('one') })).counts.changed).toBe(3);
    expect((await s.run({ sync: withStatic('one') })).counts.changed).toBe(0);
    expect((await s.run({ sync: withStatic('two') })).counts.changed).toBe(3);
    expect((await s.dest("SELECT count(*)::int AS n FROM $D WHERE extra = 'two'"))[0]?.['n']).toBe(3);
  });

  it('a template compares the columns it reads', async () => {
    const tpl = {
      mappings: [
        ...map('id'),
        { to: 'name', template: '{{ row.first }} {{ row.last | upcase }}', valueType: 'string' as const },
      ],
    };
    const s = await scenario(4, tpl);
    const first = await s.run();
    expect(first.counts.delivered).toBe(4);
    expect((await s.dest('SELECT name FROM $D WHERE id = 1'))[0]?.['name']).toBe('first1 LAST1');
    await s.source("UPDATE $T SET email = 'changed@x.org'");
    expect((await s.run()).counts.changed).toBe(0);
    await s.source("UPDATE $T SET last = 'smith' WHERE id = 2");
    expect((await s.run()).counts).toMatchObject({ changed: 1, delivered: 1 });
    expect((await s.dest('SELECT name FROM $D WHERE id = 2'))[0]?.['name']).toBe('first2 SMITH');
  });
});

describe('the snapshot', () => {
  const manifestFile = (s: { state: { dir: string } }, sync: string) =>
    join(s.state.dir, 'test', sync, 'manifest.json');
  const syncName = () => `sync-${counter}`;

  it('keeps one hash per row, not the values it compared', async () => {
    const s = await scenario(3, { mappings: map('id', 'first') });
    const first = await s.run();
    const manifest = JSON.parse(readFileSync(manifestFile(s, syncName()), 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({ version: 2, comparedColumns: ['id', 'first'], comparedConstants: {} });
    expect(manifest['hashProbe']).toMatch(/^\d+$/);
    const duck = await DuckDBInstance.create(':memory:');
    const conn = await duck.connect();
    const file = join(s.state.dir, 'test', syncName(), String(first.snapshot));
    const columns = (
      await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)
    ).getRowObjectsJson();
    expect(columns.map((c) => [c['column_name'], c['column_type']])).toEqual([
      ['__syncline_key', 'VARCHAR'],
      ['__syncline_stale', 'BOOLEAN'],
      ['id', 'INTEGER'],
      ['__syncline_hash', 'UBIGINT'],
    ]);
    conn.closeSync();
    duck.closeSync();
  });

  it('unmapping a field resends nothing, and a value changed meanwhile is still noticed', async () => {
    const s = await scenario(5, { mappings: map('id', 'first', 'last') });
    await s.run();
    expect((await s.run({ sync: { mappings: map('id', 'first') } })).counts.changed).toBe(0);
    await s.source("UPDATE $T SET first = 'changed' WHERE id = 2");
    const summary = await s.run({ sync: { mappings: map('id', 'first') } });
    expect(summary.counts).toMatchObject({ changed: 1, delivered: 1 });
  });

  it('the row hash stored while staging equals the one the engine computes, for every type', async () => {
    const s = await scenario(1);
    const table = `typed_${counter}`;
    await sql(
      srcUrl,
      `CREATE TABLE ${table} AS SELECT g AS id, g::numeric(20,4) / 3 AS num, g * 1.5::float8 AS dbl, g % 2 = 0 AS flag,
        timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour' AS at, date '2024-02-28' + g AS day,
        ('{"g": ' || g || ', "s": "x"}')::jsonb AS doc, ARRAY[g, g + 1] AS nums, ARRAY['a', NULL, 'c'] AS tags,
        decode(md5(g::text), 'hex') AS raw, md5(g::text)::uuid AS uid, g * interval '1 minute' AS span,
        CASE WHEN g % 3 = 0 THEN NULL ELSE 'ü' || g END AS note
      FROM generate_series(1, 50) g`,
    );
    const query = `SELECT * FROM ${table}`;
    const all = [
      'id',
      'num',
      'dbl',
      'flag',
      'at',
      'day',
      'doc',
      'nums',
      'tags',
      'raw',
      'uid',
      'span',
      'note',
    ];
    const files = {
      type: 'files' as const,
      files: { url: pathToFileURL(join(s.state.dir, 'out')).href, format: 'jsonl' as const },
    };
    const plan = (mappings: string[]) =>
      makePlan({
        server,
        sourceDb: 'src',
        query,
        destination: files,
        sync: { mode: 'upsert', mappings: map(...mappings) },
        stateUrl: s.state.url,
        name: `typed-${counter}`,
      });
    expect((await run(plan(all), server)).counts.delivered).toBe(50);
    // Unmapping a column makes the engine hash the previous columns itself and compare with the hashes
    // stored while staging: any difference between the two would resend rows.
    const fewer = await run(plan(all.slice(0, -1)), server);
    expect(fewer.result).toBe('Succeeded');
    expect(fewer.counts).toMatchObject({ changed: 0, delivered: 0 });
    await sql(srcUrl, `UPDATE ${table} SET doc = '{"changed": true}' WHERE id = 7`);
    expect((await run(plan(all.slice(0, -1)), server)).counts).toMatchObject({ changed: 1, delivered: 1 });
  });

  it('resends every row once when the hash function is not the one that made the snapshot', async () => {
    const s = await scenario(4, { mappings: map('id', 'first') });
    await s.run();
    const file = manifestFile(s, syncName());
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...manifest, hashProbe: '12345' }));
    expect((await s.run()).counts).toMatchObject({ changed: 4, delivered: 4 });
    expect((await s.run()).counts.changed).toBe(0);
  });

  it('reads a version 1 snapshot (values per row) and compares with it as before', async () => {
    const withStatic = {
      mappings: [...map('id', 'first'), { to: 'extra', value: 'one', valueType: 'string' as const }],
    };
    const s = await scenario(4, withStatic);
    await s.run();
    // Rewrite the state as a version 1 runner left it: every compared value kept as a column.
    const dir = join(s.state.dir, 'test', syncName());
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    const { comparedConstants: _c, hashProbe: _h, ...rest } = manifest;
    const writeVersion1 = async () => {
      const duck = await DuckDBInstance.create(':memory:');
      const conn = await duck.connect();
      await conn.run(`COPY (SELECT CAST(g AS VARCHAR) AS __syncline_key, g = 4 AS __syncline_stale,
          CAST(g AS INTEGER) AS id, 'first' || g AS first, '"one"' AS "__syncline_value:extra" FROM range(1, 5) t(g))
        TO '${join(dir, 'snapshots', 'v1.parquet')}' (FORMAT parquet)`);
      conn.closeSync();
      duck.closeSync();
      writeFileSync(
        join(dir, 'manifest.json'),
        JSON.stringify({
          ...rest,
          version: 1,
          runId: 'v1',
          snapshot: 'snapshots/v1.parquet',
          comparedColumns: ['id', 'first', '__syncline_value:extra'],
        }),
      );
    };
    await writeVersion1();
    await s.source("UPDATE $T SET first = 'edited' WHERE id = 2");
    const summary = await s.run({ sync: withStatic });
    // Row 2 changed, row 4 was stale; rows 1 and 3 compare equal through their hashed values.
    expect(summary.counts).toMatchObject({ changed: 2, delivered: 2 });
    expect(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'))).toMatchObject({ version: 2 });
    expect((await s.run({ sync: withStatic })).counts.changed).toBe(0);
    // A static value changed since the version 1 snapshot resends every row.
    await writeVersion1();
    const other = {
      mappings: [...map('id', 'first'), { to: 'extra', value: 'two', valueType: 'string' as const }],
    };
    expect((await s.run({ sync: other })).counts.changed).toBe(4);
  });
});

describe('primary key and mapping checks', () => {
  it('delivers text keys holding separators, quotes and newlines through the bulk path', async () => {
    counter++;
    const table = `texts_${counter}`;
    const state = tempState();
    states.push(state);
    await sql(
      srcUrl,
      `CREATE TABLE ${table} AS SELECT * FROM (VALUES ('a' || chr(30) || 'b', 1), ('say "hi", ' || chr(10) || 'x', 2),
        ('', 3), ('plain', 4)) v(k, n)`,
    );
    await sql(dstUrl, `CREATE TABLE ${table}_copy (k text PRIMARY KEY, n int)`);
    const plan = () =>
      makePlan({
        server,
        sourceDb: 'src',
        query: `SELECT k, n FROM ${table}`,
        primaryKey: 'k',
        destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
        sync: { mode: 'upsert', deleteBehavior: 'delete', target: { table: `${table}_copy` } },
        stateUrl: state.url,
        name: `texts-${counter}`,
      });
    // First straight from the staged rows, then through a table of operations (changes and a delete).
    expect((await run(plan(), server)).counts.delivered).toBe(4);
    await sql(srcUrl, `UPDATE ${table} SET n = n * 10; DELETE FROM ${table} WHERE n = 40`);
    const second = await run(plan(), server);
    expect(second.counts).toMatchObject({ changed: 3, removed: 1, delivered: 4, failed: 0 });
    await sql(srcUrl, `DELETE FROM ${table} WHERE n = 10`);
    expect((await run(plan(), server)).counts).toMatchObject({ removed: 1, delivered: 1, failed: 0 });
    const source = await sql(srcUrl, `SELECT k, n FROM ${table} ORDER BY k`);
    expect(await sql(dstUrl, `SELECT k, n FROM ${table}_copy ORDER BY k`)).toEqual(source);
  });

  it('fails on null keys, naming them', async () => {
    const s = await scenario(3);
    await s.source("INSERT INTO $T VALUES (NULL, 'nobody', 'x', NULL, 0)");
    const summary = await s.run();
    expect(summary.result).toBe('Failed');
    expect(summary.reason).toBe('NullPrimaryKey');
    expect(summary.stage).toBe('validate');
    expect(summary.message).toContain('1 row(s) have a null primary key "id"');
    expect(summary.message).toContain('invalidPrimaryKeys: skip');
  });

  it('fails on duplicate keys, naming the first 20 and the counts', async () => {
    const s = await scenario(30);
    await s.source('INSERT INTO $T SELECT * FROM $T WHERE id <= 25');
    const summary = await s.run();
    expect(summary.reason).toBe('DuplicatePrimaryKey');
    expect(summary.message).toContain('25 primary key value(s)');
    expect(summary.message).toContain('(50 rows)');
    expect(summary.message).toContain('first 20: 1, 2, 3');
    expect(summary.message).not.toContain(', 21,');
    expect((await s.dest('SELECT count(*)::int AS n FROM $D'))[0]?.['n']).toBe(0);
  });

  it('with invalidPrimaryKeys: skip leaves the rows out and reports them', async () => {
    const s = await scenario(5, { invalidPrimaryKeys: 'skip' });
    await s.source("INSERT INTO $T VALUES (NULL, 'nobody', 'x', NULL, 0), (3, 'again', 'x', NULL, 0)");
    const summary = await s.run();
    expect(summary.result).toBe('Succeeded');
    expect(summary.counts).toMatchObject({ queried: 7, skipped: 3, delivered: 4 });
    expect(summary.invalidKeys).toEqual({ nullCount: 1, duplicateCount: 1, sample: ['<null>', '3'] });
    expect((await s.dest('SELECT id FROM $D ORDER BY id')).map((r) => r['id'])).toEqual([1, 2, 4, 5]);
  });

  it('with skip, a key that becomes duplicated is held, not deleted, until it really leaves the model', async () => {
    const s = await scenario(4, { invalidPrimaryKeys: 'skip', deleteBehavior: 'delete' });
    expect((await s.run()).counts.delivered).toBe(4);
    await s.source("INSERT INTO $T VALUES (2, 'twin', 'x', NULL, 0)");
    const held = await s.run();
    expect(held.counts).toMatchObject({ skipped: 2, removed: 0, delivered: 0 });
    expect((await s.dest('SELECT id FROM $D ORDER BY id')).map((r) => r['id'])).toEqual([1, 2, 3, 4]);
    await s.source('DELETE FROM $T WHERE id = 2');
    const gone = await s.run();
    expect(gone.counts).toMatchObject({ removed: 1, delivered: 1 });
    expect((await s.dest('SELECT id FROM $D ORDER BY id')).map((r) => r['id'])).toEqual([1, 3, 4]);
  });

  it('fails before delivering when a mapping names a column the model does not have', async () => {
    const s = await scenario(3, {
      mappings: [...map('id', 'first'), { to: 'x', from: 'nickname', valueType: 'string' }],
    });
    const summary = await s.run();
    expect(summary.reason).toBe('UnknownColumn');
    expect(summary.message).toContain('"nickname"');
    expect(summary.message).toContain('id, first, last, email, code');
    expect((await s.dest('SELECT count(*)::int AS n FROM $D'))[0]?.['n']).toBe(0);
    const tpl = await s.run({
      sync: { mappings: [...map('id'), { to: 'name', template: '{{ row.nick }}', valueType: 'string' }] },
    });
    expect(tpl.reason).toBe('UnknownColumn');
    expect(tpl.message).toContain('template of mapping "name"');
  });
});

describe('dry run', () => {
  it('reports counts per operation and sample rows, and delivers and commits nothing', async () => {
    const s = await scenario(8, { mode: 'upsert', deleteBehavior: 'delete', mappings: map('id', 'first') });
    await s.run();
    await s.source('DELETE FROM $T WHERE id = 1');
    await s.source("UPDATE $T SET first = 'changed' WHERE id IN (2, 3)");
    await s.source("INSERT INTO $T VALUES (9, 'nine', 'x', NULL, 9)");
    const planned = await s.run({ dryRun: true });
    expect(planned.dryRun).toBe(true);
    expect(planned.result).toBe('Succeeded');
    expect(planned.operations).toEqual({ upsert: 3, delete: 1 });
    expect(planned.samples?.['delete']).toEqual([{ key: '1', fields: { id: 1 } }]);
    expect(planned.samples?.['upsert']).toHaveLength(3);
    expect(planned.samples?.['upsert']).toContainEqual({ key: '9', fields: { id: 9, first: 'nine' } });
    expect(planned.snapshot).toBeUndefined();
    expect((await s.dest('SELECT count(*)::int AS n FROM $D'))[0]?.['n']).toBe(8);
    // Nothing was committed: the real run sees the same diff.
    expect((await s.run()).operations).toEqual({ upsert: 3, delete: 1 });
  });
});

describe('concurrent runs', () => {
  it('refuses the second of two runs of one Sync (the lease) before it sends anything', async () => {
    const s = await scenario(5, { mappings: map('id', 'first') });
    await s.run();
    await s.source("UPDATE $T SET first = 'changed'");
    await sql(dstUrl, `CREATE TABLE ${s.target}_b (LIKE ${s.target} INCLUDING ALL)`);
    // Run A blocks in delivery on a table lock while run B, of the same Sync, delivers and commits.
    const { default: pg } = await import('pg');
    const locker = new pg.Client({ connectionString: dstUrl });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE ${s.target} IN ACCESS EXCLUSIVE MODE`);
    let delivering!: () => void;
    const inDelivery = new Promise<void>((resolve) => (delivering = resolve));
    const a = run(s.plan(), server, {
      onProgress: (p: RunProgress) => p.phase === 'Delivering' && delivering(),
    });
    await inDelivery;
    const b = await run(s.plan({ target: `${s.target}_b` }), server);
    expect(b.result).toBe('Failed');
    expect(b.reason).toBe('LeaseHeld');
    expect(b.message).toMatch(/holds the run lease .*lease\.json/);
    expect((await sql(dstUrl, `SELECT count(*)::int AS n FROM ${s.target}_b`))[0]?.['n']).toBe(0);
    await locker.query('COMMIT');
    await locker.end();
    const summaryA = await a;
    expect(summaryA.result).toBe('Succeeded');
    const manifest = JSON.parse(
      readFileSync(join(s.state.dir, 'test', `sync-${counter}`, 'manifest.json'), 'utf8'),
    ) as { runId: string };
    expect(manifest.runId).toBe(summaryA.runId);
  });
});

describe('a destination that fails to finish', () => {
  it('counts every change the writer accepted as failed when close() fails, and resends them next run', async () => {
    const s = await scenario(5, { mappings: map('id', 'first') });
    const dir = mkdtempSync(join(tmpdir(), 'syncline-files-dest-'));
    writeFileSync(join(dir, 'blocker'), 'a file where a folder should be');
    const plan = (url: string) =>
      makePlan({
        server,
        sourceDb: 'src',
        query: `SELECT id, first FROM ${s.table}`,
        destination: { type: 'files', files: { url, format: 'jsonl' } },
        sync: { mode: 'upsert', mappings: map('id', 'first') },
        stateUrl: s.state.url,
        name: 'files-close',
      });
    const broken = await run(plan(join(dir, 'blocker', 'out')), server);
    expect(broken.result).toBe('Failed');
    expect(broken.counts).toMatchObject({ delivered: 0, failed: 5 });
    expect(broken.outcomes).toEqual({ upsert: { delivered: 0, failed: 5 } });
    expect(broken.rejected).toHaveLength(5);
    expect(broken.rejected[0]?.reason).toContain('did not confirm the writes');
    const fixed = await run(plan(join(dir, 'out')), server);
    expect(fixed.result).toBe('Succeeded');
    expect(fixed.counts).toMatchObject({ added: 5, delivered: 5 });
    expect(readdirSync(join(dir, 'out', 'test', 'files-close'))).toHaveLength(1);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('exact values to a PostgreSQL table', () => {
  it('keeps integers beyond 2^53 and long decimals inside jsonb and bigint[], and -0, exact', async () => {
    counter++;
    const table = `exact_${counter}`;
    const state = tempState();
    states.push(state);
    const ddl = `(id bigint PRIMARY KEY, doc jsonb, nums bigint[], amounts numeric[], neg float8, big bigint)`;
    await sql(srcUrl, `CREATE TABLE ${table} ${ddl}`);
    await sql(dstUrl, `CREATE TABLE ${table} ${ddl}`);
    await sql(
      srcUrl,
      `INSERT INTO ${table} VALUES (9007199254740993,
        '{"big": 9007199254740993, "huge": 123456789012345678901234567890, "long": 0.1000000000000000000001, "list": [-18446744073709551617, 1e400]}',
        ARRAY[9007199254740993, -9223372036854775808], ARRAY[123456789012345678901234567890.5, 0.1000000000000000000001],
        '-0', 9223372036854775807)`,
    );
    const summary = await run(
      makePlan({
        server,
        sourceDb: 'src',
        query: `SELECT * FROM ${table}`,
        destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
        sync: {
          mode: 'upsert',
          target: { table },
          mappings: map('id', 'doc', 'nums', 'amounts', 'neg', 'big'),
        },
        stateUrl: state.url,
        name: `exact-${counter}`,
      }),
      server,
    );
    expect(summary.result).toBe('Succeeded');
    const text = `SELECT id::text, doc::text, nums::text, amounts::text, neg::text, big::text FROM ${table}`;
    const [source] = await sql(srcUrl, text);
    const [copied] = await sql(dstUrl, text);
    expect(source?.doc).toContain('123456789012345678901234567890');
    expect(source?.neg).toBe('-0');
    expect(copied).toEqual(source);
  });
});

describe('JSON null and SQL NULL', () => {
  it('a jsonb JSON null stays a JSON null, a SQL NULL stays NULL, and a change between them is sent', async () => {
    counter++;
    const table = `nulls_${counter}`;
    const state = tempState();
    states.push(state);
    const ddl = `(id int PRIMARY KEY, doc jsonb, note text, ratio float8)`;
    await sql(srcUrl, `CREATE TABLE ${table} ${ddl}`);
    await sql(dstUrl, `CREATE TABLE ${table} ${ddl}`);
    await sql(
      srcUrl,
      `INSERT INTO ${table} VALUES (1, 'null', '', 'NaN'), (2, NULL, NULL, 'Infinity'), (3, '{"a": null}', 'x', '-Infinity'), (4, '{}', 'y', NULL)`,
    );
    const plan = makePlan({
      server,
      sourceDb: 'src',
      query: `SELECT * FROM ${table}`,
      destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
      sync: { mode: 'upsert', target: { table }, mappings: map('id', 'doc', 'note', 'ratio') },
      stateUrl: state.url,
      name: `nulls-${counter}`,
    });
    const text = `SELECT id, doc::text AS doc, doc IS NULL AS sql_null, note, note IS NULL AS note_null, ratio::text AS ratio FROM ${table} ORDER BY id`;
    const same = async () => expect(await sql(dstUrl, text)).toEqual(await sql(srcUrl, text));
    expect((await run(plan, server)).result).toBe('Succeeded');
    await same();
    await sql(
      srcUrl,
      `UPDATE ${table} SET doc = CASE WHEN doc IS NULL THEN 'null'::jsonb ELSE NULL END WHERE id IN (1, 2)`,
    );
    const changed = await run(plan, server);
    expect(changed.counts.changed).toBe(2);
    await same();
    await sql(
      srcUrl,
      `UPDATE ${table} SET doc = CASE WHEN doc IS NULL THEN 'null'::jsonb ELSE NULL END WHERE id IN (1, 2)`,
    );
    expect((await run(plan, server)).counts.changed).toBe(2);
    await same();
  });

  it('float8[] and real[] keep NaN, Infinity, -Infinity and -0', async () => {
    counter++;
    const table = `floats_${counter}`;
    const state = tempState();
    states.push(state);
    const ddl = `(id int PRIMARY KEY, xs float8[], rs real[])`;
    await sql(srcUrl, `CREATE TABLE ${table} ${ddl}`);
    await sql(dstUrl, `CREATE TABLE ${table} ${ddl}`);
    await sql(
      srcUrl,
      `INSERT INTO ${table} VALUES (1, ARRAY['NaN', 'Infinity', '-Infinity', '-0', 1.5, NULL]::float8[], ARRAY['NaN', '-0']::real[])`,
    );
    const plan = makePlan({
      server,
      sourceDb: 'src',
      query: `SELECT * FROM ${table}`,
      destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
      sync: { mode: 'upsert', target: { table }, mappings: map('id', 'xs', 'rs') },
      stateUrl: state.url,
      name: `floats-${counter}`,
    });
    const summary = await run(plan, server);
    expect(summary.result).toBe('Succeeded');
    const text = `SELECT id, xs::text AS xs, rs::text AS rs FROM ${table}`;
    expect(await sql(dstUrl, text)).toEqual(await sql(srcUrl, text));
  });
});
