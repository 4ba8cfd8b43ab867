// The emulator's protocol, driven only through the real snowflake-sdk (plus one plain HTTP request that
// checks chunk downloads need the query-result master key, as S3's SSE-C does).
import snowflake from 'snowflake-sdk';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startSnowflakeEmulator, type SnowflakeEmulator } from './server.ts';

snowflake.configure({ logLevel: 'OFF' } as snowflake.ConfigureOptions);

let sf: SnowflakeEmulator;
let connection: snowflake.Connection;

function run(
  sqlText: string,
  parameters?: Record<string, unknown>,
): Promise<{ statement: snowflake.RowStatement; rows: unknown[][] }> {
  return new Promise((resolve, reject) => {
    connection.execute({
      sqlText,
      rowMode: 'array',
      ...(parameters ? { parameters } : {}),
      complete: (error, statement, rows) =>
        error
          ? reject(error)
          : resolve({ statement: statement as snowflake.RowStatement, rows: rows as unknown[][] }),
    });
  });
}

beforeAll(async () => {
  sf = await startSnowflakeEmulator({ inlineRows: 10, rowsPerChunk: 50, syncWaitMs: 200 });
  sf.addUser({ name: 'ops', password: 'pw' });
  sf.addUser({
    name: 'limited',
    password: 'pw',
    grants: { database: [], schemas: { READABLE: ['USAGE', 'SELECT'] } },
  });
  sf.setWarehouse('WH', 'STARTED');
  await sf.createDatabase('DB');
  await sf.exec('CREATE SCHEMA READABLE;\nCREATE TABLE READABLE.T (ID NUMBER)', 'DB');
  connection = snowflake.createConnection({
    account: 'testorg-testaccount',
    username: 'ops',
    password: 'pw',
    warehouse: 'WH',
    database: 'DB',
    accessUrl: sf.url,
    representNullAsStringNull: false,
  });
  await new Promise<void>((resolve, reject) =>
    connection.connect((error) => (error ? reject(error) : resolve())),
  );
});

afterAll(async () => {
  await sf?.stop();
});

it('answers the heartbeat and keeps the session', async () => {
  // heartbeatAsync is part of the SDK but missing from its type declarations.
  await (connection as unknown as { heartbeatAsync(): Promise<unknown> }).heartbeatAsync();
  expect(sf.stats.heartbeats).toBe(1);
  expect(await connection.isValidAsync()).toBe(true);
});

it('applies ALTER SESSION and USE, and returns the session state', async () => {
  await run("ALTER SESSION SET QUERY_TAG = 'nightly'");
  const { statement, rows } = await run('SELECT CURRENT_WAREHOUSE(), CURRENT_DATABASE()');
  expect(rows).toEqual([['WH', 'DB']]);
  expect(sf.stats.queries.at(-1)?.queryTag).toBe('nightly');
  const state = statement.getSessionState() as {
    getCurrentWarehouse(): string;
    getCurrentDatabase(): string;
  };
  expect([state.getCurrentWarehouse(), state.getCurrentDatabase()]).toEqual(['WH', 'DB']);
});

it('serves chunks only with the query-result master key', async () => {
  const { rows } = await run('SELECT i FROM range(120) t(i) ORDER BY i');
  expect(rows.map((r) => Number(r[0]))).toEqual([...Array(120).keys()]);
  expect(sf.stats.chunkRequests).toBe(3);
  // The same URL without the SSE-C key header is refused.
  const response = await fetch(`${sf.url}/chunks/${sf.stats.queries.at(-1)?.queryId}/0?start=10&count=50`);
  expect(response.status).toBe(403);
  expect(sf.stats.rejectedChunkRequests).toBe(1);
});

it('refuses a request whose statement count is not MULTI_STATEMENT_COUNT (default 1), as Snowflake does', async () => {
  await run('CREATE TABLE KEPT (ID NUMBER)');
  const refused = await run('SELECT 1; INSERT INTO KEPT VALUES (1)').then(
    () => undefined,
    (error: { code?: string; sqlState?: string; message?: string }) => error,
  );
  expect(refused).toMatchObject({
    code: '000008',
    sqlState: '0A000',
    message: 'Actual statement count 2 did not match the desired statement count 1.',
  });
  const one = await run('SELECT 1; INSERT INTO KEPT VALUES (1)', { MULTI_STATEMENT_COUNT: 1 }).catch(
    (error: { code?: string }) => error,
  );
  expect(one).toMatchObject({ code: '000008' });
  expect((await run('SELECT count(*) FROM KEPT')).rows).toEqual([[0]]);
  // The count asked for, or 0 for any: every statement runs.
  const both = await run('INSERT INTO KEPT VALUES (1); INSERT INTO KEPT VALUES (2)', {
    MULTI_STATEMENT_COUNT: 2,
  });
  expect(both.rows).toEqual([['Multiple statements executed successfully.']]);
  await run('INSERT INTO KEPT VALUES (3); SELECT 1', { MULTI_STATEMENT_COUNT: 0 });
  expect((await run('SELECT count(*) FROM KEPT')).rows).toEqual([[3]]);
});

it('reports the status of a query through the monitoring endpoint', async () => {
  const { statement } = await run('SELECT 1');
  expect(await connection.getQueryStatus(statement.getQueryId())).toBe('SUCCESS');
});

/** Another session, of `user`. */
async function session(user: string): Promise<snowflake.Connection> {
  const other = snowflake.createConnection({
    account: 'testorg-testaccount',
    username: user,
    password: 'pw',
    warehouse: 'WH',
    database: 'DB',
    accessUrl: sf.url,
    representNullAsStringNull: false,
  });
  await new Promise<void>((resolve, reject) => other.connect((error) => (error ? reject(error) : resolve())));
  return other;
}

