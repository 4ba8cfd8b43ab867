// The snapshot kept in BigQuery (Sync.spec.snapshot.location: warehouse), through the real engine: the
// model in the BigQuery emulator, the destination a real PostgreSQL. The diff runs in BigQuery SQL and
// only the rows that may differ leave it; the rules of the bucket snapshot hold unchanged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SyncSpec } from '../../../crds/index.ts';
import { pgSettings, sql, tempState } from '../../engine/helpers.ts';
import { startPostgres, type PostgresServer } from '../../stack/postgres.ts';
import { bigqueryPlan, bqQuery, runBigQuery, startBigQueryStack, type BigQueryStack } from './harness.ts';

let pg: PostgresServer;
let dstUrl: string;
let stack: BigQueryStack;
const states: { remove(): void }[] = [];
let counter = 0;

beforeAll(async () => {
  [pg, stack] = await Promise.all([startPostgres(), startBigQueryStack()]);
  dstUrl = await pg.createDatabase('dst');
});
afterAll(async () => {
  await stack?.stop();
  await pg?.stop();
  for (const s of states) s.remove();
});

const COLUMNS = 'id, name, amount, tags, meta, seen_at';
const WAREHOUSE = { location: 'warehouse', schema: 'syncline' } as const;

async function scenario(rows: number, sync: Partial<SyncSpec> & { mode: SyncSpec['mode'] }) {
  counter++;
  const table = `analytics.things_${counter}`;
  const target = `copy_${counter}`;
  const state = tempState();
  states.push(state);
  const name = `bq-warehouse-${counter}`;
  await bqQuery(
    stack.bq,
    `CREATE TABLE ${table} (id INT64, name STRING, amount NUMERIC, tags ARRAY<STRING>, meta JSON, seen_at TIMESTAMP)`,
  );
  await bqQuery(
    stack.bq,
    `INSERT INTO ${table} (id, name, amount, tags, meta, seen_at)
     SELECT g, CONCAT('name ', CAST(g AS STRING)), CAST(g AS NUMERIC) * NUMERIC '1.5', [CONCAT('t', CAST(MOD(g, 3) AS STRING))],
            PARSE_JSON(CONCAT('{"g":', CAST(g AS STRING), '}')), TIMESTAMP_ADD(TIMESTAMP '2024-01-01 00:00:00+00', INTERVAL g HOUR)
       FROM UNNEST(GENERATE_ARRAY(1, ${rows})) AS g`,
  );
  const plan = (extra: Partial<SyncSpec> = {}, options: { query?: string; primaryKey?: string } = {}) =>
    bigqueryPlan({
      stack,
      query: (options.query ?? `SELECT ${COLUMNS} FROM $T`).replaceAll('$T', table),
      ...(options.primaryKey ? { primaryKey: options.primaryKey } : {}),
      destination: { type: 'postgres', postgres: { ...pgSettings(pg, 'dst'), schema: 'public' } },
      sync: { target: { table: target }, snapshot: WAREHOUSE, ...sync, ...extra },
      stateUrl: state.url,
      name,
    });
  return {
    name,
    table,
    source: (text: string) => bqQuery(stack.bq, text.replaceAll('$T', table)),
    dest: (text: string) => sql(dstUrl, text.replaceAll('$D', target)),
    run: (extra: Partial<SyncSpec> = {}, options: { query?: string; primaryKey?: string } = {}) =>
      runBigQuery(plan(extra, options), pg),
    /** The model and the destination, id, name and amount, as text. */
    same: async () => {
      const model = await bqQuery(
        stack.bq,
        `SELECT CAST(id AS STRING) AS id, name, CAST(amount AS STRING) AS amount FROM ${table} ORDER BY id`,
      );
      const copy = await sql<{ id: string; name: string | null; amount: string | null }>(
        dstUrl,
        `SELECT id::text AS id, name, trim_scale(amount)::text AS amount FROM ${target} ORDER BY id`,
      );
      return (
        JSON.stringify(copy) ===
        JSON.stringify(
          model.map((r) => ({ id: r['id'], name: r['name'] ?? null, amount: r['amount'] ?? null })),
        )
      );
    },
  };
}

describe('a BigQuery warehouse snapshot', () => {
  it('keeps BigQuery hashes from the first sync, proves a resync unchanged by checksum, and stages only what changed', async () => {
    const s = await scenario(200, { mode: 'upsert', deleteBehavior: 'delete' });
    const first = await s.run();
    expect(first.result, first.message).toBe('Succeeded');
    expect(first.counts).toMatchObject({ queried: 200, added: 200, delivered: 200 });
    expect(first.staging).toEqual({ keysOnly: false, hashFunction: 'bigquery-farm-fingerprint-v1' });
    expect(await s.same()).toBe(true);

    const second = await s.run();
    expect(second.result, second.message).toBe('Succeeded');
    expect(second.counts).toMatchObject({ queried: 200, added: 0, changed: 0, removed: 0, delivered: 0 });
    expect(second.staging?.narrowed).toEqual({ rows: 0, previousRows: 0, byChecksum: true });

    await s.source(`UPDATE $T SET name = 'renamed' WHERE id = 2`);
    await s.source(`UPDATE $T SET amount = amount + NUMERIC '0.01' WHERE id = 3`);
    await s.source(`UPDATE $T SET tags = ['t0', 'x'] WHERE id = 4`);
    await s.source(`UPDATE $T SET meta = JSON '{"g": 5, "more": true}' WHERE id = 5`);
    await s.source(`UPDATE $T SET seen_at = TIMESTAMP_ADD(seen_at, INTERVAL 1 MICROSECOND) WHERE id = 6`);
    await s.source(`UPDATE $T SET name = NULL WHERE id = 7`);
    await s.source(`DELETE FROM $T WHERE id = 1`);
    await s.source(
      `INSERT INTO $T (id, name, amount, tags, meta, seen_at) VALUES (201, 'newcomer', 1, [], JSON '{}', CURRENT_TIMESTAMP())`,
    );
    const third = await s.run();
    expect(third.result, third.message).toBe('Succeeded');
    expect(third.counts).toMatchObject({ queried: 200, added: 1, changed: 6, removed: 1, delivered: 8 });
    expect(third.staging?.narrowed).toEqual({ rows: 7, previousRows: 7, byChecksum: false });
    expect(await s.same()).toBe(true);
    const fourth = await s.run();
    expect(fourth.counts).toMatchObject({ added: 0, changed: 0, removed: 0, delivered: 0 });
    expect(fourth.staging?.narrowed?.byChecksum).toBe(true);
  });
});
