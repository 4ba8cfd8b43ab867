import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import { startSnowflakeEmulator, type SnowflakeEmulator } from '../../test/emulators/snowflake/server.ts';
import { freePort } from '../../test/stack/process.ts';
import { openDuck, rowsOf, testContext } from '../shared/test-context.ts';
import type { StageRequest } from '../../core/connectors.ts';
import { readSql, snowflakeSource } from './source.ts';
import { synclineFailure as failure } from '../shared/test-context.ts';

let sf: SnowflakeEmulator;
const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const privatePem = keys.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const encryptedPem = keys.privateKey
  .export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'open sesame' })
  .toString();
const ctx = testContext({
  sf: {
    password: 'correct horse',
    wrong: 'battery staple',
    key: privatePem,
    encrypted: encryptedPem,
    passphrase: 'open sesame',
    otherKey: otherKeys.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  },
});
const secret = (key: string) => ({ secretKeyRef: { name: 'sf', key } });

function spec(overrides: Partial<NonNullable<SourceSpec['snowflake']>> = {}): SourceSpec {
  return {
    type: 'snowflake',
    snowflake: {
      account: 'testorg-testaccount',
      user: 'alice',
      password: secret('password'),
      warehouse: 'TRANSFORMING',
      database: 'ANALYTICS',
      schema: 'PUBLIC',
      role: 'REPORTER',
      host: sf.url,
      ...overrides,
    },
  };
}

async function stage(model: Partial<ModelSpec>, source: SourceSpec = spec(), signal?: AbortSignal) {
  const { duck, close } = await openDuck();
  const req: StageRequest = {
    ...ctx,
    signal: signal ?? ctx.signal,
    source,
    model: { sourceRef: { name: 'wh' }, primaryKey: 'ID', ...model },
    duck,
    table: 'staged',
    labels: { namespace: 'growth', sync: 'accounts-to-crm', runId: 'run-42', model: 'growth/accounts' },
  };
  try {
    const result = await snowflakeSource.stage(req);
    return { ...result, data: await rowsOf(duck, 'SELECT * FROM staged ORDER BY 1') };
  } finally {
    close();
  }
}

beforeAll(async () => {
  sf = await startSnowflakeEmulator({ syncWaitMs: 300, inlineRows: 100, rowsPerChunk: 700 });
  sf.addUser({ name: 'alice', password: 'correct horse' });
  // An account where an administrator allowed any number of statements (ALTER USER ... SET MULTI_STATEMENT_COUNT = 0).
  sf.addUser({ name: 'batch', password: 'correct horse', parameters: { MULTI_STATEMENT_COUNT: 0 } });
  sf.addUser({
    name: 'bot',
    publicKeyPem: keys.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  });
  sf.setWarehouse('TRANSFORMING', 'STARTED');
  sf.setWarehouse('NIGHTLY', 'SUSPENDED');
  sf.setWarehouse('CAPPED', 'QUOTA_EXCEEDED');
  await sf.createDatabase('ANALYTICS');
  await sf.exec(
    `CREATE TABLE EVERYTHING (
       ID NUMBER(38,0), AMOUNT NUMBER(38,10), BIG NUMBER(38,0), SMALL NUMBER(10,0), RATIO FLOAT, ACTIVE BOOLEAN,
       BORN DATE, WAKES TIME, CREATED TIMESTAMP_NTZ, SEEN TIMESTAMP_LTZ, BOOKED TIMESTAMP_TZ,
       PROFILE VARIANT, ATTRS OBJECT, TAGS ARRAY, PHOTO BINARY, NAME VARCHAR);
     INSERT INTO EVERYTHING VALUES
       (1, 12345678901234567890.1234567891, 98765432109876543210987654321098765432, 2147483648, 0.1, TRUE,
        '2024-02-29', '23:59:59.123456', '2024-03-10 02:30:00.123456789', '2024-06-01 12:00:00.654321+00',
        '2024-06-01 17:30:00.5+05:30', '{"n": 12345678901234567890, "f": 1.5, "s": "x"}', '{"a": {"b": [1, 2]}}',
        '[1, "two", null, 3.25]', '\\x00\\xFF\\x10'::BLOB, '顧客 😀 Ünïcødé ✓ "quoted", comma'),
       (2, -0.0000000001, -98765432109876543210987654321098765432, -1, -1.7976931348623157e308, FALSE,
        '1970-01-01', '00:00:00', '1969-12-31 23:59:59.5', '1970-01-01 00:00:00+00', '1970-01-01 00:00:00+00',
        '[]', '{}', '[]', ''::BLOB, ''),
       (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);`,
    'ANALYTICS',
  );
}, 120_000);

