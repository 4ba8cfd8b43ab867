// The Metabase connector against the Metabase emulator (test/emulators/metabase), whose questions run on a
// real PostgreSQL: the SQL each kind of question gives, what is refused and why, and the results staged.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelSpec, sourceSpec, type ModelSpec, type SourceSpec } from '../../crds/index.ts';
import { silentLogger } from '../../core/logger.ts';
import { secretResolver } from '../../core/secrets.ts';
import { MetabaseEmulator } from '../../test/emulators/metabase/server.ts';
import { startPostgres, type PostgresServer } from '../../test/stack/postgres.ts';
import { source, sqlOfQuestion } from './index.ts';

const KEY = 'mb_4bKq9TnW2xYz7RcVp1sL';
let server: PostgresServer;
let metabase: MetabaseEmulator;
let dir: string;

const ctx = (key = KEY) => ({
  secrets: secretResolver({}, { mb: { key } }),
  log: silentLogger(),
  signal: new AbortController().signal,
  tmpDir: dir,
});
const mbSource = (): SourceSpec =>
  sourceSpec.parse({
    type: 'metabase',
    metabase: { url: metabase.url, apiKey: { secretKeyRef: { name: 'mb', key: 'key' } } },
  });
const warehouse = (type: 'postgres' | 'mysql' = 'postgres', database = 'shop'): SourceSpec =>
  sourceSpec.parse({ type, [type]: { host: 'db', database, user: 'reader' } });
const model = (question: number, as: 'sql' | 'results' = 'sql'): ModelSpec =>
  modelSpec.parse({
    sourceRef: { name: 'src' },
    metabase: { question, as, ...(as === 'sql' ? { sourceRef: { name: 'mb' } } : {}) },
    primaryKey: 'id',
  });
const native = (id: number, query: string, extra: Record<string, unknown> = {}, database = 2) =>
  metabase.cards.set(id, {
    id,
    name: `q${id}`,
    dataset_query: { database, type: 'native', native: { query, ...extra } },
  });

beforeAll(async () => {
  server = await startPostgres();
  const url = await server.createDatabase('shop');
  const pg = await import('pg');
  const client = new pg.default.Client({ connectionString: url });
  await client.connect();
  await client.query(
    `CREATE TABLE orders AS SELECT g AS id, g * 1.5 AS total, DATE '2025-01-01' + g AS day, g % 2 = 0 AS paid FROM generate_series(1, 4) g`,
  );
  await client.end();
  dir = mkdtempSync(join(tmpdir(), 'syncline-metabase-'));
  metabase = await new MetabaseEmulator().start();
  metabase.apiKeys.add(KEY);
  metabase.databases.set(2, { id: 2, name: 'Shop', engine: 'postgres', details: { dbname: 'shop' }, url });
  metabase.databases.set(5, { id: 5, name: 'Shop (no details)', engine: 'postgres', details: {}, url });
  metabase.databases.set(6, { id: 6, name: 'CRM', engine: 'mysql', details: { dbname: 'crm' }, url });
});
afterAll(async () => {
  await metabase?.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the connection check', () => {
  it('passes with the API key, sent as x-api-key', async () => {
    await source.check(mbSource(), ctx());
    expect(metabase.requests.at(-1)).toMatchObject({ path: '/api/user/current', apiKey: KEY });
  });

  it('fails with AuthenticationFailed naming the Secret, never the key', async () => {
    const error = await source.check(mbSource(), ctx(`${KEY}-revoked`)).catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'AuthenticationFailed' });
    expect(String((error as Error).message)).toContain('Secret "mb"');
    expect(String((error as Error).message)).not.toContain(KEY);
  });
});

