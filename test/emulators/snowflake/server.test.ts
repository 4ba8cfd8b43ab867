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
  sf.setWarehouse('WH', 'STARTED');
  await sf.createDatabase('DB');
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

it('closes the session on destroy', async () => {
  expect(sf.stats.openSessions()).toBe(1);
  await new Promise<void>((resolve, reject) =>
    connection.destroy((error) => (error ? reject(error) : resolve())),
  );
  expect(sf.stats.openSessions()).toBe(0);
  expect(sf.stats.sessionsClosed).toBe(1);
});