afterAll(async () => {
  ctx.cleanup();
  await sf?.stop();
});

describe('snowflake source: types', () => {
  it('round-trips every type exactly into DuckDB', async () => {
    const { data, columns, rows } = await stage({ table: 'everything' });
    expect(rows).toBe(3);
    expect(Object.fromEntries(columns.map((c) => [c.name, c.type]))).toEqual({
      ID: 'DECIMAL(38,0)',
      AMOUNT: 'DECIMAL(38,10)',
      BIG: 'DECIMAL(38,0)',
      SMALL: 'BIGINT',
      RATIO: 'DOUBLE',
      ACTIVE: 'BOOLEAN',
      BORN: 'DATE',
      WAKES: 'TIME_NS',
      CREATED: 'TIMESTAMP_NS',
      SEEN: 'TIMESTAMP WITH TIME ZONE',
      BOOKED: 'TIMESTAMP WITH TIME ZONE',
      PROFILE: 'JSON',
      ATTRS: 'JSON',
      TAGS: 'JSON',
      PHOTO: 'BLOB',
      NAME: 'VARCHAR',
    });
    expect(columns.find((c) => c.name === 'BOOKED')?.sourceType).toBe('TIMESTAMP_TZ(9)');
    expect(data[0]).toEqual({
      ID: '1',
      AMOUNT: '12345678901234567890.1234567891',
      BIG: '98765432109876543210987654321098765432',
      SMALL: '2147483648',
      RATIO: 0.1,
      ACTIVE: true,
      BORN: '2024-02-29',
      WAKES: '23:59:59.123456',
      CREATED: '2024-03-10 02:30:00.123456789',
      SEEN: '2024-06-01 12:00:00.654321+00',
      BOOKED: '2024-06-01 12:00:00.5+00',
      PROFILE: '{"n": 12345678901234567890, "f": 1.5, "s": "x"}',
      ATTRS: '{"a": {"b": [1, 2]}}',
      TAGS: '[1, "two", null, 3.25]',
      PHOTO: '\\x00\\xFF\\x10',
      NAME: '顧客 😀 Ünïcødé ✓ "quoted", comma',
    });
    expect(data[1]).toMatchObject({
      AMOUNT: '-0.0000000001',
      BIG: '-98765432109876543210987654321098765432',
      RATIO: -1.7976931348623157e308,
      ACTIVE: false,
      CREATED: '1969-12-31 23:59:59.5',
      SEEN: '1970-01-01 00:00:00+00',
      PHOTO: '',
      NAME: '',
    });
    expect(Object.entries(data[2] ?? {}).filter(([k, v]) => k !== 'ID' && v !== null)).toEqual([]);
  });

  it('streams a result larger than one response through the chunk downloads', async () => {
    const before = sf.stats.chunkRequests;
    const { data, rows } = await stage({
      query:
        "SELECT i AS ID, CAST(i AS DECIMAL(20,2)) * 0.25 AS QUARTER, 'row ' || i AS LABEL FROM range(5000) t(i) ORDER BY i",
    });
    expect(rows).toBe(5000);
    // 100 rows inline, the other 4900 in chunks of 700.
    expect(sf.stats.chunkRequests - before).toBe(7);
    expect(data[4999]).toEqual({ ID: '4999', QUARTER: '1249.7500', LABEL: 'row 4999' });
    expect(new Set(data.map((r) => r.ID)).size).toBe(5000);
  });
});

