// The warehouse snapshot benchmark (issue 15): a generated PostgreSQL model of N rows x 10 columns, synced
// to a PostgreSQL table with the snapshot in the diff store and in the warehouse (the source database),
// each resync next to the raw COPY of the same rows in the same run.
//
//   npm run bench:warehouse -- --rows 1000000 [--repeat 3] [--memory-limit 512MB]
//
// (b) resync, no change   vs  COPY (query) TO STDOUT
// (c) resync, 1% changed  vs  COPY (query) TO STDOUT
// Each sync runs as `syncline job` in a child process (as bench/engine.ts). The bytes that leave the source
// database are counted on the wire, by protocol message, in one more run of each step whose source
// connections go through a counting proxy (bench/wire.ts); the timed runs connect directly.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { RunSummary } from '../core/summary.ts';
import type { SyncSpec } from '../crds/index.ts';
import { startPostgres, type PostgresServer } from '../test/stack/postgres.ts';
import { runSyncJob } from './job.ts';
import {
  benchPlan,
  copyOut,
  generate,
  median,
  seconds,
  timed,
  withClient,
  type PgEndpoint,
} from './pg-model.ts';
import { startWireProxy, type WireCount, type WireProxy } from './wire.ts';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    repeat: { type: 'string', default: '3' },
    'memory-limit': { type: 'string' },
  },
});
const ROWS = Number(args.rows);
const REPEAT = Math.max(1, Number(args.repeat));
const work = mkdtempSync(join(tmpdir(), 'syncline-bench-warehouse-'));
const KINDS = ['diffStore', 'warehouse'] as const;
type Kind = (typeof KINDS)[number];

interface Measured {
  raw: number;
  summary: RunSummary;
}

interface Bench {
  server: PostgresServer;
  srcUrl: string;
  direct: PgEndpoint;
  proxy: WireProxy;
  runs: number;
}

function sync(bench: Bench, kind: Kind, stateUrl: string, viaProxy: boolean): Promise<RunSummary> {
  bench.runs++;
  const snapshot: Partial<SyncSpec> = { snapshot: { location: kind, schema: 'syncline' } };
  const source = viaProxy ? { ...bench.direct, port: bench.proxy.port } : bench.direct;
  const plan = benchPlan({
    source,
    destination: bench.direct,
    stateUrl,
    runId: `bench-${kind}-${bench.runs}`,
    tmpDir: work,
    sync: snapshot,
    memoryLimit: args['memory-limit'],
  });
  return runSyncJob(plan, {
    dir: work,
    name: plan.runId,
    env: { SYNCLINE_SECRET_PG__PASSWORD: bench.server.password },
  }).then((r) => r.summary);
}

const CHANGE_1_PERCENT = `UPDATE bench_model SET note = note || '!' WHERE id % 100 = 0`;

/** The steps of one snapshot kind: first sync, (b) and (c) timed, then each once more through the proxy. */
async function measure(bench: Bench, kind: Kind) {
  await withClient(bench.srcUrl, (c) => c.query('DROP SCHEMA IF EXISTS syncline CASCADE'));
  await withClient(bench.srcUrl.replace(/\/src$/, '/dst'), (c) =>
    c.query('DROP TABLE IF EXISTS bench_target'),
  );
  const stateUrl = pathToFileURL(join(work, `state-${kind}`)).href;
  const first = await timed(() => sync(bench, kind, stateUrl, false));
  // The diff store's first resync moves its snapshot to PostgreSQL's hashes (once per Sync): not (b).
  const settle = kind === 'diffStore' ? await sync(bench, kind, stateUrl, false) : undefined;
  const b: Measured[] = [];
  for (let i = 0; i < REPEAT; i++) {
    const raw = await copyOut(bench.srcUrl, work);
    b.push({ raw, summary: await sync(bench, kind, stateUrl, false) });
  }
  const c: Measured[] = [];
  for (let i = 0; i < REPEAT; i++) {
    await withClient(bench.srcUrl, (cl) => cl.query(CHANGE_1_PERCENT));
    const raw = await copyOut(bench.srcUrl, work);
    c.push({ raw, summary: await sync(bench, kind, stateUrl, false) });
  }
  bench.proxy.take();
  const bWire = { summary: await sync(bench, kind, stateUrl, true), wire: bench.proxy.take() };
  await withClient(bench.srcUrl, (cl) => cl.query(CHANGE_1_PERCENT));
  const cWire = { summary: await sync(bench, kind, stateUrl, true), wire: bench.proxy.take() };
  return { first: first.value, firstMs: first.ms, settle, b, c, bWire, cWire };
}

