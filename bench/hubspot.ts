// Delivery at HubSpot's rate limit (issue 13): a generated PostgreSQL model of N changed rows synced by
// `syncline job` (a child process) to the HubSpot emulator (test/emulators/hubspot, in this process) with a
// documented limit configured — `--max` requests per rolling `--interval-ms`, 100 records per request.
//
//   npm run bench:hubspot -- [--rows 100000] [--max 100] [--interval-ms 10000] [--concurrency N] [--batch-size 100]
//
// The baseline is the limit itself: at most max × batch records per interval, so the maximum throughput is
// max × batch / interval. Reported, from the emulator's log of the job's requests:
//   - throughput: records delivered ÷ the time from the job's first write to its last answer, as a share of
//     that maximum; and the same after the first interval (the rolling window starts empty, so the first
//     interval may take a full budget at once: the steady rate is what the limit allows run after run);
//   - 429s answered after the first interval (the client reads X-HubSpot-RateLimit-* and should earn none);
//   - the child's peak resident memory (VmHWM, Node and DuckDB together), as bench/engine.ts measures it;
//   - the emulator's own capacity without a limit (a short probe on a second emulator), to show it is not
//     what bounds the run.
import { runSyncJob } from './job.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { runPlan } from '../core/plan.ts';
import type { RunSummary } from '../core/summary.ts';
import { startHubSpotEmulator, type HubSpotEmulator } from '../test/emulators/hubspot/server.ts';
import { startPostgres, type PostgresServer } from '../test/stack/postgres.ts';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    max: { type: 'string', default: '100' },
    'interval-ms': { type: 'string', default: '10000' },
    'batch-size': { type: 'string', default: '100' },
    concurrency: { type: 'string' },
  },
});
const ROWS = Number(args.rows);
const MAX = Number(args.max);
const INTERVAL_MS = Number(args['interval-ms']);
const BATCH = Number(args['batch-size']);
const work = mkdtempSync(join(tmpdir(), 'syncline-bench-hubspot-'));
const MODEL_QUERY =
  'SELECT id, email, firstname, lastname, lifetime_value, date_of_birth, last_seen_at, is_vip, lifecyclestage FROM bench_contacts';
const WRITE = /\/batch\/(upsert|create|update|archive)$/;

