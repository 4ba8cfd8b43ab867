// Warehouse sources through the whole engine: rows of every kind of value go from MySQL (a real MariaDB),
// Snowflake (the REST emulator, driven by the real snowflake-sdk) and BigQuery (goccy/bigquery-emulator) into
// a real PostgreSQL table and a real HTTP sink, and arrive exactly: decimals and integers beyond 2^53 without
// rounding, timestamps to the microsecond, JSON, Unicode text, NULL.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationSpec, SourceSpec } from '../../crds/index.ts';
import { silentLogger } from '../../core/logger.ts';
import { runPlan, type RunPlan } from '../../core/plan.ts';
import { executeRun } from '../../runner/run.ts';
import { secretResolver } from '../../core/secrets.ts';
import { startSnowflakeEmulator, type SnowflakeEmulator } from '../emulators/snowflake/server.ts';
import { startBigQueryEmulator, type BigQueryEmulator } from '../stack/bigquery.ts';
import { BigQuery } from '@google-cloud/bigquery';
import { sql, tempState } from '../engine/helpers.ts';
import { startMysql, type MysqlServer } from '../stack/mysql.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';

const ref = (name: string) => ({ secretKeyRef: { name, key: 'password' } });

interface Expected {
  id: number;
  amount: string | null;
  big: string | null;
  local: string | null;
  epoch: string | null;
  doc: unknown;
  name: string | null;
}

const EXPECTED: Expected[] = [
  {
    id: 1,
    amount: '12345678901234567890.1234567891',
    big: '9007199254740993',
    local: '2024-03-10 02:30:00.123456',
    epoch: '1717243200.654321',
    doc: { n: '12345678901234567890', s: 'x', nested: { a: [1, 2] } },
    name: '顧客 😀 Ünïcødé ✓ "quoted", comma\nnew line',
  },
  {
    id: 2,
    amount: '-0.0000000001',
    big: '-9007199254740993',
    local: '1970-01-01 00:00:00.000000',
    epoch: '946684800.000000',
    doc: [],
    name: '',
  },
  { id: 3, amount: null, big: null, local: null, epoch: null, doc: null, name: null },
];

let pgServer: PostgresServer;
let destUrl: string;
let sink: Server;
let sinkUrl: string;
const bodies: string[] = [];

function plan(
  name: string,
  source: SourceSpec,
  query: string,
  destination: DestinationSpec,
  target?: string,
): RunPlan {
  return runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId: `run-${name}-${Date.now()}`,
    namespace: 'warehouses',
    sync: {
      name,
      spec: {
        modelRef: { name: 'm' },
        destinationRef: { name: 'd' },
        mode: 'all',
        ...(target ? { target: { table: target } } : {}),
      },
    },
    model: { name: 'm', spec: { sourceRef: { name: 's' }, query, primaryKey: 'id' } },
    source: { name: 's', spec: source },
    destination: { name: 'd', spec: destination },
    diffStore: { url: tempState().url },
  });
}

async function roundTrip(
  name: string,
  source: SourceSpec,
  query: string,
  secrets: Record<string, string>,
  expected: Expected[] = EXPECTED,
) {
  const resolver = secretResolver(
    {},
    {
      pg: { password: pgServer.password },
      ...Object.fromEntries(Object.entries(secrets).map(([k, v]) => [k, { password: v }])),
    },
  );
  const deps = { secrets: resolver, log: silentLogger(), signal: new AbortController().signal };
  const table = `rt_${name}`;
  const toPostgres = await executeRun(
    plan(
      name,
      source,
      query,
      {
        type: 'postgres',
        postgres: {
          host: pgServer.host,
          port: pgServer.port,
          database: 'app',
          user: pgServer.user,
          password: ref('pg'),
          tls: { mode: 'disable' },
          schema: 'public',
        },
      } as DestinationSpec,
      table,
    ),
    deps,
  );
  expect(toPostgres.result, toPostgres.message).toBe('Succeeded');
  expect(toPostgres.counts.delivered).toBe(3);
  const rows = await sql<Record<string, string | null>>(
    destUrl,
    `SELECT id::int AS id, amount::text AS amount, big::text AS big,
            to_char(local_ts, 'YYYY-MM-DD HH24:MI:SS.US') AS local,
            to_char(extract(epoch FROM instant), 'FM9999999999.000000') AS epoch,
            doc::text AS doc, name FROM ${table} ORDER BY id`,
  );
  expect(rows.map((r) => ({ ...r, doc: r['doc'] === null ? null : JSON.parse(r['doc'] as string) }))).toEqual(
    expected,
  );

  bodies.length = 0;
  const toHttp = await executeRun(
    plan(`${name}-http`, source, query, {
      type: 'http',
      http: { url: `${sinkUrl}/rows/{{ row.id }}`, method: 'PUT' },
    } as DestinationSpec),
    deps,
  );
  expect(toHttp.result).toBe('Succeeded');
  expect(bodies).toHaveLength(3);
  const first = bodies.find((b) => b.includes(expected[0]?.amount ?? '-'));
  // Exact in the JSON text itself, not only after a parse that would round.
  expect(first).toBeDefined();
  expect(first).toContain('9007199254740993');
  expect(first).toContain('12345678901234567890');
  expect(JSON.parse(first ?? '{}').name).toBe(expected[0]?.name);
}

beforeAll(async () => {
  pgServer = await startPostgres();
  destUrl = await pgServer.createDatabase('app');
  sink = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString('utf8')));
    req.on('end', () => {
      bodies.push(body);
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;
}, 300_000);

afterAll(async () => {
  await new Promise((resolve) => sink?.close(resolve));
  await pgServer?.stop();
});

