// The engine benchmark (issue 3): a generated PostgreSQL model of N rows x 10 columns synced to a
// PostgreSQL table, each step next to raw COPY of the same rows in the same run.
//
//   npm run bench -- --rows 1000000 [--repeat 3] [--memory-limit 512MB] [--batch-size N] [--concurrency N]
//
// (a) first sync        vs  COPY (query) TO STDOUT + COPY ... FROM STDIN
// (b) resync, no change vs  COPY (query) TO STDOUT
// (c) resync, 1% changed vs COPY (query) TO STDOUT
// Each sync runs as `syncline job` in a child process; its peak memory is the kernel's high-water mark
// of resident memory (VmHWM), which includes DuckDB's native memory. Each step runs --repeat times right
// after its baseline; the ratios are of the medians.
import { runSyncJob } from './job.ts';
import { generate as generateModel, median, MODEL_QUERY, seconds, timed, withClient } from './pg-model.ts';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { runPlan } from '../core/plan.ts';
import type { RunSummary } from '../core/summary.ts';
import { startPostgres, type PostgresServer } from '../test/stack/postgres.ts';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    'memory-limit': { type: 'string' },
    'batch-size': { type: 'string' },
    concurrency: { type: 'string' },
    repeat: { type: 'string', default: '3' },
  },
});
const ROWS = Number(args.rows);
const REPEAT = Math.max(1, Number(args.repeat));
const work = mkdtempSync(join(tmpdir(), 'syncline-bench-'));

/** Raw COPY out of the model query to a local file, and COPY of that file into a fresh table. */
async function rawCopy(
  srcUrl: string,
  dstUrl: string,
  withCopyIn: boolean,
): Promise<{ outMs: number; inMs: number }> {
  const file = join(work, 'copy.bin');
  const out = await timed(() =>
    withClient(srcUrl, async (c) =>
      pipeline(c.query(copyTo(`COPY (${MODEL_QUERY}) TO STDOUT`)), createWriteStream(file)),
    ),
  );
  let inMs = 0;
  if (withCopyIn) {
    await withClient(dstUrl, (c) =>
      c.query('DROP TABLE IF EXISTS raw_copy; CREATE TABLE raw_copy (LIKE bench_target_shape)'),
    );
    const copyIn = await timed(() =>
      withClient(dstUrl, async (c) =>
        pipeline(createReadStream(file), c.query(copyFrom('COPY raw_copy FROM STDIN'))),
      ),
    );
    inMs = copyIn.ms;
  }
  rmSync(file, { force: true });
  return { outMs: out.ms, inMs };
}

/** One sync as `syncline job`: its summary, wall time and peak resident memory. */
async function syncJob(
  server: PostgresServer,
  stateUrl: string,
  runId: string,
): Promise<{ summary: RunSummary; wallMs: number; peakMb: number }> {
  const pgConn = (database: string) => ({
    host: server.host,
    port: server.port,
    database,
    user: server.user,
    password: { secretKeyRef: { name: 'pg', key: 'password' } },
    tls: { mode: 'disable' as const },
  });
  const plan = runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId,
    namespace: 'bench',
    sync: {
      name: 'bench-sync',
      spec: {
        modelRef: { name: 'bench' },
        destinationRef: { name: 'pg' },
        mode: 'upsert',
        target: { table: 'bench_target' },
        delivery: {
          ...(args['batch-size'] ? { batchSize: Number(args['batch-size']) } : {}),
          ...(args.concurrency ? { concurrency: Number(args.concurrency) } : {}),
        },
      },
    },
    model: { name: 'bench', spec: { sourceRef: { name: 'pg' }, query: MODEL_QUERY, primaryKey: 'id' } },
    source: { name: 'pg', spec: { type: 'postgres', postgres: pgConn('src') } },
    destination: { name: 'pg', spec: { type: 'postgres', postgres: { ...pgConn('dst'), schema: 'public' } } },
    diffStore: { url: stateUrl },
    runner: {
      debuggerRetentionDays: 7,
      tmpDir: work,
      ...(args['memory-limit'] ? { memoryLimit: args['memory-limit'] } : {}),
    },
  });
  return runSyncJob(plan, {
    dir: work,
    name: runId,
    env: {
      SYNCLINE_SECRET_PG__PASSWORD: server.password,
    },
  });
}

interface Measured {
  /** The baseline's time, measured right before the sync. */
  raw: number;
  summary: RunSummary;
  wallMs: number;
  peakMb: number;
}

