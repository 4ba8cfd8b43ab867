import { existsSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import { startMysql, type MysqlServer } from '../../test/stack/mysql.ts';
import { openDuck, rowsOf, testContext } from '../shared/test-context.ts';
import type { StageRequest } from '../../core/connectors.ts';
import { mysqlSource } from './source.ts';
import { synclineFailure as failure } from '../shared/test-context.ts';

let server: MysqlServer;
let tlsServer: MysqlServer;
const ctx = testContext({ mysql: { password: 'syncline-test', wrong: 'nope' } });

function spec(overrides: Partial<NonNullable<SourceSpec['mysql']>> = {}, target = () => server): SourceSpec {
  const s = target();
  return {
    type: 'mysql',
    mysql: {
      host: s.host,
      port: s.port,
      database: s.database,
      user: s.user,
      password: { secretKeyRef: { name: 'mysql', key: 'password' } },
      ...overrides,
    },
  };
}

async function stage(model: Partial<ModelSpec>, source: SourceSpec = spec()) {
  const { duck, close } = await openDuck();
  const req: StageRequest = {
    ...ctx,
    source,
    model: { sourceRef: { name: 'db' }, primaryKey: 'id', ...model },
    duck,
    table: 'staged',
    labels: { namespace: 'team', sync: 'customers', runId: 'run-1', model: 'team/customers' },
  };
  try {
    const result = await mysqlSource.stage(req);
    const rows = await rowsOf(duck, 'SELECT * FROM staged ORDER BY 1');
    return { ...result, rows, count: result.rows };
  } finally {
    close();
  }
}

beforeAll(async () => {
  [server, tlsServer] = await Promise.all([startMysql(), startMysql({ tls: true })]);
  await server.query(`
    CREATE TABLE syncline.everything (
      id INT PRIMARY KEY,
      amount DECIMAL(38,10),
      huge DECIMAL(65,30),
      big BIGINT,
      ubig BIGINT UNSIGNED,
      tiny TINYINT,
      flag BOOLEAN,
      ratio DOUBLE,
      small_float FLOAT,
      born DATE,
      local_time DATETIME(6),
      instant TIMESTAMP(6) NULL,
      clock TIME(6),
      yr YEAR,
      doc JSON,
      name VARCHAR(200) CHARACTER SET utf8mb4,
      body TEXT,
      raw VARBINARY(64),
      blob_col BLOB,
      bits BIT(64),
      kind ENUM('a','b'),
      uid UUID
    );
    INSERT INTO syncline.everything VALUES
      (1, 12345678901234567890.1234567891, 12345678901234567890123456789012345.123456789012345678901234567891,
       9223372036854775807, 18446744073709551615, -128, TRUE, 0.1, 1.5, '2024-02-29',
       '2024-03-10 02:30:00.123456', '2024-06-01 12:00:00.654321', '23:59:59.999999', 2024,
       '{"n": 12345678901234567890, "nested": {"a": [1, 2.5, "x"]}}', '顧客 😀 Ünïcødé ✓', 'line1\nline2 "quoted", comma',
       X'00FF10', X'DEADBEEF', b'1111111111111111111111111111111111111111111111111111111111111111', 'b',
       '123e4567-e89b-12d3-a456-426614174000'),
      (2, -0.0000000001, 0, -9223372036854775808, 0, 127, FALSE, 1.7976931348623157e308, -3.25, '1000-01-01',
       '1970-01-01 00:00:00', '1970-01-01 00:00:01', '00:00:00', 1901, '[]', '', '', X'', X'', b'0', 'a',
       '00000000-0000-0000-0000-000000000000'),
      (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    CREATE TABLE syncline.zero_dates (id INT PRIMARY KEY, d DATE, dt DATETIME);
    SET SESSION sql_mode = '';
    INSERT INTO syncline.zero_dates VALUES (1, '0000-00-00', '0000-00-00 00:00:00');
  `);
}, 300_000);

afterAll(async () => {
  ctx.cleanup();
  await Promise.all([server?.stop(), tlsServer?.stop()]);
});

describe('mysql source: types', () => {
  it('round-trips every type exactly into DuckDB', async () => {
    const { rows, columns, count } = await stage({ table: 'everything' });
    expect(count).toBe(3);
    expect(Object.fromEntries(columns.map((c) => [c.name, c.type]))).toEqual({
      id: 'INTEGER',
      amount: 'DECIMAL(38,10)',
      huge: 'VARCHAR',
      big: 'BIGINT',
      ubig: 'UBIGINT',
      tiny: 'TINYINT',
      flag: 'TINYINT',
      ratio: 'DOUBLE',
      small_float: 'FLOAT',
      born: 'DATE',
      local_time: 'TIMESTAMP',
      instant: 'TIMESTAMP WITH TIME ZONE',
      clock: 'TIME',
      yr: 'SMALLINT',
      doc: 'JSON',
      name: 'VARCHAR',
      body: 'VARCHAR',
      raw: 'BLOB',
      blob_col: 'BLOB',
      bits: 'UBIGINT',
      kind: 'VARCHAR',
      uid: 'UUID',
    });
    expect(columns.find((c) => c.name === 'local_time')?.sourceType).toBe('datetime');
    expect(columns.find((c) => c.name === 'instant')?.sourceType).toBe('timestamp');
    expect(rows[0]).toEqual({
      id: 1,
      amount: '12345678901234567890.1234567891',
      huge: '12345678901234567890123456789012345.123456789012345678901234567891',
      big: '9223372036854775807',
      ubig: '18446744073709551615',
      tiny: -128,
      flag: 1,
      ratio: 0.1,
      small_float: 1.5,
      born: '2024-02-29',
      local_time: '2024-03-10 02:30:00.123456',
      instant: '2024-06-01 12:00:00.654321+00',
      clock: '23:59:59.999999',
      yr: 2024,
      doc: '{"n": 12345678901234567890, "nested": {"a": [1, 2.5, "x"]}}',
      name: '顧客 😀 Ünïcødé ✓',
      body: 'line1\nline2 "quoted", comma',
      raw: '\\x00\\xFF\\x10',
      blob_col: '\\xDE\\xAD\\xBE\\xEF',
      bits: '18446744073709551615',
      kind: 'b',
      uid: '123e4567-e89b-12d3-a456-426614174000',
    });
    expect(rows[1]).toMatchObject({
      amount: '-0.0000000001',
      big: '-9223372036854775808',
      ubig: '0',
      ratio: 1.7976931348623157e308,
      small_float: -3.25,
      local_time: '1970-01-01 00:00:00',
      instant: '1970-01-01 00:00:01+00',
      doc: '[]',
      name: '',
      body: '',
      raw: '',
      bits: '0',
    });
    expect(Object.entries(rows[2] ?? {}).filter(([k, v]) => k !== 'id' && v !== null)).toEqual([]);
  });

  it('keeps TIMESTAMP instants in UTC whatever the server time zone', async () => {
    await server.query("SET GLOBAL time_zone = '+05:00'");
    try {
      const { rows } = await stage({ query: 'SELECT id, instant FROM everything WHERE id = 1' });
      expect(rows[0]?.instant).toBe('2024-06-01 12:00:00.654321+00');
    } finally {
      await server.query("SET GLOBAL time_zone = 'SYSTEM'");
    }
  });

  it('stages zero dates as NULL', async () => {
    const { rows } = await stage({ table: 'syncline.zero_dates' });
    expect(rows).toEqual([{ id: 1, d: null, dt: null }]);
  });

  it('stages a query with computed columns and keeps duplicate names out', async () => {
    const { rows, columns } = await stage({
      query:
        "SELECT id, CAST(amount * 2 AS DECIMAL(30,10)) AS doubled, amount * 2 AS wide, CONCAT(name, '!') AS shout FROM everything WHERE id = 1;",
    });
    // amount * 2 is DECIMAL(39,10) in MySQL, wider than DuckDB's decimals: it is kept as exact text.
    expect(columns.map((c) => c.type)).toEqual(['INTEGER', 'DECIMAL(30,10)', 'VARCHAR', 'VARCHAR']);
    expect(rows).toEqual([
      {
        id: 1,
        doubled: '24691357802469135780.2469135782',
        wide: '24691357802469135780.2469135782',
        shout: '顧客 😀 Ünïcødé ✓!',
      },
    ]);
    const error = await failure(stage({ query: 'SELECT id, id FROM everything' }));
    expect(error.reason).toBe('SourceQueryFailed');
    expect(error.message).toContain('"id" more than once');
  });
});

describe('mysql source: errors and check', () => {
  it('reports SQL errors with the server code and message', async () => {
    const syntax = await failure(stage({ query: 'SELEC 1' }));
    expect(syntax.reason).toBe('SourceQueryFailed');
    expect(syntax.message).toMatch(/error 1064 ER_PARSE_ERROR, SQLSTATE 42000/);
    const missing = await failure(stage({ table: 'nope' }));
    expect(missing.reason).toBe('SourceQueryFailed');
    expect(missing.message).toContain("Table 'syncline.nope' doesn't exist");
    expect(missing.message).toContain('1146');
  });

  it('check reports ready for a good connection', async () => {
    await expect(mysqlSource.check(spec(), ctx)).resolves.toBeUndefined();
  });

  it('check reports bad credentials, unknown databases, unreachable servers and missing Secrets', async () => {
    const auth = await failure(
      mysqlSource.check(spec({ password: { secretKeyRef: { name: 'mysql', key: 'wrong' } } }), ctx),
    );
    expect(auth.reason).toBe('AuthenticationFailed');
    expect(auth.message).toContain('user "syncline"');
    expect(auth.message).not.toContain('nope');

    const db = await failure(mysqlSource.check(spec({ database: 'missing_db' }), ctx));
    expect(db.reason).toBe('DatabaseNotFound');

    const closedPort = server.port === 1 ? 2 : 1;
    const down = await failure(mysqlSource.check(spec({ port: closedPort }), ctx));
    expect(down.reason).toBe('SourceUnreachable');
    expect(down.retryable).toBe(true);

    const dns = await failure(mysqlSource.check(spec({ host: 'no-such-host.invalid' }), ctx));
    expect(dns.reason).toBe('SourceUnreachable');

    const secret = await failure(
      mysqlSource.check(spec({ password: { secretKeyRef: { name: 'absent', key: 'pw' } } }), ctx),
    );
    expect(secret.reason).toBe('SecretNotFound');
  });
});

describe('mysql source: TLS', () => {
  const tlsCtx = () => testContext({ mysql: { password: 'syncline-test', ca: tlsServer.caCert ?? '' } });
  const cipherQuery =
    "SELECT 1 AS id, VARIABLE_VALUE AS cipher FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'";

  it('encrypts with mode require and verifies the server with verify-full and a CA', async () => {
    const c = tlsCtx();
    const secretsCtx = { ...ctx, secrets: c.secrets };
    for (const tls of [
      { mode: 'require' as const },
      { mode: 'verify-full' as const, caCert: { secretKeyRef: { name: 'mysql', key: 'ca' } } },
      { mode: 'verify-ca' as const, caCert: { secretKeyRef: { name: 'mysql', key: 'ca' } } },
    ]) {
      const source = spec({ tls }, () => tlsServer);
      await mysqlSource.check(source, secretsCtx);
      const { duck, close } = await openDuck();
      try {
        await mysqlSource.stage({
          ...secretsCtx,
          source,
          model: { sourceRef: { name: 'db' }, primaryKey: 'id', query: cipherQuery },
          duck,
          table: 't',
          labels: { namespace: 'n', sync: 's', runId: 'r' },
        });
        const [row] = await rowsOf(duck, 'SELECT cipher FROM t');
        expect(String(row?.cipher)).not.toBe('');
      } finally {
        close();
      }
    }
    c.cleanup();
  });

  it('fails verification without the CA, and reports a server without TLS', async () => {
    const unverified = await failure(
      mysqlSource.check(
        spec({ tls: { mode: 'verify-full' } }, () => tlsServer),
        ctx,
      ),
    );
    expect(unverified.reason).toBe('TlsVerificationFailed');
    const plain = await failure(mysqlSource.check(spec({ tls: { mode: 'require' } }), ctx));
    expect(plain.reason).toBe('SourceUnreachable');
    expect(plain.message).toContain('does not accept TLS');
  });
});

describe('mysql source: the model can only read', () => {
  const victimRows = async () => {
    const rows = (await server.query('SELECT count(*) AS n FROM syncline.victim')) as { n: number }[];
    return Number(rows[0]?.n);
  };
  const tables = async () =>
    ((await server.query('SHOW TABLES FROM syncline')) as Record<string, string>[])
      .map((r) => Object.values(r)[0])
      .sort();
  const outfile = `/tmp/syncline-model-outfile-${process.pid}`;

  beforeAll(async () => {
    rmSync(outfile, { force: true });
    await server.query(`
      CREATE TABLE syncline.victim (id INT PRIMARY KEY);
      INSERT INTO syncline.victim VALUES (1), (2), (3);
      CREATE FUNCTION syncline.wipe_victim() RETURNS INT MODIFIES SQL DATA
      BEGIN
        DELETE FROM syncline.victim;
        RETURN 1;
      END`);
  });

  it('refuses a second statement, also after closing a wrapping subquery, and the table survives', async () => {
    for (const query of [
      'SELECT 1 AS id) AS m; DELETE FROM victim; SELECT * FROM (SELECT 1 AS id',
      'SELECT 1 AS id; DELETE FROM victim',
    ]) {
      const error = await failure(stage({ query }));
      expect(await victimRows()).toBe(3);
      expect(error.reason).toBe('ModelNotReadOnly');
      expect(error.message).toContain('Model team/customers');
      expect(error.message).toContain('a single read-only SELECT');
    }
  });

  it('refuses a statement that is not a query, DDL and SELECT ... INTO OUTFILE included, and nothing is written', async () => {
    const before = await tables();
    for (const query of [
      'DELETE FROM victim',
      'TRUNCATE victim',
      'DROP TABLE victim',
      'CREATE TABLE made_by_model (id INT)',
      `SELECT 1 AS id INTO OUTFILE '${outfile}'`,
    ]) {
      const error = await failure(stage({ query }));
      expect(await victimRows()).toBe(3);
      expect(error.reason).toBe('ModelNotReadOnly');
      expect(error.message).toContain('Model team/customers');
      expect(error.message).toContain('a single read-only SELECT');
    }
    expect(await tables()).toEqual(before);
    expect(existsSync(outfile)).toBe(false);
  });

  it('runs the model in a read-only transaction: a query calling a function that writes fails', async () => {
    const error = await failure(stage({ query: 'SELECT id, wipe_victim() AS w FROM victim' }));
    expect(await victimRows()).toBe(3);
    expect(error.reason).toBe('ModelNotReadOnly');
    expect(error.message).toContain('Model team/customers');
    expect(error.message).toContain('READ ONLY transaction');
  });
});
