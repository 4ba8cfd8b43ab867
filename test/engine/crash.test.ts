// Crash safety: the runner process is SIGKILLed at random points during delivery, run after run, while
// the model keeps changing. One clean run afterwards must leave the destination equal to the model.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, pgSettings, sql, tempState } from './helpers.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(REPO, 'bin', 'syncline.mjs');
const KILLS = 6;

let server: PostgresServer;
let srcUrl: string;
let dstUrl: string;
const state = tempState();
const work = mkdtempSync(join(tmpdir(), 'syncline-crash-'));

beforeAll(async () => {
  server = await startPostgres();
  srcUrl = await server.createDatabase('src');
  dstUrl = await server.createDatabase('dst');
  await sql(
    srcUrl,
    'CREATE TABLE items (id bigint PRIMARY KEY, label text, amount numeric(12,2), tags text[], meta jsonb)',
  );
  await sql(
    srcUrl,
    `INSERT INTO items SELECT g, 'item ' || g, g * 1.25, ARRAY['t' || (g % 7)], jsonb_build_object('n', g) FROM generate_series(1, 20000) g`,
  );
});
afterAll(async () => {
  await server?.stop();
  state.remove();
  rmSync(work, { recursive: true, force: true });
});

/** A seeded generator, so that a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function planFile(n: number): string {
  const plan = makePlan({
    server,
    sourceDb: 'src',
    query: 'SELECT id, label, amount, tags, meta FROM items',
    destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
    sync: {
      mode: 'upsert',
      deleteBehavior: 'delete',
      target: { table: 'items_copy' },
      delivery: { batchSize: 250, concurrency: 2, maxRetries: 5 },
      safety: { maxDeleteShare: 1, allowLargeDeletes: true },
    },
    stateUrl: state.url,
    name: 'crash-sync',
  });
  const file = join(work, `plan-${n}.json`);
  writeFileSync(file, JSON.stringify(plan));
  return file;
}

/** Run `syncline job`; when `killAfterMs` is set, SIGKILL it that long after delivery started. */
function runJob(
  file: string,
  killAfterMs?: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; killedInDelivery: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'job', '--plan', file], {
      cwd: REPO,
      env: {
        ...process.env,
        TMPDIR: work,
        SYNCLINE_SECRET_PG__PASSWORD: server.password,
        SYNCLINE_TERMINATION_LOG: join(work, 'termination'),
        SYNCLINE_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let killedInDelivery = false;
    let out = '';
    child.stdout.on('data', (data: Buffer) => {
      out += data.toString();
      if (killAfterMs !== undefined && !killedInDelivery && out.includes('phase Delivering')) {
        killedInDelivery = true;
        setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      }
    });
    child.stderr.on('data', (data: Buffer) => (out += data.toString()));
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal, killedInDelivery }));
  });
}

describe('crash safety', () => {
  it('after runs killed during delivery, one clean run makes the destination equal the model', async () => {
    const seed = Number(process.env['SYNCLINE_CRASH_SEED'] ?? Date.now() % 100000);
    const next = random(seed);
    let killed = 0;
    for (let i = 0; i < KILLS; i++) {
      // The model moves on between runs: updates, deletes and inserts.
      const base = Math.floor(next() * 15000);
      await sql(
        srcUrl,
        `UPDATE items SET label = label || '+', amount = amount + 1 WHERE id BETWEEN ${base} AND ${base + 1500}`,
      );
      await sql(srcUrl, `DELETE FROM items WHERE id BETWEEN ${base + 2000} AND ${base + 2100}`);
      await sql(
        srcUrl,
        `INSERT INTO items SELECT g, 'new ' || g, 1, '{}', '{}' FROM generate_series(${30000 + i * 500}, ${30000 + i * 500 + 300}) g`,
      );
      const result = await runJob(planFile(i), Math.floor(next() * 400));
      if (result.signal === 'SIGKILL') killed++;
    }
    expect(killed, `seed ${seed}: most runs should have been killed mid-delivery`).toBeGreaterThanOrEqual(
      KILLS / 2,
    );

    const clean = await runJob(planFile(99));
    expect(clean.code, `seed ${seed}`).toBe(0);
    const missing = await sql(dstUrl, 'SELECT 1'); // connection sanity
    expect(missing).toHaveLength(1);
    // Compare through text so that both databases' values are compared as PostgreSQL renders them.
    const model = await sql<{ r: string }>(
      srcUrl,
      'SELECT (id, label, amount, tags, meta)::text AS r FROM items ORDER BY id',
    );
    const copy = await sql<{ r: string }>(
      dstUrl,
      'SELECT (id, label, amount, tags, meta)::text AS r FROM items_copy ORDER BY id',
    );
    expect(copy.length, `seed ${seed}`).toBe(model.length);
    expect(
      copy.map((r) => r.r),
      `seed ${seed}`,
    ).toEqual(model.map((r) => r.r));
  });
});