/** One line per step: median times (the engine's own, from the summary: no Node start-up), their ratio, the highest peak. */
function row(label: string, runs: Measured[], rawLabel: string): string {
  const syncMs = median(runs.map((m) => m.summary.timings.totalMs ?? 0));
  const rawMs = median(runs.map((m) => m.raw));
  const peakMb = Math.max(...runs.map((m) => m.peakMb));
  const phase = (key: keyof RunSummary['timings']) =>
    Math.round(median(runs.map((m) => m.summary.timings[key] ?? 0)));
  const last = runs[runs.length - 1] as Measured;
  return (
    `${label.padEnd(24)} sync ${seconds(syncMs)}  ${rawLabel} ${seconds(rawMs)}  ` +
    `ratio ${(syncMs / rawMs).toFixed(2)}x  peak RSS ${peakMb.toFixed(0)} MiB  ` +
    `[query ${phase('queryMs')}ms, validate ${phase('validateMs')}ms, diff ${phase('diffMs')}ms, deliver ${phase('deliverMs')}ms, ` +
    `commit ${phase('commitMs')}ms; delivered ${last.summary.counts.delivered}]`
  );
}

/** Each run of a step: its time, its baseline's, and how it read the model (every row, or keys first). */
function runs(runs: Measured[]): string {
  return runs
    .map((m) => {
      const staging = m.summary.staging;
      const how = staging?.keysOnly ? `keys+${staging.fetchedRows ?? 0} rows` : 'all rows';
      const ms = m.summary.timings.totalMs ?? 0;
      return `${seconds(ms)}/${seconds(m.raw)}=${(ms / m.raw).toFixed(2)}x ${how} -> ${staging?.hashFunction ?? '?'}`;
    })
    .join('; ');
}

async function main(): Promise<void> {
  console.log(
    `syncline engine benchmark: ${ROWS.toLocaleString('en')} rows x 10 columns, PostgreSQL -> PostgreSQL`,
  );
  const server = await startPostgres();
  try {
    const srcUrl = await server.createDatabase('src');
    const dstUrl = await server.createDatabase('dst');
    const gen = await timed(() => generateModel(srcUrl, ROWS));
    console.log(`generated the model in ${(gen.ms / 1000).toFixed(1)}s`);
    await withClient(dstUrl, (c) =>
      c.query(`CREATE TABLE bench_target_shape (id bigint, name text, email text, amount numeric(12,2), qty integer,
        score double precision, active boolean, created_at timestamptz, category text, note text)`),
    );
    // Each step runs REPEAT times, each time right after its baseline, and the medians are compared: one
    // run of either is at the mercy of whatever else the machine does in that second.
    let stateUrl = '';
    const a: Measured[] = [];
    for (let i = 0; i < REPEAT; i++) {
      await withClient(dstUrl, (cl) => cl.query('DROP TABLE IF EXISTS bench_target'));
      stateUrl = pathToFileURL(join(work, `state-${i}`)).href;
      const raw = await rawCopy(srcUrl, dstUrl, true);
      a.push({ raw: raw.outMs + raw.inMs, ...(await syncJob(server, stateUrl, `bench-a${i}`)) });
    }
    const b: Measured[] = [];
    for (let i = 0; i < REPEAT; i++) {
      const raw = await rawCopy(srcUrl, dstUrl, false);
      b.push({ raw: raw.outMs, ...(await syncJob(server, stateUrl, `bench-b${i}`)) });
    }
    const c: Measured[] = [];
    for (let i = 0; i < REPEAT; i++) {
      await withClient(srcUrl, (cl) =>
        cl.query(`UPDATE bench_model SET note = note || '!' WHERE id % 100 = 0`),
      );
      const raw = await rawCopy(srcUrl, dstUrl, false);
      c.push({ raw: raw.outMs, ...(await syncJob(server, stateUrl, `bench-c${i}`)) });
    }

    console.log('');
    console.log(row('(a) first sync', a, 'COPY out+in'));
    console.log(row('(b) resync, no change', b, 'COPY out'));
    console.log(row('(c) resync, 1% changed', c, 'COPY out'));
    console.log('');
    console.log('each run (sync/baseline, how the model was read -> hash function of the snapshot it left):');
    for (const [label, step] of [
      ['(a)', a],
      ['(b)', b],
      ['(c)', c],
    ] as const)
      console.log(`  ${label} ${runs(step)}`);
    console.log('');
    console.log(
      `medians of ${REPEAT} run(s) each; process wall time incl. Node start-up: (a) ${seconds(median(a.map((m) => m.wallMs)))}, ` +
        `(b) ${seconds(median(b.map((m) => m.wallMs)))}, (c) ${seconds(median(c.map((m) => m.wallMs)))}`,
    );
    console.log(`targets: (b) <= 1.3x COPY out, (a) <= 2x COPY out + COPY in, peak <= 1 GiB at 10M rows`);
    const rows = await withClient(dstUrl, (cl) =>
      cl.query<{ n: string }>('SELECT count(*) AS n FROM bench_target'),
    );
    console.log(`destination rows: ${rows.rows[0]?.n}`);
  } finally {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