describe('snowflake source: protocol', () => {
  it('tags the query with the Sync and run, and closes the session', async () => {
    await stage({ query: 'SELECT ID FROM EVERYTHING' });
    const record = sf.stats.queries.at(-1);
    expect(record?.sqlText).toBe(readSql('SELECT ID FROM EVERYTHING'));
    expect(JSON.parse(record?.queryTag ?? '{}')).toEqual({
      app: 'syncline',
      namespace: 'growth',
      sync: 'accounts-to-crm',
      run: 'run-42',
    });
    expect(record?.parameters).toMatchObject({
      TIMEZONE: 'UTC',
      TIMESTAMP_NTZ_OUTPUT_FORMAT: 'YYYY-MM-DD HH24:MI:SS.FF9',
    });
    expect(sf.stats.logins.at(-1)?.sessionParameters.QUERY_TAG).toBe(record?.queryTag);
    expect(sf.stats.openSessions()).toBe(0);
  });

  it('polls for the result of a query that outlasts the first response', async () => {
    const { data } = await stage({ query: 'SELECT 7 AS ID, SYSTEM$WAIT(1) AS WAITED' });
    expect(data).toEqual([{ ID: '7', WAITED: 'waited 1 seconds' }]);
    expect(sf.stats.queries.at(-1)?.polls).toBeGreaterThan(0);
  });

  it('applies the statement timeout', async () => {
    const error = await failure(
      stage({ query: 'SELECT SYSTEM$WAIT(5) AS ID' }, spec({ statementTimeoutSeconds: 1 })),
    );
    expect(error.reason).toBe('SourceQueryFailed');
    expect(error.message).toContain('000630');
    expect(error.message).toContain('statementTimeoutSeconds');
    expect(sf.stats.queries.at(-1)?.parameters.STATEMENT_TIMEOUT_IN_SECONDS).toBe(1);
  });

  it('aborts the running query when the run is cancelled', async () => {
    const controller = new AbortController();
    const pending = stage({ query: 'SELECT SYSTEM$WAIT(20) AS ID' }, spec(), controller.signal);
    while (sf.stats.queries.at(-1)?.sqlText !== readSql('SELECT SYSTEM$WAIT(20) AS ID'))
      await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    await expect(pending).rejects.toBeDefined();
    const record = sf.stats.queries.at(-1)!;
    await expect.poll(() => record.status).toBe('ABORTED');
  });

  it('logs in with a key pair, also with an encrypted key', async () => {
    const keyPair = spec({ user: 'bot', password: undefined, privateKey: secret('key') });
    await snowflakeSource.check(keyPair, ctx);
    const encrypted = spec({
      user: 'bot',
      password: undefined,
      privateKey: secret('encrypted'),
      privateKeyPassphrase: secret('passphrase'),
    });
    const { rows } = await stage({ table: 'everything' }, encrypted);
    expect(rows).toBe(3);
    expect(
      sf.stats.logins
        .filter((l) => l.user === 'bot')
        .every((l) => l.ok && l.authenticator === 'SNOWFLAKE_JWT'),
    ).toBe(true);
  });
});

