// The bulk delivery path end to end (PostgreSQL to PostgreSQL): a batch the destination refuses as a whole
// goes again as row changes, so only the rows at fault are rejected, and they are retried next run.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../test/stack/postgres.ts';
import { makePlan, pgSettings, run, sql, tempState } from '../test/engine/helpers.ts';

let server: PostgresServer;
let srcUrl: string;
let dstUrl: string;
const state = tempState();

beforeAll(async () => {
  server = await startPostgres();
  srcUrl = await server.createDatabase('src');
  dstUrl = await server.createDatabase('dst');
});
afterAll(async () => {
  await server?.stop();
  state.remove();
});

describe('bulk delivery', () => {
  it('isolates the rows a bulk batch cannot take, delivers the rest, and retries them next run', async () => {
    await sql(srcUrl, 'CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(10,2), note text)');
    await sql(
      srcUrl,
      `INSERT INTO accounts SELECT g, CASE WHEN g IN (7, 130) THEN -1 ELSE g END, 'n' || g FROM generate_series(1, 300) g`,
    );
    await sql(
      dstUrl,
      'CREATE TABLE ledger (id int PRIMARY KEY, balance numeric(10,2) CHECK (balance >= 0), note text)',
    );
    const plan = () =>
      makePlan({
        server,
        sourceDb: 'src',
        query: 'SELECT id, balance, note FROM accounts',
        destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
        sync: { target: { table: 'ledger' }, mode: 'upsert', delivery: { batchSize: 100, maxRetries: 0 } },
        stateUrl: state.url,
        name: 'bulk-sync',
      });
    const first = await run(plan(), server);
    expect(first.result).toBe('PartiallySucceeded');
    expect(first.counts).toMatchObject({ delivered: 298, failed: 2 });
    expect(first.rejected.map((r) => r.key).sort()).toEqual(['130', '7']);
    expect(first.rejected[0]?.reason).toContain('check constraint');
    // The batches went in bulk (copied straight into the empty table); the refused one row by row.
    const runs = join(state.dir, 'test', 'bulk-sync', 'runs');
    const logFile = readdirSync(runs).find((f) => f.endsWith('.requests.jsonl.gz')) as string;
    const requests = gunzipSync(readFileSync(join(runs, logFile)))
      .toString()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { keys: string[]; status?: string });
    // Rows stream in no set order, so the two bad rows share a batch or not: every row went either in a
    // bulk batch or (with the rest of a refused one) on its own.
    const copied = requests.filter((r) => r.status === '100 rows copied').length;
    const single = requests.filter((r) => r.keys.length === 1).length;
    expect(copied).toBeGreaterThanOrEqual(1);
    expect(copied * 100 + single).toBe(300);
    const count = await sql<{ n: string }>(dstUrl, 'SELECT count(*) AS n FROM ledger');
    expect(count[0]?.n).toBe('298');

    await sql(srcUrl, 'UPDATE accounts SET balance = 0 WHERE id IN (7, 130)');
    const second = await run(plan(), server);
    expect(second.result).toBe('Succeeded');
    expect(second.counts).toMatchObject({ delivered: 2, failed: 0 });
    const model = await sql(srcUrl, 'SELECT id, balance, note FROM accounts ORDER BY id');
    expect(await sql(dstUrl, 'SELECT id, balance, note FROM ledger ORDER BY id')).toEqual(model);
  });
});
