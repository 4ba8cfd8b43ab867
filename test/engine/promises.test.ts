// The engine's promises under the faults that broke them: a run killed mid-delivery followed by a model
// that changes back, SIGTERM during a long delivery, idempotency keys across changes, two runs on one
// state, a Sync pointed at another table, and broken state repaired by a full resync. Real PostgreSQL,
// a real HTTP API that honours Idempotency-Key, the real `syncline job` process where a kill matters.
// The kills, stops, checkpoints and the lease run with the snapshot in the diff store and in the warehouse.
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SyncSpec } from '../../crds/index.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, pgSettings, run, sql, tempState } from './helpers.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(REPO, 'bin', 'syncline.mjs');
const ROWS = 40;

/** Records by id; a repeated Idempotency-Key answers as the first time and changes nothing (Stripe's rule). */
class IdempotentApi {
  server!: Server;
  url = '';
  records = new Map<string, string>();
  seen = new Map<string, string>();
  /** Same key with another body: a change mistaken for an earlier one. */
  keyReuse: string[] = [];
  applied = 0;
  /** Requests past this many applied writes are held unanswered (a run then gets killed). */
  holdAfter = Infinity;
  /** Delay before each answer, ms. */
  delayMs = 0;
  private held: ServerResponse[] = [];
  onApplied: (() => void) | undefined;

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  reset(): void {
    this.holdAfter = Infinity;
    this.delayMs = 0;
    for (const res of this.held) res.destroy();
    this.held = [];
  }

  async stop(): Promise<void> {
    this.reset();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    if (this.applied >= this.holdAfter) {
      this.held.push(res);
      return;
    }
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    const id = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.split('/').pop() ?? '');
    const key = String(req.headers['idempotency-key'] ?? '');
    const fingerprint = `${req.method} ${id} ${body}`;
    const earlier = this.seen.get(key);
    if (earlier !== undefined) {
      if (earlier !== fingerprint) this.keyReuse.push(`${key}: ${earlier} then ${fingerprint}`);
      res.writeHead(200).end('{}');
      return;
    }
    this.seen.set(key, fingerprint);
    if (req.method === 'DELETE') this.records.delete(id);
    else this.records.set(id, (JSON.parse(body) as { v: string }).v);
    this.applied++;
    this.onApplied?.();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  }
}

let server: PostgresServer;
let srcUrl: string;
let dstUrl: string;
const api = new IdempotentApi();
const work = mkdtempSync(join(tmpdir(), 'syncline-promises-'));
let state = tempState();

beforeAll(async () => {
  server = await startPostgres();
  srcUrl = await server.createDatabase('src');
  dstUrl = await server.createDatabase('dst');
  await api.start();
});
afterAll(async () => {
  await api.stop();
  await server?.stop();
  state.remove();
  rmSync(work, { recursive: true, force: true });
});
beforeEach(async () => {
  api.reset();
  api.records.clear();
  api.seen.clear();
  api.keyReuse = [];
  api.applied = 0;
  state.remove();
  state = tempState();
  await sql(srcUrl, 'DROP TABLE IF EXISTS items; CREATE TABLE items (id bigint PRIMARY KEY, v text)');
  await sql(srcUrl, 'DROP SCHEMA IF EXISTS syncline CASCADE');
  location = 'diffStore';
  await sql(srcUrl, `INSERT INTO items SELECT g, 'a' || g FROM generate_series(1, ${ROWS}) g`);
});

const SNAPSHOTS = ['diffStore', 'warehouse'] as const;
/** Where the Syncs of the running test keep their snapshot. */
let location: (typeof SNAPSHOTS)[number] = 'diffStore';

