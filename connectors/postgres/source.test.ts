import { freePort } from '../../test/stack/process.ts';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import { isSynclineError } from '../../core/errors.ts';
import { startPostgres, type PostgresServer } from '../../test/stack/postgres.ts';
import { openDuck, rowsOf, testContext } from '../shared/test-context.ts';
import { stagedHashColumn, type StageRequest, type StagingChoice } from '../../core/connectors.ts';
import { rowHashSql } from '../../runner/diff.ts';
import { source } from './index.ts';

let server: PostgresServer;
let db: pg.Client;
let duck: Awaited<ReturnType<typeof openDuck>>;
const ctx = testContext({ pg: { password: 'syncline-test', wrong: 'not-the-password' } });
let n = 0;

function spec(overrides: Record<string, unknown> = {}): SourceSpec {
  return {
    type: 'postgres',
    postgres: {
      host: server.host,
      port: server.port,
      database: 'src',
      user: server.user,
      password: { secretKeyRef: { name: 'pg', key: 'password' } },
      ...overrides,
    },
  } as SourceSpec;
}

function request(model: Partial<ModelSpec>, sourceSpec = spec()): StageRequest {
  n += 1;
  return {
    ...ctx,
    source: sourceSpec,
    model: { sourceRef: { name: 'pg' }, primaryKey: 'id', ...model } as ModelSpec,
    duck: duck.duck,
    table: `staged_${n}`,
    labels: { namespace: 'default', sync: 'test', runId: `run-${n}`, model: 'default/customers' },
  };
}

async function reason(promise: Promise<unknown>): Promise<{ reason: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isSynclineError(error)) return { reason: error.reason, message: error.message };
    throw error;
  }
  throw new Error('expected a SynclineError');
}

/** The info lines of stages that started again with large read buffers. */
function retries() {
  return ctx.log.lines.filter((l) => l.level === 'info' && /staging again from the start/.test(l.msg ?? ''));
}

beforeAll(async () => {
  server = await startPostgres();
  const url = await server.createDatabase('src');
  db = new pg.Client({ connectionString: url });
  await db.connect();
  await db.query(`
    CREATE TYPE mood AS ENUM ('happy', 'sad');
    CREATE TABLE everything (
      id bigint PRIMARY KEY,
      small int2, medium int4,
      exact numeric(38,9), unbounded numeric, wide numeric(50,2),
      f4 float4, f8 float8, flag bool,
      label text, code char(3), name varchar(20), uid uuid,
      day date, clock time, at timestamp, at_tz timestamptz, span interval,
      doc json, docb jsonb, raw bytea,
      ints int4[], bigs int8[], texts text[], nums numeric(10,2)[], stamps timestamptz[],
      feeling mood, addr inet
    );
    INSERT INTO everything VALUES
      (9223372036854775807, -32768, 2147483647,
       12345678901234567890123456789.123456789, 0.1000000000000000000000000000000000000000001, 123456789012345678901234567890123456789012345678.99,
       1.5, 0.1, true,
       E'Zoë 😀 中文 "quoted", comma\nnew line', 'ab', 'x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
       '2024-02-29', '23:59:59.999999', '2024-01-01 00:00:00.000001', '2024-06-01 12:00:00.123456+02', '1 year 2 months -3 days 04:05:06.5',
       '{"a": [1, 2.50, "x"]}', '{"big": 12345678901234567890}', '\\x00ff41',
       '{1,NULL,3}', '{9007199254740993}', '{"a,b","c\\"d",NULL,""}', '{1.10,2.25}', '{"2024-01-01 00:00:00+00"}',
       'happy', '10.0.0.1/32'),
      (9007199254740993, NULL, NULL, NULL, NULL, NULL, 'NaN', '-Infinity', false,
       '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '\\x', '{}', NULL, NULL, NULL, NULL, NULL, NULL),
      (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'null', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    CREATE SCHEMA sales;
    CREATE TABLE sales."Order Lines" (id int PRIMARY KEY, amount numeric(12,2));
    INSERT INTO sales."Order Lines" SELECT g, g * 1.25 FROM generate_series(1, 2000) g;
    CREATE TABLE notes (id int PRIMARY KEY, body text);
    INSERT INTO notes SELECT g, 'row ' || g || E',\n"multi"\r\nline ' || repeat('é', g % 7) FROM generate_series(1, 50000) g;
  `);
  duck = await openDuck();
}, 120_000);