describe('the SQL of a question', () => {
  it('is the native query as written, without a trailing semicolon, with no compile request', async () => {
    native(1, 'SELECT id, total FROM orders;\n');
    const before = metabase.requests.length;
    expect(await sqlOfQuestion(model(1), mbSource(), warehouse(), ctx())).toBe(
      'SELECT id, total FROM orders',
    );
    expect(metabase.requests.slice(before).map((r) => r.path)).toEqual(['/api/card/1', '/api/database/2']);
  });

  it('reads the MBQL 5 form of a native question (stages)', async () => {
    metabase.cards.set(2, {
      id: 2,
      name: 'staged',
      dataset_query: {
        'lib/type': 'mbql/query',
        database: 2,
        stages: [{ 'lib/type': 'mbql.stage/native', native: 'SELECT 1 AS id' }],
      },
    });
    expect(await sqlOfQuestion(model(2), mbSource(), warehouse(), ctx())).toBe('SELECT 1 AS id');
  });

  it('lets Metabase fill in template tags with defaults and drop optional clauses without a value', async () => {
    native(3, 'SELECT id FROM orders WHERE paid = {{paid}} [[AND id > {{after}}]]', {
      'template-tags': {
        paid: { type: 'text', name: 'paid', default: 'true' },
        after: { type: 'number', name: 'after' },
      },
    });
    expect(await sqlOfQuestion(model(3), mbSource(), warehouse(), ctx())).toBe(
      "SELECT id FROM orders WHERE paid = 'true'",
    );
  });

  it('checks the database name only when Metabase shows the connection details', async () => {
    native(4, 'SELECT 1 AS id', {}, 5);
    expect(await sqlOfQuestion(model(4), mbSource(), warehouse('postgres', 'elsewhere'), ctx())).toBe(
      'SELECT 1 AS id',
    );
    native(5, 'SELECT 1 AS id');
    await expect(
      sqlOfQuestion(model(5), mbSource(), warehouse('postgres', 'elsewhere'), ctx()),
    ).rejects.toMatchObject({
      reason: 'BiDatabaseMismatch',
      message: expect.stringContaining('"shop"'),
    });
  });

  it('refuses a question of another kind of database, an archived one, and one the key may not see', async () => {
    native(6, 'SELECT 1 AS id', {}, 6);
    await expect(sqlOfQuestion(model(6), mbSource(), warehouse(), ctx())).rejects.toMatchObject({
      reason: 'BiDatabaseMismatch',
      message: expect.stringContaining('a mysql database'),
    });
    metabase.cards.set(7, {
      id: 7,
      name: 'old',
      archived: true,
      dataset_query: { database: 2, type: 'native', native: { query: 'SELECT 1' } },
    });
    await expect(sqlOfQuestion(model(7), mbSource(), warehouse(), ctx())).rejects.toMatchObject({
      reason: 'BiQuestionNotFound',
    });
    metabase.cards.set(8, {
      id: 8,
      name: 'hidden',
      visible: false,
      dataset_query: { database: 2, type: 'native', native: { query: 'SELECT 1' } },
    });
    await expect(sqlOfQuestion(model(8), mbSource(), warehouse(), ctx())).rejects.toMatchObject({
      reason: 'PermissionDenied',
    });
  });
});

describe('the results of a question', () => {
  it('are staged with the types of its result metadata, also when there is no row', async () => {
    native(9, 'SELECT id, total, day, paid FROM orders WHERE id > {{min}}', {
      'template-tags': { min: { type: 'number', name: 'min', default: 2 } },
    });
    native(10, 'SELECT id, total, day, paid FROM orders WHERE false');
    const instance = await DuckDBInstance.create(':memory:');
    const duck = await instance.connect();
    const labels = { namespace: 'ns', sync: 's', runId: 'r1' };
    const staged = await source.stage({
      ...ctx(),
      source: mbSource(),
      model: model(9, 'results'),
      duck,
      table: 'rows',
      labels,
    });
    expect(staged.rows).toBe(2);
    expect(staged.columns).toEqual([
      { name: 'id', type: 'BIGINT' },
      { name: 'total', type: 'DOUBLE' },
      { name: 'day', type: 'DATE' },
      { name: 'paid', type: 'BOOLEAN' },
    ]);
    const rows = (
      await duck.runAndReadAll('SELECT id, total, day::VARCHAR AS day, paid FROM rows ORDER BY id')
    ).getRowObjectsJS();
    expect(rows).toEqual([
      { id: 3n, total: 4.5, day: '2025-01-04', paid: false },
      { id: 4n, total: 6, day: '2025-01-05', paid: true },
    ]);
    const empty = await source.stage({
      ...ctx(),
      source: mbSource(),
      model: model(10, 'results'),
      duck,
      table: 'none',
      labels,
    });
    expect(empty.rows).toBe(0);
    expect(empty.columns.map((c) => c.type)).toEqual(['BIGINT', 'DOUBLE', 'DATE', 'BOOLEAN']);
    duck.closeSync();
  });
});