describe('warehouse sources through the engine', () => {
  let mysql: MysqlServer;
  let sf: SnowflakeEmulator;
  let bq: BigQueryEmulator;

  afterAll(async () => {
    await mysql?.stop();
    await sf?.stop();
    await bq?.stop();
  });

  it('MySQL: every value arrives exactly in a Postgres table and an HTTP sink', async () => {
    mysql = await startMysql();
    await mysql.query(`
      CREATE TABLE ${mysql.database}.everything (
        id INT PRIMARY KEY, amount DECIMAL(38,10), big BIGINT, local_ts DATETIME(6), instant TIMESTAMP(6) NULL,
        doc JSON, name VARCHAR(200) CHARACTER SET utf8mb4);
      SET time_zone = '+00:00';
      INSERT INTO ${mysql.database}.everything VALUES
        (1, 12345678901234567890.1234567891, 9007199254740993, '2024-03-10 02:30:00.123456', '2024-06-01 12:00:00.654321',
         '{"n": "12345678901234567890", "s": "x", "nested": {"a": [1, 2]}}', '顧客 😀 Ünïcødé ✓ "quoted", comma\\nnew line'),
        (2, -0.0000000001, -9007199254740993, '1970-01-01 00:00:00', '2000-01-01 00:00:00', '[]', ''),
        (3, NULL, NULL, NULL, NULL, NULL, NULL);
`);
    const source: SourceSpec = {
      type: 'mysql',
      mysql: {
        host: mysql.host,
        port: mysql.port,
        database: mysql.database,
        user: mysql.user,
        password: ref('mysql'),
      },
    } as SourceSpec;
    await roundTrip('mysql', source, 'SELECT id, amount, big, local_ts, instant, doc, name FROM everything', {
      mysql: mysql.password,
    });
  });

  it('Snowflake: every value arrives exactly in a Postgres table and an HTTP sink', async () => {
    sf = await startSnowflakeEmulator();
    sf.addUser({ name: 'loader', password: 'sf-secret' });
    sf.setWarehouse('COMPUTE_WH', 'STARTED');
    await sf.createDatabase('ANALYTICS');
    await sf.exec(
      `CREATE TABLE EVERYTHING (ID NUMBER(38,0), AMOUNT NUMBER(38,10), BIG NUMBER(38,0), LOCAL_TS TIMESTAMP_NTZ,
         INSTANT TIMESTAMP_LTZ, DOC VARIANT, NAME VARCHAR);
       INSERT INTO EVERYTHING VALUES
         (1, 12345678901234567890.1234567891, 9007199254740993, '2024-03-10 02:30:00.123456', '2024-06-01 12:00:00.654321+00',
          '{"n": "12345678901234567890", "s": "x", "nested": {"a": [1, 2]}}', '顧客 😀 Ünïcødé ✓ "quoted", comma' || chr(10) || 'new line'),
         (2, -0.0000000001, -9007199254740993, '1970-01-01 00:00:00', '2000-01-01 00:00:00+00', '[]', ''),
         (3, NULL, NULL, NULL, NULL, NULL, NULL);`,
      'ANALYTICS',
    );
    const source: SourceSpec = {
      type: 'snowflake',
      snowflake: {
        account: sf.account,
        user: 'loader',
        password: ref('snowflake'),
        warehouse: 'COMPUTE_WH',
        database: 'ANALYTICS',
        schema: 'PUBLIC',
        host: sf.url,
      },
    } as SourceSpec;
    await roundTrip(
      'snowflake',
      source,
      'SELECT ID AS "id", AMOUNT AS "amount", BIG AS "big", LOCAL_TS AS "local_ts", INSTANT AS "instant", DOC AS "doc", NAME AS "name" FROM EVERYTHING',
      { snowflake: 'sf-secret' },
    );
  });

  it('BigQuery: every value arrives exactly in a Postgres table and an HTTP sink', async () => {
    bq = await startBigQueryEmulator({ dataset: 'analytics' });
    const client = new BigQuery({ projectId: bq.project, apiEndpoint: bq.endpoint });
    await client.query(`CREATE TABLE analytics.everything (id INT64, amount NUMERIC, big INT64, local_ts DATETIME,
      instant TIMESTAMP, doc JSON, name STRING)`);
    await client.query(`INSERT INTO analytics.everything (id, amount, big, local_ts, instant, doc, name) VALUES
      (1, NUMERIC '12345678901234567890.123456789', 9007199254740993, DATETIME '2024-03-10 02:30:00.123456',
       TIMESTAMP '2024-06-01 12:00:00.654321+00', JSON '{"n": "12345678901234567890", "s": "x", "nested": {"a": [1, 2]}}',
       '顧客 😀 Ünïcødé ✓ "quoted", comma\\nnew line'),
      (2, NUMERIC '-0.000000001', -9007199254740993, DATETIME '1970-01-01 00:00:00', TIMESTAMP '2000-01-01 00:00:00+00',
       JSON '[]', ''),
      (3, NULL, NULL, NULL, NULL, NULL, NULL)`);
    const source: SourceSpec = {
      type: 'bigquery',
      bigquery: { project: bq.project, dataset: 'analytics', apiEndpoint: bq.endpoint },
    } as SourceSpec;
    // NUMERIC has nine decimal places in BigQuery.
    const expected = EXPECTED.map((e, i) => ({
      ...e,
      amount: ['12345678901234567890.123456789', '-0.000000001', null][i] ?? null,
    }));
    await roundTrip(
      'bigquery',
      source,
      'SELECT id, amount, big, local_ts, instant, doc, name FROM analytics.everything',
      {},
      expected,
    );
  });
});