afterAll(async () => {
  await db?.end();
  duck?.close();
  await server?.stop();
  ctx.cleanup();
});

describe('postgres source: stage', () => {
  it('maps every column to the DuckDB type that keeps its values', async () => {
    const req = request({ table: 'everything' });
    const result = await source!.stage(req);
    expect(result.rows).toBe(3);
    expect(Object.fromEntries(result.columns.map((c) => [c.name, c.type]))).toEqual({
      id: 'BIGINT',
      small: 'SMALLINT',
      medium: 'INTEGER',
      exact: 'DECIMAL(38,9)',
      unbounded: 'VARCHAR',
      wide: 'VARCHAR',
      f4: 'FLOAT',
      f8: 'DOUBLE',
      flag: 'BOOLEAN',
      label: 'VARCHAR',
      code: 'VARCHAR',
      name: 'VARCHAR',
      uid: 'UUID',
      day: 'DATE',
      clock: 'TIME',
      at: 'TIMESTAMP',
      at_tz: 'TIMESTAMP WITH TIME ZONE',
      span: 'INTERVAL',
      doc: 'JSON',
      docb: 'JSON',
      raw: 'BLOB',
      ints: 'INTEGER[]',
      bigs: 'BIGINT[]',
      texts: 'VARCHAR[]',
      nums: 'DECIMAL(10,2)[]',
      stamps: 'TIMESTAMP WITH TIME ZONE[]',
      feeling: 'VARCHAR',
      addr: 'VARCHAR',
    });
    expect(result.columns.find((c) => c.name === 'wide')?.sourceType).toBe('numeric');
  });

  it('stores the row hash the engine asks for, equal to the one it would compute itself', async () => {
    const req = request({ table: 'everything' });
    let offered: string[] = [];
    const result = await source!.stage({
      ...req,
      chooseStaging: (columns) => {
        offered = columns.map((c) => c.name);
        return {
          hashes: [{ by: 'engine', columns: offered.filter((name) => name !== 'small') }],
          keysOnly: false,
        };
      },
    });
    expect(offered).toContain('id');
    expect(result.hashes).toEqual([
      { by: 'engine', columns: offered.filter((name) => name !== 'small'), column: stagedHashColumn(0) },
    ]);
    expect(result.columns.map((c) => c.name)).toEqual(offered);
    const engine = rowHashSql(
      result.columns.filter((c) => c.name !== 'small').map((c) => ({ sql: `"${c.name}"`, type: c.type })),
    );
    const rows = await rowsOf(
      duck.duck,
      `SELECT count(*) AS n, count(*) FILTER (WHERE ${stagedHashColumn(0)} = ${engine}) AS same FROM ${req.table}`,
    );
    expect(rows[0]).toEqual({ n: '3', same: '3' });
    // A column the model does not have: no hash, never a failed stage.
    const other = await source!.stage({
      ...request({ table: 'everything' }),
      chooseStaging: () => ({ hashes: [{ by: 'engine', columns: ['nope'] }], keysOnly: false }),
    });
    expect(other.hashes).toEqual([]);
  });

  it('hashes rows in PostgreSQL: the same row the same way every time, a changed value of any type differently', async () => {
    const columns = [
      'small',
      'medium',
      'exact',
      'unbounded',
      'wide',
      'f4',
      'f8',
      'flag',
      'label',
      'code',
      'name',
      'uid',
      'day',
      'clock',
      'at',
      'at_tz',
      'span',
      'doc',
      'docb',
      'raw',
      'ints',
      'bigs',
      'texts',
      'nums',
      'stamps',
      'feeling',
      'addr',
    ];
    const plan: StagingChoice = { hashes: [{ by: 'source', columns }], keysOnly: false };
    const hashes = async (table: string) => {
      const req = request({ table });
      const result = await source!.stage({ ...req, chooseStaging: () => plan });
      expect(result.sourceHash?.name).toBe('postgres');
      expect(result.sourceHash?.probe).toMatch(/^-?\d+$/);
      expect(result.hashes).toEqual([{ by: 'source', columns, column: stagedHashColumn(0) }]);
      const rows = await rowsOf(
        duck.duck,
        `SELECT CAST(id AS VARCHAR) AS id, CAST(${stagedHashColumn(0)} AS VARCHAR) AS h FROM ${req.table} ORDER BY id`,
      );
      return new Map(rows.map((r) => [String(r['id']), String(r['h'])]));
    };
    await db.query(
      'DROP TABLE IF EXISTS everything_copy; CREATE TABLE everything_copy AS SELECT * FROM everything',
    );
    const before = await hashes('everything_copy');
    expect(before.size).toBe(3);
    expect(new Set(before.values()).size).toBe(3);
    expect(await hashes('everything_copy')).toEqual(before);
    // One changed value per column, each in its own row copy: every one changes the hash.
    const top = '9223372036854775807';
    const changes: Record<string, string> = {
      small: '-32767',
      medium: '1',
      exact: '1.000000001',
      unbounded: '0.1',
      wide: '1',
      f4: '1.25',
      f8: '0.2',
      flag: 'false',
      label: "'Zoe'",
      code: "'ab1'",
      name: "'X'",
      uid: "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'",
      day: "'2024-03-01'",
      clock: "'23:59:59.999998'",
      at: "'2024-01-01 00:00:00.000002'",
      at_tz: "'2024-06-01 12:00:00.123457+02'",
      span: "'1 year 2 months -3 days 04:05:06.6'",
      doc: `'{"a": [1, 2.5, "x"]}'`,
      docb: `'{"big": 12345678901234567891}'`,
      raw: "'\\x00ff42'",
      ints: "'{1,2,3}'",
      bigs: "'{9007199254740992}'",
      texts: `'{"a,b","c\\"d",NULL,"x"}'`,
      nums: "'{1.10,2.26}'",
      stamps: '\'{"2024-01-01 00:00:01+00"}\'',
      feeling: "'sad'",
      addr: "'10.0.0.2/32'",
    };
    for (const [column, value] of Object.entries(changes)) {
      await db.query(`UPDATE everything_copy SET "${column}" = ${value} WHERE id = ${top}`);
      const after = await hashes('everything_copy');
      expect(after.get(top), column).not.toBe(before.get(top));
      expect(after.get('3')).toBe(before.get('3'));
      await db.query(
        `UPDATE everything_copy c SET "${column}" = e."${column}" FROM everything e WHERE e.id = c.id`,
      );
    }
    expect(await hashes('everything_copy')).toEqual(before);
    // NULL, '' and a case change under a case-insensitive collation all differ.
    await db.query(
      `CREATE COLLATION IF NOT EXISTS ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
       DROP TABLE IF EXISTS texts_ci; CREATE TABLE texts_ci (id int PRIMARY KEY, t text COLLATE ci);
       INSERT INTO texts_ci VALUES (1, 'a'), (2, 'A'), (3, ''), (4, NULL)`,
    );
    const req = request({ table: 'texts_ci' });
    await source!.stage({
      ...req,
      chooseStaging: () => ({ hashes: [{ by: 'source', columns: ['t'] }], keysOnly: false }),
    });
    const distinct = await rowsOf(
      duck.duck,
      `SELECT count(DISTINCT ${stagedHashColumn(0)}) AS n FROM ${req.table}`,
    );
    expect(distinct[0]).toEqual({ n: '4' });
  });

  it('stages keys and hashes only, then fetches the rows of the keys asked for, in the same transaction', async () => {
    await db.query(`DROP TABLE IF EXISTS keyed;
      CREATE TABLE keyed (id text PRIMARY KEY, n int, body text);
      INSERT INTO keyed SELECT 'k' || g, g, 'body ' || g FROM generate_series(1, 1000) g;
      INSERT INTO keyed VALUES (E'odd "key", with {braces} and \\\\ backslash', -1, 'odd'), ('it''s', -2, 'quote')`);
    const plan: StagingChoice = { hashes: [{ by: 'source', columns: ['n', 'body'] }], keysOnly: true };
    const req = request({ table: 'keyed' });
    const result = await source!.stage({ ...req, chooseStaging: () => plan });
    try {
      expect(result.rows).toBe(1002);
      expect(result.keysOnly).toBeDefined();
      expect(result.columns.map((c) => c.name)).toEqual(['id', 'n', 'body']);
      const stagedColumns = await rowsOf(duck.duck, `SELECT column_name FROM (DESCRIBE ${req.table})`);
      expect(stagedColumns.map((r) => r['column_name'])).toEqual(['id', stagedHashColumn(0)]);
      // Changed after the keys were read: the fetch still sees the rows as they were.
      await db.query(`UPDATE keyed SET body = 'later' WHERE id = 'k1'`);
      await duck.duck.run(
        `CREATE OR REPLACE TABLE wanted AS SELECT id FROM ${req.table} WHERE id IN ('k1', 'k2', 'it''s') OR id LIKE 'odd%'`,
      );
      const fetched = await result.keysOnly!.fetch({
        table: `${req.table}_rows`,
        keysSql: 'SELECT id FROM wanted',
        keyCount: 4,
      });
      expect(fetched.rows).toBe(4);
      const rows = await rowsOf(
        duck.duck,
        `SELECT f.id, f.body, f.${stagedHashColumn(0)} = k.${stagedHashColumn(0)} AS same
           FROM ${req.table}_rows f JOIN ${req.table} k USING (id) ORDER BY f.id`,
      );
      expect(rows).toEqual([
        { id: "it's", body: 'quote', same: true },
        { id: 'k1', body: 'body 1', same: true },
        { id: 'k2', body: 'body 2', same: true },
        { id: 'odd "key", with {braces} and \\ backslash', body: 'odd', same: true },
      ]);
      expect(
        ctx.log.lines
          .filter((l) => l.msg === 'staged the PostgreSQL rows whose hash changed')
          .map((l) => (l.obj as { filteredIn?: string }).filteredIn),
      ).toEqual(['PostgreSQL']);
      // No keys at all: no read.
      const none = await result.keysOnly!.fetch({
        table: `${req.table}_none`,
        keysSql: 'SELECT id FROM wanted WHERE false',
        keyCount: 0,
      });
      expect(none.rows).toBe(0);
    } finally {
      await result.keysOnly?.close();
    }
    const filteredIn = () =>
      ctx.log.lines
        .filter((l) => l.msg === 'staged the PostgreSQL rows whose hash changed')
        .map((l) => (l.obj as { filteredIn?: string }).filteredIn);
    const active = await db.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'syncline default/test ${req.labels.runId}%'`,
    );
    expect(active.rows[0].n).toBe(0);

    // A key type PostgreSQL is not handed a list of (numeric): DuckDB filters a full read.
    await db.query(`DROP TABLE IF EXISTS keyed_num;
      CREATE TABLE keyed_num (id numeric(10,2) PRIMARY KEY, body text);
      INSERT INTO keyed_num SELECT g + 0.5, 'body ' || g FROM generate_series(1, 100) g`);
    const numeric = request({ table: 'keyed_num' });
    const staged = await source!.stage({
      ...numeric,
      chooseStaging: () => ({ hashes: [{ by: 'source', columns: ['body'] }], keysOnly: true }),
    });
    try {
      const rows = await staged.keysOnly!.fetch({
        table: `${numeric.table}_rows`,
        keysSql: `SELECT id FROM ${numeric.table} WHERE id < 3`,
        keyCount: 2,
      });
      expect(rows.rows).toBe(2);
      const bodies = await rowsOf(duck.duck, `SELECT body FROM ${numeric.table}_rows ORDER BY id`);
      expect(bodies).toEqual([{ body: 'body 1' }, { body: 'body 2' }]);
      expect(filteredIn().at(-1)).toBe('DuckDB');
    } finally {
      await staged.keysOnly?.close();
    }
  });

  it('fails a fetch whose connection was lost with the reason, and still closes', async () => {
    await db.query(`DROP TABLE IF EXISTS lost;
      CREATE TABLE lost (id text PRIMARY KEY, n int); INSERT INTO lost VALUES ('k1', 1), ('k2', 2)`);
    const req = request({ table: 'lost' });
    const result = await source!.stage({
      ...req,
      chooseStaging: () => ({ hashes: [{ by: 'source', columns: ['n'] }], keysOnly: true }),
    });
    await db.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'syncline default/test ${req.labels.runId}%'`,
    );
    const failed = await reason(
      result.keysOnly!.fetch({ table: `${req.table}_rows`, keysSql: `SELECT 'k1'`, keyCount: 1 }),
    );
    expect(failed.reason).toMatch(/^Source(QueryFailed|Unreachable)$/);
    expect(failed.message).toMatch(/terminat|connect|closed/i);
    await expect(result.keysOnly!.close()).resolves.toBeUndefined();
    const tables = await rowsOf(
      duck.duck,
      `SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = '${req.table}_rows'`,
    );
    expect(tables[0]).toEqual({ n: '0' });
  });

  it('keeps every value exact', async () => {
    const req = request({ table: 'everything' });
    await source!.stage(req);
    const rows = await rowsOf(
      duck.duck,
      `SELECT id::VARCHAR AS id, small, medium, exact::VARCHAR AS exact, unbounded, wide, f4, f8, flag, label, code, name,
              uid::VARCHAR AS uid, day::VARCHAR AS day, clock::VARCHAR AS clock, "at"::VARCHAR AS "at", at_tz::VARCHAR AS at_tz,
              span::VARCHAR AS span, doc::VARCHAR AS doc, docb::VARCHAR AS docb, hex(raw) AS raw, octet_length(raw) AS raw_len,
              ints, bigs::VARCHAR[] AS bigs, texts, nums::VARCHAR[] AS nums, stamps::VARCHAR[] AS stamps, feeling, addr
         FROM ${req.table} ORDER BY id DESC`,
    );
    expect(rows[0]).toEqual({
      id: '9223372036854775807',
      small: -32768,
      medium: 2147483647,
      exact: '12345678901234567890123456789.123456789',
      unbounded: '0.1000000000000000000000000000000000000000001',
      wide: '123456789012345678901234567890123456789012345678.99',
      f4: 1.5,
      f8: 0.1,
      flag: true,
      label: 'Zoë 😀 中文 "quoted", comma\nnew line',
      code: 'ab ',
      name: 'x',
      uid: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      day: '2024-02-29',
      clock: '23:59:59.999999',
      at: '2024-01-01 00:00:00.000001',
      at_tz: '2024-06-01 10:00:00.123456+00',
      span: '1 year 2 months -3 days 04:05:06.5',
      doc: '{"a": [1, 2.50, "x"]}',
      docb: '{"big": 12345678901234567890}',
      raw: '00FF41',
      raw_len: '3',
      ints: [1, null, 3],
      bigs: ['9007199254740993'],
      texts: ['a,b', 'c"d', null, ''],
      nums: ['1.10', '2.25'],
      stamps: ['2024-01-01 00:00:00+00'],
      feeling: 'happy',
      addr: '10.0.0.1',
    });
    // NULL stays NULL and the empty string stays empty; NaN and infinities survive; empty bytea and arrays too.
    expect(rows[1]).toMatchObject({
      id: '9007199254740993',
      label: '',
      code: null,
      f4: 'NaN',
      f8: '-Infinity',
      raw: '',
      raw_len: '0',
      ints: [],
    });
    expect(rows[2]).toMatchObject({ id: '3', label: null, doc: 'null', raw: null, ints: null, flag: null });
  });

  it('reads a schema-qualified table with a quoted name, and a query', async () => {
    const table = await source!.stage(request({ table: 'sales."Order Lines"' }));
    expect(table.rows).toBe(2000);
    expect(table.columns).toEqual([
      { name: 'id', type: 'INTEGER', sourceType: 'int4' },
      { name: 'amount', type: 'DECIMAL(12,2)', sourceType: 'numeric' },
    ]);
    const req = request({
      query: 'SELECT id, amount * 2 AS doubled FROM sales."Order Lines" WHERE id <= 10 -- trailing comment',
    });
    const query = await source!.stage(req);
    expect(query.rows).toBe(10);
    // A computed numeric has no declared precision: it stays exact text.
    expect(query.columns[1]).toMatchObject({ name: 'doubled', type: 'VARCHAR' });
    const sum = await rowsOf(duck.duck, `SELECT sum(doubled::DECIMAL(20,2))::VARCHAR AS s FROM ${req.table}`);
    expect(sum[0]?.s).toBe('137.50');
  });

  it('streams many rows with embedded newlines, quotes and commas intact', async () => {
    const req = request({ table: 'notes' });
    const before = retries().length;
    const result = await source!.stage(req);
    expect(result.rows).toBe(50000);
    expect(retries()).toHaveLength(before); // no row longer than 4 MiB: one pass
    const digest = await db.query(
      `SELECT md5(string_agg(id || ':' || body, '|' ORDER BY id)) AS h FROM notes`,
    );
    const staged = await rowsOf(
      duck.duck,
      `SELECT md5(string_agg(id || ':' || body, '|' ORDER BY id)) AS h FROM ${req.table}`,
    );
    expect(staged[0]?.h).toBe(digest.rows[0].h);
  });

  it('stages a row longer than 4 MiB again, from the start, with large buffers and its value intact', async () => {
    // ~5 MiB of lines with quotes, commas and a two-byte character, between ordinary rows.
    await db.query(`
      CREATE TABLE long_rows (id int PRIMARY KEY, body text);
      INSERT INTO long_rows SELECT g, 'row ' || g || ', "short"' FROM generate_series(1, 100000) g;
      INSERT INTO long_rows SELECT 100001, string_agg('line ' || g || ', "quoted", é', E'\\n' ORDER BY g)
        FROM generate_series(1, 215000) g;
      INSERT INTO long_rows SELECT g, 'row ' || g FROM generate_series(100002, 150000) g;
    `);
    const expected = await db.query<{ bytes: number; h: string; all: string }>(
      `SELECT (SELECT octet_length(body) FROM long_rows WHERE id = 100001) AS bytes,
              (SELECT md5(body) FROM long_rows WHERE id = 100001) AS h,
              md5(string_agg(id || ':' || body, '|' ORDER BY id)) AS "all" FROM long_rows`,
    );
    expect(expected.rows[0]!.bytes).toBeGreaterThan(5 * 1024 * 1024);
    const before = retries().length;

    // The long row in the middle of the stream, then first in it.
    for (const [model, count] of [
      [{ table: 'long_rows' }, 150000],
      [{ query: 'SELECT * FROM long_rows WHERE id >= 100001' }, 50000],
    ] as const) {
      const req = request(model);
      const result = await source!.stage(req);
      expect(result.rows).toBe(count);
      const staged = await rowsOf(
        duck.duck,
        `SELECT count(*)::INTEGER AS n,
                (SELECT strlen(body) FROM ${req.table} WHERE id = 100001)::INTEGER AS bytes,
                (SELECT md5(body) FROM ${req.table} WHERE id = 100001) AS h,
                md5(string_agg(id || ':' || body, '|' ORDER BY id)) AS "all" FROM ${req.table}`,
      );
      expect(staged[0]).toMatchObject({ n: count, bytes: expected.rows[0]!.bytes, h: expected.rows[0]!.h });
      if (count === 150000) expect(staged[0]?.all).toBe(expected.rows[0]!.all);
    }

    // Logged once a stage, without values.
    const logged = retries().slice(before);
    expect(logged).toHaveLength(2);
    expect(logged[1]?.msg).toContain('a row of the model is longer than 4 MiB');
    for (const line of logged)
      expect(line.obj).toEqual({ maxLineSize: 4 * 1024 * 1024, retryMaxLineSize: 16 * 1024 * 1024 });
  });

  it('fails a row longer than 16 MiB with DuckDB’s message and keeps no table', async () => {
    const req = request({
      query:
        "SELECT g AS id, CASE WHEN g = 2 THEN repeat('x', 17 * 1024 * 1024) ELSE 'small' END AS body FROM generate_series(1, 3) g",
    });
    const error = await reason(source!.stage(req));
    expect(error.reason).toBe('SourceQueryFailed');
    expect(error.message).toContain(
      'loading the model rows into DuckDB failed: Invalid Input Error: CSV Error on Line: 2',
    );
    expect(error.message).toContain('a row of the model is longer than 16 MiB');
    expect(error.message).not.toContain('xxxx');
    expect(error.message.length).toBeLessThan(300);
    const tables = await rowsOf(
      duck.duck,
      `SELECT table_name FROM information_schema.tables WHERE table_name = '${req.table}'`,
    );
    expect(tables).toEqual([]);
  });

  it('fails a broken query with PostgreSQL’s code and message', async () => {
    const error = await reason(source!.stage(request({ query: 'SELECT nope FROM everything' })));
    expect(error.reason).toBe('SourceQueryFailed');
    expect(error.message).toContain('42703');
    expect(error.message).toContain('column "nope" does not exist');
    const duplicate = await reason(source!.stage(request({ query: 'SELECT id, id FROM everything' })));
    expect(duplicate.reason).toBe('SourceQueryFailed');
    expect(duplicate.message).toContain('"id" more than once');
  });

  it('fails a COPY that breaks midway and keeps no partial table', async () => {
    const req = request({ query: 'SELECT g AS id, 1 / (g - 30000) AS x FROM generate_series(1, 50000) g' });
    const error = await reason(source!.stage(req));
    expect(error.reason).toBe('SourceQueryFailed');
    expect(error.message).toContain('22012');
    const tables = await rowsOf(
      duck.duck,
      `SELECT table_name FROM information_schema.tables WHERE table_name = '${req.table}'`,
    );
    expect(tables).toEqual([]);
  });

  it('fails with DuckDB’s message when a value cannot be loaded', async () => {
    const error = await reason(
      source!.stage(request({ query: "SELECT 1 AS id, TIMESTAMP '294270-01-01 00:00:00' AS far" })),
    );
    expect(error.reason).toBe('SourceQueryFailed');
    expect(error.message).toContain('loading the model rows into DuckDB failed');
  });

  it('applies statementTimeoutSeconds', async () => {
    const error = await reason(
      source!.stage(request({ query: 'SELECT pg_sleep(3) AS id' }, spec({ statementTimeoutSeconds: 1 }))),
    );
    expect(error.reason).toBe('SourceQueryFailed');
    expect(error.message).toContain('57014');
  });
});

