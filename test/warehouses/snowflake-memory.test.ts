import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SourceSpec } from '../../crds/index.ts';
import { startSnowflakeEmulator, type SnowflakeEmulator } from '../emulators/snowflake/server.ts';
import { measureStage } from './rss.ts';

const ROWS = 1_000_000;
// About 150 MB of row text, which as JavaScript rows would need several times that. The stage runs with
// its JS heap capped below the size of the data, so holding the result would fail; the process may use
// DuckDB's memory limit (the engine's 512 MB), the capped heap and Node's baseline.
const HEAP_LIMIT_MB = 128;
const RSS_BOUND_MB = 512 + HEAP_LIMIT_MB + 200;

let sf: SnowflakeEmulator;
beforeAll(async () => {
  sf = await startSnowflakeEmulator({ rowsPerChunk: 25_000 });
  sf.addUser({ name: 'loader', password: 'pw' });
  sf.setWarehouse('WH', 'STARTED');
  await sf.createDatabase('DB');
}, 120_000);
afterAll(async () => sf?.stop());

it('streams a 1M-row Snowflake model with bounded memory', async () => {
  const source: SourceSpec = {
    type: 'snowflake',
    snowflake: {
      account: 'testorg-testaccount',
      user: 'loader',
      password: { secretKeyRef: { name: 'sf', key: 'password' } },
      warehouse: 'WH',
      database: 'DB',
      host: sf.url,
    },
  };
  const measured = await measureStage(
    source,
    {
      sourceRef: { name: 'wh' },
      primaryKey: 'ID',
      query: `SELECT i AS ID, CAST(i AS DECIMAL(18,4)) * 0.5 AS AMOUNT,
                     'customer-' || i || '-' || repeat('x', 100) AS LABEL,
                     TIMESTAMP '2024-01-01 00:00:00' + to_seconds(i) AS AT
                FROM range(${ROWS}) t(i)`,
    },
    { SYNCLINE_SECRET_SF__PASSWORD: 'pw' },
    HEAP_LIMIT_MB,
  );
  console.log(
    `snowflake 1M rows: peak RSS ${measured.maxRssMb} MB, peak JS heap ${measured.peakHeapMb} MB, chunks ${sf.stats.chunkRequests}`,
  );
  expect(measured.rows).toBe(ROWS);
  expect(sf.stats.chunkRequests).toBe(40);
  expect(measured.maxRssMb).toBeLessThan(RSS_BOUND_MB);
}, 900_000);
