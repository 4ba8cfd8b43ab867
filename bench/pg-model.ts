// The generated PostgreSQL model the engine benchmarks sync (bench/engine.ts, bench/warehouse.ts): N rows
// x 10 columns (bigint key, text, numeric, integer, double, boolean, timestamptz), its raw COPY out (the
// baseline), and the plan of a sync of it to a PostgreSQL table.
import { createWriteStream, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { runPlan, type RunPlan } from '../core/plan.ts';
import type { SyncSpec } from '../crds/index.ts';

export const MODEL_QUERY =
  'SELECT id, name, email, amount, qty, score, active, created_at, category, note FROM bench_model';

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { ms: performance.now() - start, value };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(2)}s`;

/** Table bench_model of `rows` rows in the database at `url`. */
export async function generate(url: string, rows: number): Promise<void> {
  await withClient(url, async (c) => {
    await c.query(`CREATE TABLE bench_model (
      id bigint PRIMARY KEY, name text, email text, amount numeric(12,2), qty integer, score double precision,
      active boolean, created_at timestamptz, category text, note text)`);
    await c.query(`INSERT INTO bench_model
      SELECT g, 'customer ' || g, 'c' || g || '@example.com', (g % 100000) / 100.0, g % 1000, g / 7.0,
             g % 3 = 0, timestamptz '2024-01-01' + g * interval '1 second', 'cat-' || (g % 20), md5(g::text)
      FROM generate_series(1, ${rows}) g`);
    await c.query('ANALYZE bench_model');
  });
}

/** The raw COPY of the model's rows out of PostgreSQL to a local file (the baseline of a resync). */
export async function copyOut(url: string, dir: string): Promise<number> {
  const file = join(dir, 'copy-out.bin');
  const out = await timed(() =>
    withClient(url, async (c) =>
      pipeline(c.query(copyTo(`COPY (${MODEL_QUERY}) TO STDOUT`)), createWriteStream(file)),
    ),
  );
  rmSync(file, { force: true });
  return out.ms;
}

export interface PgEndpoint {
  host: string;
  port: number;
  user: string;
}

/** A sync of the model to table bench_target (upsert), its source reached at `source`. */
export function benchPlan(input: {
  source: PgEndpoint;
  destination: PgEndpoint;
  stateUrl: string;
  runId: string;
  tmpDir: string;
  sync?: Partial<SyncSpec>;
  memoryLimit?: string | undefined;
}): RunPlan {
  const pgConn = (at: PgEndpoint, database: string) => ({
    host: at.host,
    port: at.port,
    database,
    user: at.user,
    password: { secretKeyRef: { name: 'pg', key: 'password' } },
    tls: { mode: 'disable' as const },
  });
  return runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId: input.runId,
    namespace: 'bench',
    sync: {
      name: 'bench-sync',
      spec: {
        modelRef: { name: 'bench' },
        destinationRef: { name: 'pg' },
        mode: 'upsert',
        target: { table: 'bench_target' },
        ...input.sync,
      },
    },
    model: { name: 'bench', spec: { sourceRef: { name: 'pg' }, query: MODEL_QUERY, primaryKey: 'id' } },
    source: { name: 'pg', spec: { type: 'postgres', postgres: pgConn(input.source, 'src') } },
    destination: {
      name: 'pg',
      spec: { type: 'postgres', postgres: { ...pgConn(input.destination, 'dst'), schema: 'public' } },
    },
    diffStore: { url: input.stateUrl },
    runner: {
      debuggerRetentionDays: 7,
      tmpDir: input.tmpDir,
      ...(input.memoryLimit ? { memoryLimit: input.memoryLimit } : {}),
    },
  });
}
