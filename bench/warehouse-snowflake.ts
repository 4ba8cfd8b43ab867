// bench:warehouse-snowflake (issue 15): bytes that leave "Snowflake" (every response body the emulator
// sends: query results, chunks, logins) for (b) a no-change resync and (c) a resync with 1% of the rows
// changed, with the Sync's snapshot in the diff store (the model's rows come out every run) and in the
// warehouse (HASH_AGG proves (b) unchanged; (c) moves the changed rows and their snapshot rows).
// Usage: npm run bench:warehouse-snowflake [-- rows]   (default 100,000)
import { silentLogger } from '../core/logger.ts';
import { runPlan } from '../core/plan.ts';
import { secretResolver } from '../core/secrets.ts';
import { executeRun } from '../runner/run.ts';
import { startSnowflakeEmulator } from '../test/emulators/snowflake/server.ts';
import { startPostgres } from '../test/stack/postgres.ts';
import { pgSettings, tempState } from '../test/engine/helpers.ts';

const rows = Number(process.argv[2] ?? 100_000);
const server = await startPostgres();
await server.createDatabase('dst');
const sf = await startSnowflakeEmulator({ syncWaitMs: 60_000 });
sf.addUser({ name: 'bench', password: 'pw' });
sf.setWarehouse('WH', 'STARTED');
await sf.createDatabase('ANALYTICS');
const secrets = secretResolver({}, { pg: { password: server.password }, sf: { password: 'pw' } });

async function run(location: 'diffStore' | 'warehouse', table: string, stateUrl: string, n: number) {
  const plan = runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId: `bench-${location}-${n}-${Date.now()}`,
    namespace: 'bench',
    fullResync: false,
    dryRun: false,
    sync: {
      name: `bench-${location.toLowerCase()}`,
      spec: {
        modelRef: { name: 'model' },
        destinationRef: { name: 'dest' },
        mode: 'upsert',
        target: { table: `copy_${location.toLowerCase()}` },
        snapshot: { location, schema: 'syncline' },
      },
    },
    model: {
      name: 'model',
      spec: { sourceRef: { name: 'src' }, query: `SELECT * FROM ${table}`, primaryKey: 'ID' },
    },
    source: {
      name: 'src',
      spec: {
        type: 'snowflake',
        snowflake: {
          account: 'testorg-testaccount',
          user: 'bench',
          password: { secretKeyRef: { name: 'sf', key: 'password' } },
          warehouse: 'WH',
          database: 'ANALYTICS',
          schema: 'PUBLIC',
          host: sf.url,
        },
      },
    },
    destination: {
      name: 'dest',
      spec: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
    },
    diffStore: { url: stateUrl },
  });
  const before = sf.stats.bytesSent;
  const started = performance.now();
  const summary = await executeRun(plan, {
    secrets,
    log: silentLogger(),
    signal: new AbortController().signal,
  });
  if (summary.result !== 'Succeeded') throw new Error(`${location}: ${summary.reason} ${summary.message}`);
  return {
    bytes: sf.stats.bytesSent - before,
    ms: Math.round(performance.now() - started),
    delivered: summary.counts.delivered,
  };
}

const results: Record<string, unknown>[] = [];
for (const location of ['diffStore', 'warehouse'] as const) {
  const table = `MODEL_${location.toUpperCase()}`;
  await sf.exec(
    `CREATE TABLE ${table} (ID NUMBER(38,0), NAME VARCHAR, EMAIL VARCHAR, AMOUNT NUMBER(12,2), SEEN_AT TIMESTAMP_NTZ);
     INSERT INTO ${table} SELECT g, 'name ' || g, 'user' || g || '@example.com', g * 1.5, TIMESTAMP '2024-01-01' + g * INTERVAL 1 SECOND FROM range(1, ${rows + 1}) t(g)`,
    'ANALYTICS',
  );
  const state = tempState();
  const first = await run(location, table, state.url, 1);
  const unchanged = await run(location, table, state.url, 2);
  await sf.exec(`UPDATE ${table} SET NAME = NAME || '!' WHERE ID % 100 = 0`, 'ANALYTICS');
  const changed = await run(location, table, state.url, 3);
  results.push({
    location,
    rows,
    first: first.bytes,
    noChange: unchanged.bytes,
    onePercent: changed.bytes,
    delivered: changed.delivered,
    msNoChange: unchanged.ms,
    msOnePercent: changed.ms,
  });
  state.remove();
}
console.table(results);
const [bucket, warehouse] = results as { noChange: number; onePercent: number }[];
console.log(
  `(b) no change: ${warehouse!.noChange} bytes vs ${bucket!.noChange} (${(warehouse!.noChange / bucket!.noChange).toFixed(4)}x); ` +
    `(c) 1% changed: ${warehouse!.onePercent} bytes vs ${bucket!.onePercent} (${(warehouse!.onePercent / bucket!.onePercent).toFixed(4)}x)`,
);
await sf.stop();
await server.stop();