describe('snowflake source: errors and check', () => {
  it('check reports ready for good settings', async () => {
    await expect(snowflakeSource.check(spec(), ctx)).resolves.toBeUndefined();
  });

  it('reports bad credentials and keys', async () => {
    const password = await failure(snowflakeSource.check(spec({ password: secret('wrong') }), ctx));
    expect(password.reason).toBe('AuthenticationFailed');
    expect(password.message).toContain('390100');
    expect(password.message).not.toContain('battery');
    const key = await failure(
      snowflakeSource.check(spec({ user: 'bot', password: undefined, privateKey: secret('otherKey') }), ctx),
    );
    expect(key.reason).toBe('AuthenticationFailed');
    expect(key.message).toContain('RSA_PUBLIC_KEY');
  });

  it('reports a wrong account, an unreachable host and a missing Secret', async () => {
    const account = await failure(snowflakeSource.check(spec({ account: 'someone-else' }), ctx));
    expect(account.reason).toBe('AccountNotFound');
    const port = await freePort();
    const down = await failure(snowflakeSource.check(spec({ host: `http://127.0.0.1:${port}` }), ctx));
    expect(down.reason).toBe('SourceUnreachable');
    const missing = await failure(snowflakeSource.check(spec({ password: secret('nope') }), ctx));
    expect(missing.reason).toBe('SecretNotFound');
  });

  it('reports suspended warehouses and exhausted resource monitors', async () => {
    const suspended = await failure(snowflakeSource.check(spec({ warehouse: 'NIGHTLY' }), ctx));
    expect(suspended.reason).toBe('WarehouseSuspended');
    expect(suspended.message).toContain('ALTER WAREHOUSE NIGHTLY RESUME');
    const query = await failure(stage({ table: 'everything' }, spec({ warehouse: 'NIGHTLY' })));
    expect(query.reason).toBe('WarehouseSuspended');
    expect(query.message).toContain('000606');
    const unknown = await failure(snowflakeSource.check(spec({ warehouse: 'NO_SUCH_WH' }), ctx));
    expect(unknown.reason).toBe('WarehouseNotFound');
    const capped = await failure(stage({ table: 'everything' }, spec({ warehouse: 'CAPPED' })));
    expect(capped.reason).toBe('WarehouseSuspended');
    expect(capped.message).toContain('resource monitor');
  });

  it('reports SQL errors with the Snowflake code and message', async () => {
    const syntax = await failure(stage({ query: 'SELEC 1' }));
    expect(syntax.reason).toBe('SourceQueryFailed');
    expect(syntax.message).toMatch(/syntax error.*code 001003, SQLSTATE 42000/);
    const missing = await failure(stage({ table: 'no_such_table' }));
    expect(missing.reason).toBe('SourceQueryFailed');
    expect(missing.message).toContain("Object 'NO_SUCH_TABLE' does not exist or not authorized");
    expect(missing.message).toContain('002003');
    expect(sf.stats.openSessions()).toBe(0);
  });
});

describe('snowflake source: the model can only read', () => {
  const victimRows = async () => {
    const { data } = await stage({ query: 'SELECT count(*) AS ID FROM VICTIM' });
    return Number(data[0]?.ID);
  };

  beforeAll(async () => {
    await sf.exec('CREATE TABLE VICTIM (ID NUMBER);\nINSERT INTO VICTIM VALUES (1), (2), (3);', 'ANALYTICS');
  });

  it('sends MULTI_STATEMENT_COUNT=1: a query that closes the subquery to add statements fails, even where any number is allowed', async () => {
    const query = 'SELECT 1 AS ID) AS m; DELETE FROM VICTIM; SELECT * FROM (SELECT 1 AS ID';
    const error = await failure(stage({ query }, spec({ user: 'batch' })));
    expect(await victimRows()).toBe(3);
    expect(error.reason).toBe('ModelNotReadOnly');
    expect(error.message).toContain('Model growth/accounts must be a single read-only SELECT');
    expect(error.message).toContain('Actual statement count 3 did not match the desired statement count 1');
    const sent = sf.stats.queries.find((q) => q.sqlText === readSql(query));
    expect(sent?.parameters.MULTI_STATEMENT_COUNT).toBe(1);
  });

  it('reads the model as a subquery: a statement that is not a query, or two, fails and writes nothing', async () => {
    for (const query of [
      'SELECT 1 AS ID; DELETE FROM VICTIM',
      'DELETE FROM VICTIM',
      'DROP TABLE VICTIM',
      'CREATE OR REPLACE TABLE VICTIM (ID NUMBER)',
    ]) {
      const error = await failure(stage({ query }, spec({ user: 'batch' })));
      expect(await victimRows()).toBe(3);
      expect(error.reason).toBe('SourceQueryFailed');
      expect(error.message).toContain('syntax error');
      expect(error.message).toContain('Model growth/accounts must be a single read-only SELECT');
    }
  });
});
