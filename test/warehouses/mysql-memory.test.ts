import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SourceSpec } from '../../crds/index.ts';
import { startMysql, type MysqlServer } from '../stack/mysql.ts';
import { measureStage } from './rss.ts';

const ROWS = 1_000_000;
// About 150 MB of row text, which as JavaScript rows would need several times that. The stage runs with
// its JS heap capped below the size of the data, so holding the result would fail; the process may use
// DuckDB's memory limit (the engine's 512 MB), the capped heap and Node's baseline.
const HEAP_LIMIT_MB = 128;
const RSS_BOUND_MB = 512 + HEAP_LIMIT_MB + 200;

let server: MysqlServer;
beforeAll(async () => {
  server = await startMysql();
}, 300_000);
afterAll(async () => server?.stop());

it('streams a 1M-row MySQL model with bounded memory', async () => {
  const source: SourceSpec = {
    type: 'mysql',
    mysql: {
      host: server.host,
      port: server.port,
      database: server.database,
      user: server.user,
      password: { secretKeyRef: { name: 'mysql', key: 'password' } },
    },
  };
  const measured = await measureStage(
    source,
    {
      sourceRef: { name: 'db' },
      primaryKey: 'id',
      query: `SELECT seq AS id, CAST(seq / 7 AS DECIMAL(18,4)) AS amount,
                     CONCAT('customer-', seq, '-', REPEAT('x', 100)) AS label,
                     TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND AS at
                FROM seq_1_to_${ROWS}`,
    },
    { SYNCLINE_SECRET_MYSQL__PASSWORD: server.password },
    HEAP_LIMIT_MB,
  );
  console.log(`mysql 1M rows: peak RSS ${measured.maxRssMb} MB, peak JS heap ${measured.peakHeapMb} MB`);
  expect(measured.rows).toBe(ROWS);
  expect(measured.maxRssMb).toBeLessThan(RSS_BOUND_MB);
}, 600_000);
