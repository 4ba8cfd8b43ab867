// BigQuery source against goccy/bigquery-emulator, driven only through @google-cloud/bigquery. The emulator
// is built by `npm run stack -- build` (a long cgo build the first time; see README.md beside this file).
import { BigQuery } from '@google-cloud/bigquery';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelSpec, SourceSpec } from '../../../crds/index.ts';
import { bigquerySource } from '../../../connectors/bigquery/source.ts';
import { openDuck, rowsOf, testContext } from '../../../connectors/shared/test-context.ts';
import type { StageRequest } from '../../../core/connectors.ts';
import { startBigQueryEmulator, type BigQueryEmulator } from '../../stack/bigquery.ts';
import { freePort } from '../../stack/process.ts';
import { measureStage } from '../rss.ts';
import { synclineFailure as failure } from '../../../connectors/shared/test-context.ts';

let emulator: BigQueryEmulator;
const ctx = testContext({ bq: { key: '{"type": "service_account"}' } });

function spec(overrides: Partial<NonNullable<SourceSpec['bigquery']>> = {}): SourceSpec {
  return {
    type: 'bigquery',
    bigquery: {
      project: emulator.project,
      dataset: 'analytics',
      apiEndpoint: emulator.endpoint,
      ...overrides,
    },
  };
}

async function stage(model: Partial<ModelSpec>, source: SourceSpec = spec()) {
  const { duck, close } = await openDuck();
  const req: StageRequest = {
    ...ctx,
    source,
    model: { sourceRef: { name: 'bq' }, primaryKey: 'id', ...model },
    duck,
    table: 'staged',
    labels: { namespace: 'growth', sync: 'accounts', runId: 'run-1', model: 'growth/accounts' },
  };
  try {
    const result = await bigquerySource.stage(req);
    return { ...result, data: await rowsOf(duck, 'SELECT * FROM staged ORDER BY 1') };
  } finally {
    close();
  }
}

beforeAll(async () => {
  emulator = await startBigQueryEmulator({ dataset: 'analytics' });
  const bq = new BigQuery({ projectId: emulator.project, apiEndpoint: emulator.endpoint });
  await bq.query(`CREATE TABLE analytics.everything (
      id INT64, amount NUMERIC, big BIGNUMERIC, ratio FLOAT64, ok BOOL, name STRING, raw BYTES,
      d DATE, dt DATETIME, t TIME, ts TIMESTAMP, doc JSON, tags ARRAY<STRING>, nums ARRAY<INT64>,
      addr STRUCT<city STRING, zip INT64>)`);
  await bq.query(`INSERT INTO analytics.everything (id, amount, big, ratio, ok, name, raw, d, dt, t, ts, doc, tags, nums, addr) VALUES
      (9223372036854775807, NUMERIC '12345678901234567890.123456789', BIGNUMERIC '123456789012345678901234567890.12345678901234567890',
       0.1, TRUE, '顧客 😀 "quoted", comma', b'\\x00\\xff', DATE '2024-02-29', DATETIME '2024-03-10 02:30:00.123456',
       TIME '23:59:59.999999', TIMESTAMP '2024-06-01 12:00:00.654321+00', JSON '{"n": 12345678901234567890}',
       ['a', 'b'], [1, 9007199254740993], STRUCT('Paris', 75001)),
      (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, [], [], NULL)`);
}, 600_000);

afterAll(async () => {
  ctx.cleanup();
  await emulator?.stop();
});