function httpPlan(sync: Partial<SyncSpec> = {}, runner: Record<string, unknown> = {}) {
  const plan = makePlan({
    server,
    sourceDb: 'src',
    query: 'SELECT id, v FROM items',
    destination: {
      type: 'http',
      http: {
        url: `${api.url}/items/{{ row.id }}`,
        method: 'PUT',
        operations: { delete: { method: 'DELETE' } },
      },
    } as never,
    sync: {
      mode: 'upsert',
      deleteBehavior: 'delete',
      delivery: { concurrency: 1, maxRetries: 2 },
      safety: { maxDeleteShare: 1, allowLargeDeletes: true },
      snapshot: { location, schema: 'syncline' },
      ...sync,
    },
    stateUrl: state.url,
    name: 'promises',
  });
  return { ...plan, runner: { ...plan.runner, ...runner } };
}

async function model(): Promise<Map<string, string>> {
  const rows = await sql<{ id: string; v: string }>(srcUrl, 'SELECT id::text, v FROM items');
  return new Map(rows.map((r) => [r.id, r.v]));
}

/** `syncline job` on a plan; SIGKILLed once the API has applied `killAfter` writes, when set. */
function runJob(plan: unknown, options: { killAfter?: number; signal?: NodeJS.Signals } = {}) {
  const file = join(work, `plan-${Date.now()}-${Math.random()}.json`);
  writeFileSync(file, JSON.stringify(plan));
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>(
    (resolve, reject) => {
      const child = spawn(process.execPath, [BIN, 'job', '--plan', file], {
        cwd: REPO,
        env: {
          ...process.env,
          TMPDIR: work,
          SYNCLINE_SECRET_PG__PASSWORD: server.password,
          SYNCLINE_TERMINATION_LOG: join(work, 'termination'),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      if (options.killAfter !== undefined) {
        const target = api.applied + options.killAfter;
        api.holdAfter = target;
        api.onApplied = () => {
          if (api.applied >= target) {
            api.onApplied = undefined;
            setTimeout(() => child.kill(options.signal ?? 'SIGKILL'), 200);
          }
        };
      }
      child.once('error', reject);
      child.once('exit', (code, signal) => {
        api.reset();
        resolve({ code, signal, output });
      });
    },
  );
}

describe.each(SNAPSHOTS)('with the snapshot in the %s', (where) => {
  beforeEach(() => {
    location = where;
  });

  describe('a run killed mid-delivery', () => {
    it('is followed by a run that sends its keys again when the model changed back', async () => {
      expect((await runJob(httpPlan())).code).toBe(0);
      expect(api.records).toEqual(await model());
      // Every row changes to b; the run is killed after 10 of them arrived.
      await sql(srcUrl, `UPDATE items SET v = 'b' || id`);
      const killed = await runJob(httpPlan(), { killAfter: 10 });
      expect(killed.signal).toBe('SIGKILL');
      expect([...api.records.values()].filter((v) => v.startsWith('b'))).toHaveLength(10);
      // The model changes back to what the last commit holds: nothing differs from the snapshot.
      await sql(srcUrl, `UPDATE items SET v = 'a' || id`);
      expect((await runJob(httpPlan())).code).toBe(0);
      expect(api.records).toEqual(await model());
      expect(api.keyReuse).toEqual([]);
    });

    it('has deleted-and-re-added rows sent back, and never reuses an idempotency key for another change', async () => {
      expect((await runJob(httpPlan())).code).toBe(0);
      await sql(srcUrl, 'DELETE FROM items WHERE id <= 20');
      const killed = await runJob(httpPlan(), { killAfter: 8 });
      expect(killed.signal).toBe('SIGKILL');
      expect(api.records.size).toBe(ROWS - 8);
      // Re-inserted unchanged, then deleted and re-added once more: A, delete, A, delete, A.
      await sql(srcUrl, `INSERT INTO items SELECT g, 'a' || g FROM generate_series(1, 20) g`);
      expect((await runJob(httpPlan())).code).toBe(0);
      expect(api.records).toEqual(await model());
      await sql(srcUrl, 'DELETE FROM items WHERE id <= 5');
      expect((await runJob(httpPlan())).code).toBe(0);
      await sql(srcUrl, `INSERT INTO items SELECT g, 'a' || g FROM generate_series(1, 5) g`);
      expect((await runJob(httpPlan())).code).toBe(0);
      expect(api.records).toEqual(await model());
      expect(api.keyReuse).toEqual([]);
    });

    it('values changed A→B→A reach an API that honours idempotency keys', async () => {
      const plan = () => httpPlan();
      expect((await run(plan(), server)).result).toBe('Succeeded');
      await sql(srcUrl, `UPDATE items SET v = 'b' || id WHERE id <= 3`);
      expect((await run(plan(), server)).counts.changed).toBe(3);
      await sql(srcUrl, `UPDATE items SET v = 'a' || id WHERE id <= 3`);
      expect((await run(plan(), server)).counts.changed).toBe(3);
      expect(api.records).toEqual(await model());
      expect(api.keyReuse).toEqual([]);
    });
  });

  describe('a run asked to stop (SIGTERM)', () => {
    it('commits what was delivered, so the next run sends only the rest', async () => {
      expect((await runJob(httpPlan())).code).toBe(0);
      await sql(srcUrl, `UPDATE items SET v = 'c' || id`);
      api.delayMs = 20;
      const stopped = await runJob(httpPlan(), { killAfter: 15, signal: 'SIGTERM' });
      expect(stopped.signal === 'SIGTERM' || stopped.code !== 0).toBe(true);
      const summaries = readdirSync(join(state.dir, 'test', 'promises', 'runs')).filter((f) =>
        f.endsWith('.json'),
      );
      expect(summaries.length).toBeGreaterThanOrEqual(2);
      const next = await run(httpPlan(), server);
      expect(next.result).toBe('Succeeded');
      // 15 arrived and were committed at the stop; requests cancelled in flight may be sent again.
      expect(next.counts.changed).toBeLessThanOrEqual(ROWS - 15 + 1);
      expect(next.counts.changed).toBeGreaterThanOrEqual(ROWS - 15 - 1);
      expect(api.records).toEqual(await model());
    });

    it('in-process: the summary says what was delivered and committed', async () => {
      await sql(srcUrl, `INSERT INTO items SELECT g, 'x' FROM generate_series(${ROWS + 1}, 400) g`);
      const controller = new AbortController();
      api.delayMs = 5;
      api.onApplied = () => {
        if (api.applied >= 50) controller.abort();
      };
      const summary = await run(httpPlan(), server, { signal: controller.signal });
      api.onApplied = undefined;
      expect(summary.result).toBe('Failed');
      expect(summary.reason, summary.message).toBe('Aborted');
      expect(summary.message).toMatch(/delivered and committed/);
      // The request in flight when the run stopped is not confirmed.
      expect(summary.counts.delivered).toBeGreaterThanOrEqual(49);
      expect(summary.message).toMatch(/delivered and committed/);
      const next = await run(httpPlan(), server);
      expect(next.counts.added).toBe(400 - summary.counts.delivered);
    });

    it('commits checkpoints while delivering', async () => {
      await sql(srcUrl, `INSERT INTO items SELECT g, 'x' FROM generate_series(${ROWS + 1}, 200) g`);
      api.delayMs = 2;
      const summary = await run(
        httpPlan({ delivery: { batchSize: 10, concurrency: 1, maxRetries: 2 } }, { checkpointSeconds: 0.05 }),
        server,
      );
      expect(summary.result).toBe('Succeeded');
      expect(summary.checkpoints ?? 0).toBeGreaterThan(0);
      expect(api.records).toEqual(await model());
      const after = await run(httpPlan(), server);
      expect(after.counts).toMatchObject({ added: 0, changed: 0, removed: 0 });
      // Each checkpoint of a warehouse snapshot applied its rows to the table: the checksum holds after them.
      if (where === 'warehouse') expect(after.staging?.narrowed?.byChecksum).toBe(true);
    });
  });

  describe('the run lease', () => {
    it('lets one of two runs on one state deliver', async () => {
      api.delayMs = 10;
      const [a, b] = await Promise.all([run(httpPlan(), server), run(httpPlan(), server)]);
      const results = [a, b].map((s) => s.reason ?? s.result).sort();
      expect(results).toEqual(['LeaseHeld', 'Succeeded']);
      expect(api.applied).toBe(ROWS);
    });

    it.runIf(where === 'warehouse')(
      'refuses the commit of a run when another committed meanwhile (the generation moved), and the next run resends',
      async () => {
        expect((await run(httpPlan(), server)).result).toBe('Succeeded');
        await sql(srcUrl, `UPDATE items SET v = 'e' || id WHERE id <= 5`);
        api.delayMs = 100;
        let moved: Promise<unknown> | undefined;
        const raced = await run(httpPlan(), server, {
          onProgress: (p) => {
            // Another writer commits while this run delivers (a run that ignored the lease).
            if (p.phase === 'Delivering')
              moved ??= sql(srcUrl, 'UPDATE syncline.syncline_state SET generation = generation + 1');
          },
        });
        await moved;
        expect(raced.result).toBe('Failed');
        expect(raced.reason).toBe('ConcurrentCommit');
        expect(raced.stage).toBe('commit');
        expect(raced.message).toMatch(/generation of .*syncline_state.* moved/);
        api.delayMs = 0;
        const next = await run(httpPlan(), server);
        expect(next.result).toBe('Succeeded');
        expect(next.counts.changed).toBe(5);
        expect(api.records).toEqual(await model());
        expect(api.keyReuse).toEqual([]);
      },
    );
  });
});

describe('a Sync pointed at another place', () => {
  it('sends every row to the new table', async () => {
    const plan = (table: string) =>
      makePlan({
        server,
        sourceDb: 'src',
        query: 'SELECT id, v FROM items',
        destination: {
          type: 'postgres',
          postgres: { ...pgSettings(server, 'dst'), schema: 'public' },
        } as never,
        sync: { mode: 'upsert', target: { table } },
        stateUrl: state.url,
        name: 'moves',
      });
    expect((await run(plan('first_copy'), server)).counts.added).toBe(ROWS);
    const moved = await run(plan('second_copy'), server);
    expect(moved.counts.delivered).toBe(ROWS);
    const copied = await sql<{ n: string }>(dstUrl, 'SELECT count(*) AS n FROM second_copy');
    expect(Number(copied[0]?.n)).toBe(ROWS);
    expect((await run(plan('second_copy'), server)).counts.delivered).toBe(0);
  });
});

describe('broken state', () => {
  const folder = () => join(state.dir, 'test', 'promises');

  it.each([
    [
      'a truncated manifest',
      (dir: string) => writeFileSync(join(dir, 'manifest.json'), '{"version": 2, "ru'),
    ],
    ['an empty manifest', (dir: string) => writeFileSync(join(dir, 'manifest.json'), '')],
    [
      'a manifest of an unknown version',
      (dir: string) => writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ version: 9 })),
    ],
    [
      'a garbage snapshot',
      (dir: string) => {
        const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { snapshot: string };
        writeFileSync(join(dir, manifest.snapshot), 'garbage');
      },
    ],
  ])(
    '%s fails with DiffStoreCorrupt, and a full resync repairs it keeping the keys to delete',
    async (_, breakIt) => {
      expect((await run(httpPlan(), server)).result).toBe('Succeeded');
      // A second commit, so that an older snapshot may still be read.
      await sql(srcUrl, `UPDATE items SET v = 'd' || id WHERE id = 1`);
      expect((await run(httpPlan(), server)).result).toBe('Succeeded');
      breakIt(folder());
      await sql(srcUrl, 'DELETE FROM items WHERE id > 30');
      const failed = await run(httpPlan(), server);
      expect(failed.reason).toBe('DiffStoreCorrupt');
      expect(failed.message).toMatch(/file:\/\/.*request a full resync/);
      expect(failed.message).not.toMatch(/syncline-run-/); // never a temp path
      const repaired = await run({ ...httpPlan(), fullResync: true }, server);
      expect(repaired.result, repaired.message).toBe('Succeeded');
      expect(api.records).toEqual(await model());
      expect((await run(httpPlan(), server)).counts).toMatchObject({ added: 0, changed: 0, removed: 0 });
    },
  );
});