describe('postgres source: the model can only read', () => {
  const victimRows = async () =>
    (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM victim')).rows[0]!.n;
  const sequenceValue = async () =>
    (await db.query<{ v: string }>('SELECT last_value::text AS v FROM victim_seq')).rows[0]!.v;
  /** A staged column `ro`: current_setting('transaction_read_only') of the transaction each row was read in. */
  const readOnlyFlags = async (table: string) =>
    (await rowsOf(duck.duck, `SELECT DISTINCT ro FROM ${table}`)).map((r) => r['ro']);

  beforeAll(async () => {
    await db.query(`
      CREATE TABLE victim (id int PRIMARY KEY);
      INSERT INTO victim SELECT generate_series(1, 3);
      CREATE SEQUENCE victim_seq;
      CREATE FUNCTION wipe_victim() RETURNS int LANGUAGE sql VOLATILE AS 'DELETE FROM victim RETURNING 1';
    `);
  });

  it('refuses a query that closes the wrapping subquery to run another statement, and the table survives', async () => {
    for (const query of [
      'SELECT 1 AS id) AS m; DELETE FROM victim; SELECT * FROM (SELECT 1 AS id',
      'SELECT 1 AS id) AS m LIMIT 0; DELETE FROM victim; SELECT * FROM (SELECT 1 AS id',
    ]) {
      const error = await reason(source!.stage(request({ query })));
      expect(await victimRows()).toBe(3);
      expect(error.reason).toBe('ModelNotReadOnly');
      expect(error.message).toContain('Model default/customers');
      expect(error.message).toContain('a single read-only SELECT');
    }
  });

  it('runs the model in a read-only transaction: a model that writes fails, and nothing is written', async () => {
    for (const query of [
      'SELECT id, wipe_victim() AS w FROM victim',
      "SELECT nextval('victim_seq') AS id",
      "SELECT 1 AS id, set_config('default_transaction_read_only', 'off', false) AS s, wipe_victim() AS w",
    ]) {
      const error = await reason(source!.stage(request({ query })));
      expect(await victimRows()).toBe(3);
      expect(error.reason).toBe('ModelNotReadOnly');
      expect(error.message).toContain('Model default/customers');
      expect(error.message).toContain('read-only transaction');
    }
    expect(await sequenceValue()).toBe('1'); // never called: is_called stays false
    const called = await db.query<{ c: boolean }>('SELECT is_called AS c FROM victim_seq');
    expect(called.rows[0]!.c).toBe(false);
  });

  it('reads every row in a read-only transaction: a plain read, a restage with large buffers, a keys-only fetch', async () => {
    const plain = request({
      query: "SELECT g AS id, current_setting('transaction_read_only') AS ro FROM generate_series(1, 3) g",
    });
    await source!.stage(plain);
    expect(await readOnlyFlags(plain.table)).toEqual(['on']);

    // A row longer than 4 MiB: the rows are read again on a fresh connection.
    const longRow = `SELECT g AS id, current_setting('transaction_read_only') AS ro,
        CASE WHEN g = 2 THEN repeat('x', 5 * 1024 * 1024) ELSE 'short' END AS body FROM generate_series(1, 3) g`;
    const before = retries().length;
    const restaged = request({ query: longRow });
    await source!.stage(restaged);
    expect(retries().length).toBe(before + 1);
    expect(await readOnlyFlags(restaged.table)).toEqual(['on']);

    // Keys only: the keys pass is narrow, the fetch of the long row restages on a fresh connection.
    const keyed = request({ query: longRow });
    const result = await source!.stage({
      ...keyed,
      chooseStaging: () => ({ hashes: [{ by: 'source', columns: ['ro', 'body'] }], keysOnly: true }),
    });
    try {
      await result.keysOnly!.fetch({
        table: `${keyed.table}_rows`,
        keysSql: 'SELECT 1 UNION ALL SELECT 2',
        keyCount: 2,
      });
      expect(retries().length).toBe(before + 2);
      expect(await readOnlyFlags(`${keyed.table}_rows`)).toEqual(['on']);
    } finally {
      await result.keysOnly?.close();
    }
  });
});

describe('postgres source: check', () => {
  it('passes with the right settings', async () => {
    await expect(source!.check(spec(), ctx)).resolves.toBeUndefined();
  });

  it('names wrong passwords, missing databases, unreachable servers and missing secrets', async () => {
    const wrong = await reason(
      source!.check(spec({ password: { secretKeyRef: { name: 'pg', key: 'wrong' } } }), ctx),
    );
    expect(wrong.reason).toBe('AuthenticationFailed');
    expect(wrong.message).not.toContain('not-the-password');
    expect((await reason(source!.check(spec({ database: 'missing' }), ctx))).reason).toBe('DatabaseNotFound');
    const port = await freePort();
    const unreachable = await reason(source!.check(spec({ port }), ctx));
    expect(unreachable.reason).toBe('SourceUnreachable');
    expect(unreachable.message).toContain('ECONNREFUSED');
    const secret = await reason(
      source!.check(spec({ password: { secretKeyRef: { name: 'absent', key: 'password' } } }), ctx),
    );
    expect(secret.reason).toBe('SecretNotFound');
    const tls = await reason(source!.check(spec({ tls: { mode: 'require' } }), ctx));
    expect(tls.reason).toBe('SourceUnreachable');
    expect(tls.message).toContain('TLS');
  });
});