function how(summary: RunSummary): string {
  const s = summary.staging;
  if (s?.narrowed) {
    return s.narrowed.byChecksum
      ? 'checksum only'
      : `narrowed: ${s.narrowed.rows} rows + ${s.narrowed.previousRows} snapshot rows`;
  }
  if (s?.keysOnly) return `keys+hashes, ${s.fetchedRows ?? 0} rows`;
  return 'every row';
}

function row(label: string, runs: Measured[]): string {
  const syncMs = median(runs.map((m) => m.summary.timings.totalMs ?? 0));
  const rawMs = median(runs.map((m) => m.raw));
  const phase = (key: keyof RunSummary['timings']) =>
    Math.round(median(runs.map((m) => m.summary.timings[key] ?? 0)));
  const each = runs.map((m) => `${((m.summary.timings.totalMs ?? 0) / m.raw).toFixed(2)}x`).join(' ');
  return (
    `${label.padEnd(34)} sync ${seconds(syncMs)}  COPY out ${seconds(rawMs)}  ratio ${(syncMs / rawMs).toFixed(2)}x ` +
    `(runs ${each})  [query ${phase('queryMs')}ms, diff ${phase('diffMs')}ms, deliver ${phase('deliverMs')}ms, ` +
    `commit ${phase('commitMs')}ms; ${how(runs[runs.length - 1]!.summary)}; delivered ${runs[runs.length - 1]!.summary.counts.delivered}]`
  );
}

function wireLine(label: string, wire: WireCount, summary: RunSummary): string {
  const m = (t: string) => wire.messages[t] ?? { count: 0, bytes: 0 };
  const copy = m('d');
  const data = m('D');
  return (
    `${label.padEnd(34)} ${wire.bytes.toLocaleString('en')} bytes from PostgreSQL: CopyData ${copy.count.toLocaleString('en')} ` +
    `messages / ${copy.bytes.toLocaleString('en')} bytes, DataRow ${data.count} / ${data.bytes.toLocaleString('en')} bytes ` +
    `(${how(summary)})`
  );
}

async function main(): Promise<void> {
  console.log(
    `syncline warehouse-snapshot benchmark: ${ROWS.toLocaleString('en')} rows x 10 columns, PostgreSQL -> PostgreSQL`,
  );
  const server = await startPostgres();
  const proxy = await startWireProxy({ host: server.host, port: server.port });
  try {
    const srcUrl = await server.createDatabase('src');
    await server.createDatabase('dst');
    const gen = await timed(() => generate(srcUrl, ROWS));
    console.log(`generated the model in ${(gen.ms / 1000).toFixed(1)}s`);
    const bench: Bench = {
      server,
      srcUrl,
      direct: { host: server.host, port: server.port, user: server.user },
      proxy,
      runs: 0,
    };
    // The raw COPY's own bytes on the wire, for scale.
    const viaProxy = srcUrl.replace(`:${server.port}/`, `:${proxy.port}/`);
    proxy.take();
    await copyOut(viaProxy, work);
    const copyWire = proxy.take();
    const results = [];
    for (const kind of KINDS) results.push({ kind, ...(await measure(bench, kind)) });
    console.log('');
    for (const r of results) {
      console.log(`snapshot in the ${r.kind}: first sync ${seconds(r.firstMs)} wall (${how(r.first)})`);
      console.log(row(`  (b) resync, no change`, r.b));
      console.log(row(`  (c) resync, 1% changed`, r.c));
    }
    console.log('');
    console.log(wireLine('raw COPY out', copyWire, results[0]!.first));
    for (const r of results) {
      console.log(wireLine(`(b) ${r.kind}`, r.bWire.wire, r.bWire.summary));
      console.log(wireLine(`(c) ${r.kind}`, r.cWire.wire, r.cWire.summary));
    }
    console.log('');
    console.log(
      `medians of ${REPEAT} run(s); targets: (b) <= 0.3x COPY out, (c) <= 0.6x, (b) no row data on the wire`,
    );
  } finally {
    await proxy.close();
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
