// The BigQuery warehouse snapshot benchmark (issue 15): a generated model of N rows x 10 columns in the
// BigQuery emulator (goccy/bigquery-emulator), synced to PostgreSQL with the snapshot in the diff store
// (the bucket path: every row leaves BigQuery) and in BigQuery (the diff runs there). The bytes the
// emulator sends are counted by an HTTP proxy in front of it (status line, headers, bodies), beside the
// bytes of a plain SELECT of every row through the same proxy.
//
//   npm run bench:warehouse-bigquery -- --rows 100000
//
// (b) resync, no change     (c) resync, 1% of the rows changed
import { parseArgs } from 'node:util';
import type { RunSummary } from '../core/summary.ts';
import type { SyncSpec } from '../crds/index.ts';
import { pgSettings, tempState } from '../test/engine/helpers.ts';
import { startPostgres } from '../test/stack/postgres.ts';
import {
  bigqueryPlan,
  bqQuery,
  runBigQuery,
  startBigQueryStack,
} from '../test/warehouses/bigquery/harness.ts';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '100000' } } });
const ROWS = Number(args.rows);
const KINDS = ['diffStore', 'warehouse'] as const;
const MODEL = 'analytics.bench_model';

const [pg, stack] = await Promise.all([startPostgres(), startBigQueryStack()]);
const dst = await pg.createDatabase('dst');
void dst;
const states: { remove(): void }[] = [];

function mb(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(2)} MB` : `${bytes.toLocaleString('en')} B`;
}

async function measure<T>(
  run: () => Promise<T>,
): Promise<{ value: T; bytesOut: number; bytesIn: number; ms: number }> {
  stack.proxy.reset();
  const started = performance.now();
  const value = await run();
  return {
    value,
    bytesOut: stack.proxy.bytesOut,
    bytesIn: stack.proxy.bytesIn,
    ms: Math.round(performance.now() - started),
  };
}

try {
  const started = performance.now();
  await bqQuery(
    stack.bq,
    `CREATE TABLE ${MODEL} (id INT64, name STRING, amount NUMERIC, qty INT64, ratio FLOAT64, ok BOOL, d DATE,
       ts TIMESTAMP, tags ARRAY<STRING>, note STRING)`,
  );
  await bqQuery(
    stack.bq,
    `INSERT INTO ${MODEL} (id, name, amount, qty, ratio, ok, d, ts, tags, note)
     SELECT g, CONCAT('customer ', CAST(g AS STRING)), CAST(g AS NUMERIC) * NUMERIC '0.25', MOD(g * 7, 1000), g / 3,
            MOD(g, 2) = 0, DATE_ADD(DATE '2020-01-01', INTERVAL MOD(g, 1000) DAY),
            TIMESTAMP_ADD(TIMESTAMP '2024-01-01 00:00:00+00', INTERVAL g SECOND), [CONCAT('t', CAST(MOD(g, 5) AS STRING))],
            IF(MOD(g, 10) = 0, NULL, 'a note of some length for every row')
       FROM UNNEST(GENERATE_ARRAY(1, ${ROWS})) AS g`,
  );
  console.log(
    `model: ${ROWS.toLocaleString('en')} rows generated in ${Math.round((performance.now() - started) / 1000)} s`,
  );
  const raw = await measure(
    () =>
      stack.bq.dataset('analytics').table('bench_model').getRows({ autoPaginate: true }) as Promise<unknown>,
  );
  void raw;
  const query = await measure(async () => {
    const plainClient = new (await import('@google-cloud/bigquery')).BigQuery({
      projectId: stack.emulator.project,
      apiEndpoint: stack.proxy.endpoint,
    });
    const [rows] = await plainClient.query({ query: `SELECT * FROM ${MODEL}` });
    return rows.length;
  });
  console.log(`raw SELECT * of the model: ${mb(query.bytesOut)} out of the emulator, ${query.ms} ms`);

  const results: Record<
    string,
    Record<string, { bytesOut: number; bytesIn: number; ms: number; summary: RunSummary }>
  > = {};
  for (const [i, kind] of KINDS.entries()) {
    const state = tempState();
    states.push(state);
    const plan = () =>
      bigqueryPlan({
        stack,
        query: `SELECT * FROM ${MODEL}`,
        destination: { type: 'postgres', postgres: { ...pgSettings(pg, 'dst'), schema: 'public' } },
        sync: {
          mode: 'upsert',
          deleteBehavior: 'delete',
          target: { table: `bench_${kind.toLowerCase()}` },
          snapshot: { location: kind, schema: 'syncline' },
        } as Partial<SyncSpec> & { mode: 'upsert' },
        stateUrl: state.url,
        name: `bench-${kind.toLowerCase()}`,
      });
    const step = async () => {
      const m = await measure(() => runBigQuery(plan(), pg));
      if (m.value.result !== 'Succeeded') throw new Error(`${kind}: ${m.value.reason}: ${m.value.message}`);
      return { ...m, summary: m.value };
    };
    const first = await step();
    const unchanged = await step();
    await bqQuery(
      stack.bq,
      `UPDATE ${MODEL} SET name = CONCAT(name, '${i === 0 ? '!' : '?'}') WHERE MOD(id, 100) = ${i}`,
    );
    const changed = await step();
    results[kind] = { first, unchanged, changed };
    for (const [label, m] of Object.entries(results[kind])) {
      console.log(
        `${kind.padEnd(9)} ${label.padEnd(9)} ${mb(m.bytesOut).padStart(10)} out, ${mb(m.bytesIn).padStart(10)} in, ` +
          `${String(m.ms).padStart(6)} ms, delivered ${m.summary.counts.delivered}` +
          (m.summary.staging?.narrowed ? `, narrowed ${JSON.stringify(m.summary.staging.narrowed)}` : ''),
      );
    }
  }
  const ratio = (label: 'unchanged' | 'changed') =>
    (results['warehouse']![label]!.bytesOut / results['diffStore']![label]!.bytesOut).toFixed(4);
  console.log(`(b) no change: warehouse/bucket bytes out = ${ratio('unchanged')}`);
  console.log(`(c) 1% changed: warehouse/bucket bytes out = ${ratio('changed')}`);
} finally {
  await stack.stop();
  await pg.stop();
  for (const s of states) s.remove();
}