function on(
  other: snowflake.Connection,
  sqlText: string,
  binds?: snowflake.Binds,
): Promise<{ statement: snowflake.RowStatement; rows: unknown[][] }> {
  return new Promise((resolve, reject) => {
    other.execute({
      sqlText,
      rowMode: 'array',
      ...(binds ? { binds } : {}),
      complete: (error, statement, rows) =>
        error
          ? reject(error)
          : resolve({ statement: statement as snowflake.RowStatement, rows: rows as unknown[][] }),
    });
  });
}

it('hashes as HASH and HASH_AGG do: a signed 64-bit NUMBER(19,0), order-independent, 0 for no rows', async () => {
  const { statement, rows } = await run(
    "SELECT HASH(1, 'a'), CAST(HASH(1, 'a') AS VARCHAR), HASH(1, 'b') = HASH(1, 'a'), HASH(NULL) IS NULL",
  );
  expect(statement.getColumns()?.[0]?.getType()).toBe('fixed');
  expect(statement.getColumns()?.[0]?.getPrecision()).toBe(19);
  const text = String(rows[0]?.[1]);
  expect(BigInt(text) >= -(2n ** 63n) && BigInt(text) < 2n ** 63n).toBe(true);
  expect(rows[0]?.slice(2)).toEqual([false, false]);
  const up = await run('SELECT CAST(HASH_AGG(i, CAST(i AS VARCHAR)) AS VARCHAR) FROM range(10) t(i)');
  const down = await run(
    'SELECT CAST(HASH_AGG(i, CAST(i AS VARCHAR)) AS VARCHAR) FROM (SELECT i FROM range(10) t(i) ORDER BY i DESC)',
  );
  expect(up.rows).toEqual(down.rows);
  expect((await run('SELECT HASH_AGG(i) FROM range(10) t(i) WHERE i < 0')).rows).toEqual([[0]]);
});

it('inserts array binds and answers DML with the counts the SDK sums', async () => {
  await run('CREATE TABLE BOUND (ID NUMBER(38,0), NAME VARCHAR, OK BOOLEAN)');
  const inserted = await on(connection, 'INSERT INTO BOUND (ID, NAME, OK) VALUES (?, ?, ?)', [
    ['1', 'one', 'true'],
    ['2', null, 'false'],
    ['3', 'three', 'true'],
  ]);
  expect(inserted.statement.getNumUpdatedRows()).toBe(3);
  const updated = await on(connection, 'UPDATE BOUND SET NAME = ? WHERE OK = ?', ['yes', 'true']);
  expect(updated.statement.getNumUpdatedRows()).toBe(2);
  expect((await run('SELECT ID, NAME, OK FROM BOUND ORDER BY ID')).rows).toEqual([
    [1, 'yes', true],
    [2, null, false],
    [3, 'yes', true],
  ]);
});

it('makes a second writer wait for the first transaction, which it then sees', async () => {
  await run('CREATE TABLE GEN (G NUMBER(38,0))');
  await run('INSERT INTO GEN VALUES (1)');
  const other = await session('ops');
  await run('BEGIN');
  expect((await run('UPDATE GEN SET G = G + 1 WHERE G = 1')).statement.getNumUpdatedRows()).toBe(1);
  let waited = true;
  const second = on(other, 'UPDATE GEN SET G = G + 1 WHERE G = 1').then((r) => {
    waited = false;
    return r.statement.getNumUpdatedRows();
  });
  // The first transaction still holds the table: the second UPDATE has not run.
  expect((await on(other, 'SELECT G FROM GEN')).rows).toEqual([[1]]);
  expect(waited).toBe(true);
  await run('COMMIT');
  expect(await second).toBe(0);
  expect((await run('SELECT G FROM GEN')).rows).toEqual([[2]]);
  await new Promise<void>((resolve, reject) => other.destroy((error) => (error ? reject(error) : resolve())));
});

it("refuses what a limited role may not do, with Snowflake's codes", async () => {
  await run('CREATE SCHEMA IF NOT EXISTS LOCKED');
  await run('CREATE TABLE LOCKED.T (ID NUMBER)');
  const limited = await session('limited');
  const codeOf = (p: Promise<unknown>) =>
    p.then(
      () => 'none',
      (error: { code?: string }) => error.code,
    );
  expect(await codeOf(on(limited, 'SELECT * FROM LOCKED.T'))).toBe('002003');
  expect(await codeOf(on(limited, 'SELECT * FROM READABLE.T'))).toBe('none');
  expect(await codeOf(on(limited, 'INSERT INTO READABLE.T VALUES (1)'))).toBe('003001');
  expect(await codeOf(on(limited, 'CREATE TABLE READABLE.U (ID NUMBER)'))).toBe('003001');
  expect(await codeOf(on(limited, 'CREATE SCHEMA MINE'))).toBe('003001');
  await new Promise<void>((resolve, reject) =>
    limited.destroy((error) => (error ? reject(error) : resolve())),
  );
  expect(sf.stats.bytesSent).toBeGreaterThan(0);
});

it('closes the session on destroy', async () => {
  expect(sf.stats.openSessions()).toBe(1);
  const closed = sf.stats.sessionsClosed;
  await new Promise<void>((resolve, reject) =>
    connection.destroy((error) => (error ? reject(error) : resolve())),
  );
  expect(sf.stats.openSessions()).toBe(0);
  expect(sf.stats.sessionsClosed).toBe(closed + 1);
});