async function generate(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE TABLE bench_contacts (
      id bigint PRIMARY KEY, email text, firstname text, lastname text, lifetime_value numeric(14,2),
      date_of_birth date, last_seen_at timestamptz, is_vip boolean, lifecyclestage text)`);
    await client.query(`INSERT INTO bench_contacts
      SELECT g, 'c' || g || '@example.com', 'Zoë ' || g, 'Müller-' || (g % 997), (g % 100000) / 100.0,
             DATE '1960-01-01' + (g % 20000), timestamptz '2024-01-01' + g * interval '1.5 second', g % 3 = 0,
             (ARRAY['lead','customer','subscriber','opportunity'])[1 + g % 4]
      FROM generate_series(1, ${ROWS}) g`);
    await client.query('ANALYZE bench_contacts');
  } finally {
    await client.end();
  }
}

async function syncJob(
  server: PostgresServer,
  hs: HubSpotEmulator,
): Promise<{ summary: RunSummary; wallMs: number; peakMb: number }> {
  const plan = runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId: `bench-hubspot-${Date.now()}`,
    namespace: 'bench',
    sync: {
      name: 'bench-hubspot',
      spec: {
        modelRef: { name: 'contacts' },
        destinationRef: { name: 'hubspot' },
        mode: 'upsert',
        target: { object: 'contacts', matchField: 'external_id' },
        mappings: [
          { to: 'external_id', from: 'id' },
          ...MODEL_QUERY.replace(/^SELECT id, | FROM .*$/g, '')
            .split(', ')
            .map((c) => ({ to: c, from: c })),
        ],
        delivery: {
          batchSize: BATCH,
          ...(args.concurrency ? { concurrency: Number(args.concurrency) } : {}),
        },
      },
    },
    model: { name: 'contacts', spec: { sourceRef: { name: 'pg' }, query: MODEL_QUERY, primaryKey: 'id' } },
    source: {
      name: 'pg',
      spec: {
        type: 'postgres',
        postgres: {
          host: server.host,
          port: server.port,
          database: 'src',
          user: server.user,
          password: { secretKeyRef: { name: 'pg', key: 'password' } },
          tls: { mode: 'disable' },
        },
      },
    },
    destination: {
      name: 'hubspot',
      spec: {
        type: 'hubspot',
        hubspot: { baseUrl: hs.url, privateAppToken: { secretKeyRef: { name: 'hubspot', key: 'token' } } },
      },
    },
    diffStore: { url: pathToFileURL(join(work, 'state')).href },
    runner: { debuggerRetentionDays: 7, tmpDir: work },
  });
  return runSyncJob(plan, {
    dir: work,
    name: 'hubspot-sync',
    env: {
      SYNCLINE_SECRET_PG__PASSWORD: server.password,
      SYNCLINE_SECRET_HUBSPOT__TOKEN: hs.token,
    },
  });
}

/** Records/s of the emulator with no limit: `requests` upserts of BATCH records each, 4 at a time. */
async function emulatorCapacity(requests: number): Promise<number> {
  const hs = await startHubSpotEmulator({ rateLimit: { max: 1_000_000, daily: null } });
  try {
    const body = (n: number) =>
      JSON.stringify({
        inputs: Array.from({ length: BATCH }, (_, i) => {
          const id = String(n * BATCH + i);
          return {
            id,
            idProperty: 'external_id',
            properties: { email: `c${id}@example.com`, firstname: `Zoë ${id}`, lifetime_value: '12.34' },
          };
        }),
      });
    const started = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < requests) {
        const response = await fetch(`${hs.url}/crm/v3/objects/contacts/batch/upsert`, {
          method: 'POST',
          headers: { authorization: `Bearer ${hs.token}`, 'content-type': 'application/json' },
          body: body(next++),
        });
        await response.arrayBuffer();
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    return (requests * BATCH) / ((performance.now() - started) / 1000);
  } finally {
    await hs.close();
  }
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  const maxRate = (MAX * BATCH) / (INTERVAL_MS / 1000);
  console.log(
    `syncline HubSpot benchmark: ${fmt(ROWS)} changed rows (first sync) -> contacts, limit ${MAX} requests per ` +
      `${INTERVAL_MS / 1000} s (rolling) at ${BATCH} records per request: at most ${fmt(maxRate)} records/s; ` +
      `${cpus().length} cores, load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  const capacity = await emulatorCapacity(50);
  console.log(
    `emulator without a limit: ${fmt(capacity)} records/s (${fmt(capacity / maxRate, 1)}x the limit)`,
  );
  const server = await startPostgres();
  const hs = await startHubSpotEmulator({
    rateLimit: { max: MAX, intervalMs: INTERVAL_MS, daily: 1_000_000 },
  });
  try {
    const srcUrl = await server.createDatabase('src');
    await generate(srcUrl);
    const job = await syncJob(server, hs);
    const requests = hs.requests();
    const writes = requests.filter((r) => WRITE.test(r.path));
    const first = requests[0]?.at ?? 0;
    const firstWrite = writes[0]?.at ?? first;
    const lastAt = requests.at(-1)?.at ?? firstWrite;
    const written = (list: typeof requests) =>
      list.filter((r) => r.status === 200 || r.status === 207).length * BATCH;
    const deliveredRecords = hs.stats().created + hs.stats().updated;
    const spanS = (lastAt - firstWrite) / 1000;
    // After the first interval: the requests answered from then on, over the time from then to the end.
    const steadyFrom = firstWrite + INTERVAL_MS;
    const steady = writes.filter((r) => r.at >= steadyFrom);
    const steadyRecords = Math.min(written(steady), deliveredRecords);
    const steadyS = (lastAt - steadyFrom) / 1000;
    const late429 = requests.filter((r) => r.status === 429 && r.at > first + INTERVAL_MS).length;
    const all429 = requests.filter((r) => r.status === 429).length;
    const live = hs.records('contacts').length;
    const overall = deliveredRecords / spanS;
    const steadyRate = steadyRecords / steadyS;
    console.log('');
    console.log(
      `delivered ${fmt(job.summary.counts.delivered)} rows in ${fmt(spanS, 1)} s of writing ` +
        `(${writes.length} write requests, ${requests.length} requests in all; run ${fmt((job.summary.timings.totalMs ?? 0) / 1000, 1)} s, ` +
        `process ${fmt(job.wallMs / 1000, 1)} s); live contacts ${fmt(live)}`,
    );
    console.log(
      `throughput ${fmt(overall)} records/s = ${fmt((100 * overall) / maxRate, 1)}% of the limit's ${fmt(maxRate)}; ` +
        `after the first interval ${fmt(steadyRate)} records/s = ${fmt((100 * steadyRate) / maxRate, 1)}%`,
    );
    console.log(`429s after the first interval: ${late429} (in all: ${all429})`);
    console.log(`peak RSS of the job: ${fmt(job.peakMb)} MiB`);
    console.log(`targets: throughput >= 90% of the limit, 0 429s after the first interval`);
    if (job.summary.counts.delivered !== ROWS || live !== ROWS)
      console.log(
        `WARNING: expected ${ROWS} rows delivered and live, got ${job.summary.counts.delivered}/${live}`,
      );
  } finally {
    await hs.close();
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
