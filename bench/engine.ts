// The engine benchmark (issue 3): a generated PostgreSQL model of N rows x 10 columns synced to a
// PostgreSQL table, each step next to raw COPY of the same rows in the same run.
//
//   npm run bench -- --rows 1000000
//
// (a) first sync        vs  COPY (query) TO STDOUT + COPY ... FROM STDIN
// (b) resync, no change vs  COPY (query) TO STDOUT
// (c) resync, 1% changed vs COPY (query) TO STDOUT
// Each sync runs as `syncline job` in a child process; its peak memory is the kernel's high-water mark
// of resident memory (VmHWM), which includes DuckDB's native memory.
import { spawn } from 'node:child_process';
import {
  createReadStream,
  createWriteStream,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { runPlan } from '../runner/plan.ts';
import type { RunSummary } from '../runner/summary.ts';
import { startPostgres, type PostgresServer } from '../test/stack/postgres.ts';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    'memory-limit': { type: 'string' },
    'batch-size': { type: 'string' },
    concurrency: { type: 'string' },
  },
});
const ROWS = Number(args.rows);
const REPO = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'syncline-bench-'));
const MODEL_QUERY =
  'SELECT id, name, email, amount, qty, score, active, created_at, category, note FROM bench_model';

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { ms: performance.now() - start, value };
}

async function generate(url: string): Promise<void> {
  await withClient(url, async (c) => {
    await c.query(`CREATE TABLE bench_model (
      id bigint PRIMARY KEY, name text, email text, amount numeric(12,2), qty integer, score double precision,
      active boolean, created_at timestamptz, category text, note text)`);
    await c.query(`INSERT INTO bench_model
      SELECT g, 'customer ' || g, 'c' || g || '@example.com', (g % 100000) / 100.0, g % 1000, g / 7.0,
             g % 3 = 0, timestamptz '2024-01-01' + g * interval '1 second', 'cat-' || (g % 20), md5(g::text)
      FROM generate_series(1, ${ROWS}) g`);
    await c.query('ANALYZE bench_model');
  });
}

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

function vmHwmKb(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined; // the process has exited
  }
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
  const planFile = join(work, `${runId}.json`);
  writeFileSync(planFile, JSON.stringify(plan));
  const termination = join(work, `${runId}.termination`);
  const started = performance.now();
  const child = spawn(process.execPath, [join(REPO, 'bin', 'syncline.mjs'), 'job', '--plan', planFile], {
    env: {
      ...process.env,
      SYNCLINE_SECRET_PG__PASSWORD: server.password,
      SYNCLINE_TERMINATION_LOG: termination,
      SYNCLINE_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  let peakKb = 0;
  const sampler = setInterval(() => {
    peakKb = Math.max(peakKb, vmHwmKb(child.pid as number) ?? 0);
  }, 20);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearInterval(sampler);
  const wallMs = performance.now() - started;
  const summary = JSON.parse(readFileSync(termination, 'utf8')) as RunSummary;
  if (code !== 0) throw new Error(`sync ${runId} failed: ${summary.reason}: ${summary.message}`);
  return { summary, wallMs, peakMb: peakKb / 1024 };
}

function row(
  label: string,
  syncMs: number,
  rawMs: number,
  rawLabel: string,
  peakMb: number,
  summary: RunSummary,
): string {
  const t = summary.timings;
  return (
    `${label.padEnd(24)} sync ${(syncMs / 1000).toFixed(2)}s  ${rawLabel} ${(rawMs / 1000).toFixed(2)}s  ` +
    `ratio ${(syncMs / rawMs).toFixed(2)}x  peak RSS ${peakMb.toFixed(0)} MiB  ` +
    `[query ${t.queryMs}ms, validate ${t.validateMs}ms, diff ${t.diffMs}ms, deliver ${t.deliverMs}ms, commit ${t.commitMs}ms; ` +
    `delivered ${summary.counts.delivered}]`
  );
}

async function main(): Promise<void> {
  console.log(
    `syncline engine benchmark: ${ROWS.toLocaleString('en')} rows x 10 columns, PostgreSQL -> PostgreSQL`,
  );
  const server = await startPostgres();
  try {
    const srcUrl = await server.createDatabase('src');
    const dstUrl = await server.createDatabase('dst');
    const gen = await timed(() => generate(srcUrl));
    console.log(`generated the model in ${(gen.ms / 1000).toFixed(1)}s`);
    await withClient(dstUrl, (c) =>
      c.query(`CREATE TABLE bench_target_shape (id bigint, name text, email text, amount numeric(12,2), qty integer,
        score double precision, active boolean, created_at timestamptz, category text, note text)`),
    );
    const stateUrl = pathToFileURL(join(work, 'state')).href;

    const rawA = await rawCopy(srcUrl, dstUrl, true);
    const a = await syncJob(server, stateUrl, 'bench-a');
    const rawB = await rawCopy(srcUrl, dstUrl, false);
    const b = await syncJob(server, stateUrl, 'bench-b');
    await withClient(srcUrl, (c) => c.query(`UPDATE bench_model SET note = note || '!' WHERE id % 100 = 0`));
    const rawC = await rawCopy(srcUrl, dstUrl, false);
    const c = await syncJob(server, stateUrl, 'bench-c');

    // The engine's own time (from the summary) excludes Node's start-up in the child process.
    const engineMs = (s: RunSummary) => s.timings.totalMs ?? 0;
    console.log('');
    console.log(
      row('(a) first sync', engineMs(a.summary), rawA.outMs + rawA.inMs, 'COPY out+in', a.peakMb, a.summary),
    );
    console.log(
      row('(b) resync, no change', engineMs(b.summary), rawB.outMs, 'COPY out', b.peakMb, b.summary),
    );
    console.log(
      row('(c) resync, 1% changed', engineMs(c.summary), rawC.outMs, 'COPY out', c.peakMb, c.summary),
    );
    console.log('');
    console.log(
      `process wall time (incl. Node start-up): (a) ${(a.wallMs / 1000).toFixed(2)}s, (b) ${(b.wallMs / 1000).toFixed(2)}s, (c) ${(c.wallMs / 1000).toFixed(2)}s`,
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