describe('bigquery source', () => {
  it('round-trips every type exactly into DuckDB', async () => {
    const { data, columns } = await stage({ table: 'analytics.everything' });
    expect(Object.fromEntries(columns.map((c) => [c.name, c.type]))).toMatchObject({
      id: 'BIGINT',
      amount: 'DECIMAL(38,9)',
      big: 'VARCHAR',
      ratio: 'DOUBLE',
      ok: 'BOOLEAN',
      name: 'VARCHAR',
      raw: 'BLOB',
      d: 'DATE',
      dt: 'TIMESTAMP',
      t: 'TIME',
      ts: 'TIMESTAMP WITH TIME ZONE',
      doc: 'JSON',
      tags: 'VARCHAR[]',
      nums: 'BIGINT[]',
      addr: 'STRUCT(city VARCHAR, zip BIGINT)',
    });
    expect(data[1]).toEqual({
      id: '9223372036854775807',
      amount: '12345678901234567890.123456789',
      // BigQuery prints BIGNUMERIC without trailing zeros.
      big: '123456789012345678901234567890.1234567890123456789',
      ratio: 0.1,
      ok: true,
      name: '顧客 😀 "quoted", comma',
      raw: '\\x00\\xFF',
      d: '2024-02-29',
      dt: '2024-03-10 02:30:00.123456',
      t: '23:59:59.999999',
      ts: '2024-06-01 12:00:00.654321+00',
      doc: '{"n":12345678901234567890}',
      tags: ['a', 'b'],
      // The emulator keeps arrays as JSON floats (its own REST answer says 9007199254740992); the connector
      // reads array elements from their text like scalars, and scalars above 2^53 arrive exactly (id).
      nums: ['1', '9007199254740992'],
      addr: { city: 'Paris', zip: '75001' },
    });
    expect(data[0]).toMatchObject({ id: '1', amount: null, ts: null, addr: null });
  });

  it('reads a 25,000-row result (the emulator answers it in one page)', async () => {
    const { rows, data } = await stage({
      query: 'SELECT x AS id FROM UNNEST(GENERATE_ARRAY(1, 25000)) AS x',
    });
    expect(rows).toBe(25000);
    expect(data.at(-1)).toEqual({ id: '25000' });
  });

  it('checks the connection and reports errors with reasons', async () => {
    await expect(bigquerySource.check(spec(), ctx)).resolves.toBeUndefined();
    const sql = await failure(stage({ query: 'SELEC 1' }));
    expect(sql.reason).toBe('SourceQueryFailed');
    const down = await failure(
      bigquerySource.check(spec({ apiEndpoint: `http://127.0.0.1:${await freePort()}` }), ctx),
    );
    expect(down.reason).toBe('SourceUnreachable');
    const badKey = await failure(
      bigquerySource.check(spec({ serviceAccountKey: { secretKeyRef: { name: 'bq', key: 'key' } } }), ctx),
    );
    expect(badKey.reason).toBe('InvalidCredentials');
    const missing = await failure(
      bigquerySource.check(spec({ serviceAccountKey: { secretKeyRef: { name: 'bq', key: 'nope' } } }), ctx),
    );
    expect(missing.reason).toBe('SecretNotFound');
  });

  // goccy/bigquery-emulator ignores maxResults and pageToken and answers every row in one response, so
  // the bound the connector keeps against BigQuery (pages of 10,000 rows) cannot be shown here: this
  // stages 1M rows and reports the memory it took.
  it('stages a 1M-row model (memory reported: the emulator does not page)', async () => {
    const measured = await measureStage(
      spec(),
      {
        sourceRef: { name: 'bq' },
        primaryKey: 'id',
        query:
          "SELECT x AS id, CONCAT('customer-', CAST(x AS STRING)) AS label FROM UNNEST(GENERATE_ARRAY(1, 1000000)) AS x",
      },
      {},
      4096,
    );
    console.log(
      `bigquery 1M rows (one emulator response): peak RSS ${measured.maxRssMb} MB, peak JS heap ${measured.peakHeapMb} MB`,
    );
    expect(measured.rows).toBe(1_000_000);
  }, 1_800_000);
});

describe('bigquery source: the model can only read', () => {
  const victimRows = async () => {
    const bq = new BigQuery({ projectId: emulator.project, apiEndpoint: emulator.endpoint });
    const [rows] = await bq.query('SELECT count(*) AS n FROM analytics.victim');
    return Number((rows as { n: number }[])[0]?.n);
  };

  beforeAll(async () => {
    const bq = new BigQuery({ projectId: emulator.project, apiEndpoint: emulator.endpoint });
    await bq.query('CREATE TABLE analytics.victim (id INT64)');
    await bq.query('INSERT INTO analytics.victim (id) VALUES (1), (2), (3)');
  });

  it('reads the model as a subquery: DML and DDL fail, name the Model, and write nothing', async () => {
    for (const query of [
      'DELETE FROM analytics.victim WHERE true',
      'INSERT INTO analytics.victim (id) VALUES (4)',
      'DROP TABLE analytics.victim',
      'CREATE OR REPLACE TABLE analytics.victim AS SELECT 1 AS id',
    ]) {
      const error = await failure(stage({ query }));
      expect(await victimRows()).toBe(3);
      expect(error.reason).toBe('SourceQueryFailed');
      expect(error.message).toContain('Model growth/accounts must be a single read-only SELECT');
    }
  });
});
