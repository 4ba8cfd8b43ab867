// The snapshot kept in BigQuery (Sync.spec.snapshot.location: warehouse), through the real engine: the
// model in the BigQuery emulator, the destination a real PostgreSQL. The diff runs in BigQuery SQL and
// only the rows that may differ leave it; the rules of the bucket snapshot hold unchanged.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../core/logger.ts';
import { secretResolver } from '../../../core/secrets.ts';
import { executeRun } from '../../../runner/run.ts';
import type { Mapping, SyncSpec } from '../../../crds/index.ts';
import { snapshotNames } from '../../../connectors/bigquery/snapshot-tables.ts';
import { pgSettings, sql, tempState } from '../../engine/helpers.ts';
import { startPostgres, type PostgresServer } from '../../stack/postgres.ts';
import { bigqueryPlan, bqQuery, runBigQuery, startBigQueryStack, type BigQueryStack } from './harness.ts';

let pg: PostgresServer;
let dstUrl: string;
let stack: BigQueryStack;
const states: { remove(): void }[] = [];
let counter = 0;

beforeAll(async () => {
  pg = await startPostgres();
  dstUrl = await pg.createDatabase('dst');
});
afterAll(async () => {
  await pg?.stop();
  for (const s of states) s.remove();
});
// A fresh emulator for each case: the emulator never gives memory back (it held 20 GB after six of these
// cases, each of at most 200 rows), so one per file would grow with every case added here.
beforeEach(async () => {
  stack = await startBigQueryStack();
});
afterEach(async () => {
  await stack?.stop();
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
    target,
    names: snapshotNames('syncline', 'test', name),
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

// The emulator answers each job in about a second on a loaded machine, and joins without an index
// (test/warehouses/bigquery/README.md): the cases keep their models small and get more time.
describe('a BigQuery warehouse snapshot', { timeout: 600_000 }, () => {
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

  it('sends only the 1% that changed, values moving between keys, and a key that left and came back', async () => {
    const s = await scenario(100, { mode: 'upsert', deleteBehavior: 'delete' });
    await s.run();
    await s.source(`UPDATE $T SET name = CONCAT(name, '!') WHERE MOD(id, 100) = 0`);
    const changed = await s.run();
    expect(changed.counts).toMatchObject({ changed: 1, delivered: 1 });
    expect(changed.staging?.narrowed).toEqual({ rows: 1, previousRows: 1, byChecksum: false });
    // Two rows swap their values: the set of hashes is unchanged, the keys they belong to are not.
    await s.source(`UPDATE $T SET name = IF(id = 3, 'name 4', 'name 3') WHERE id IN (3, 4)`);
    expect((await s.run()).counts).toMatchObject({ changed: 2, delivered: 2 });
    await s.source(
      `INSERT INTO $T (id, name, amount, tags, meta, seen_at) SELECT 101, name, amount, tags, meta, seen_at FROM $T WHERE id = 7`,
    );
    await s.source(`DELETE FROM $T WHERE id = 7`);
    expect((await s.run()).counts).toMatchObject({ added: 1, removed: 1, delivered: 2 });
    expect(await s.same()).toBe(true);
  });

  it('keeps rejected rows pending and lists them in the rejections table, until they go through', async () => {
    const s = await scenario(6, { mode: 'update', deleteBehavior: 'delete' });
    await s.dest(
      'CREATE TABLE $D (id bigint PRIMARY KEY, name text, amount numeric, tags text[], meta jsonb, seen_at timestamptz)',
    );
    await s.dest(`INSERT INTO $D (id, name) SELECT g, 'old' FROM generate_series(1, 4) g`);
    const first = await s.run();
    expect(first.result).toBe('PartiallySucceeded');
    expect(first.counts).toMatchObject({ delivered: 4, failed: 2 });
    const rejections = () =>
      bqQuery(
        stack.bq,
        `SELECT key, reason, message, run_id FROM syncline.${s.names.rejections} ORDER BY key`,
      );
    const refused = await rejections();
    expect(refused.map((r) => [r['key'], r['reason'], r['run_id']])).toEqual([
      ['5', 'RowsRejected', first.runId],
      ['6', 'RowsRejected', first.runId],
    ]);
    expect(String(refused[0]?.['message'])).toMatch(/no record with key 5/);
    // Stale rows: no checksum can prove the model unchanged; the two go again, and fail again.
    const second = await s.run();
    expect(second.staging?.narrowed).toEqual({ rows: 2, previousRows: 2, byChecksum: false });
    expect(second.counts).toMatchObject({ added: 2, failed: 2, delivered: 0 });
    await s.dest(`INSERT INTO $D (id, name) VALUES (5, 'old'), (6, 'old')`);
    const third = await s.run();
    expect(third.counts).toMatchObject({ added: 2, delivered: 2, failed: 0 });
    expect(await rejections()).toEqual([]);
    expect((await s.run()).staging?.narrowed?.byChecksum).toBe(true);
  });

  it('resends only the rows with a value of a newly mapped field, and stages every row in mode all', async () => {
    const mappings = (extra: Mapping[] = []): Mapping[] => [
      { to: 'id', from: 'id', valueType: 'string' },
      { to: 'name', from: 'name', valueType: 'string' },
      ...extra,
    ];
    const s = await scenario(30, { mode: 'upsert', mappings: mappings() });
    await s.run();
    await s.source(`UPDATE $T SET amount = NULL WHERE id > 10`);
    await s.source(`UPDATE $T SET name = 'edited' WHERE id = 20`);
    await s.dest(`ALTER TABLE $D ADD COLUMN amount numeric`);
    const wider = { mappings: mappings([{ to: 'amount', from: 'amount', valueType: 'string' }]) };
    const widened = await s.run(wider);
    expect(widened.counts).toMatchObject({ changed: 11, delivered: 11 });
    expect(widened.staging?.narrowed).toBeUndefined();
    const again = await s.run(wider);
    expect(again.counts.changed).toBe(0);
    expect(again.staging?.narrowed?.byChecksum).toBe(true);
    const all = await s.run({ ...wider, mode: 'all' });
    expect(all.counts).toMatchObject({ delivered: 30 });
    expect(all.staging?.narrowed).toBeUndefined();
  });

  it('resends every row when a column type changes or a column is added, and stops on a changed primary key', async () => {
    const s = await scenario(20, { mode: 'upsert' });
    await s.run();
    const retyped = await s.run(
      {},
      { query: `SELECT id, name, CAST(amount AS FLOAT64) AS amount, tags, meta, seen_at FROM $T` },
    );
    expect(retyped.staging?.narrowed).toBeUndefined();
    expect(retyped.counts).toMatchObject({ changed: 20, delivered: 20 });
    expect((await s.run()).counts).toMatchObject({ changed: 20 });
    await s.dest(`ALTER TABLE $D ADD COLUMN extra bigint`);
    const wider = await s.run({}, { query: `SELECT ${COLUMNS}, 1 AS extra FROM $T` });
    expect(wider.counts).toMatchObject({ changed: 20, delivered: 20 });
    const rekeyed = await s.run({}, { query: `SELECT ${COLUMNS}, 1 AS extra FROM $T`, primaryKey: 'name' });
    expect(rekeyed.result).toBe('Failed');
    expect(rekeyed.reason).toBe('PrimaryKeyChanged');
    expect(rekeyed.counts.delivered).toBe(0);
  });

  it('names duplicate and null keys, and holds a key duplicated with skip', async () => {
    const twice = `SELECT ${COLUMNS} FROM $T UNION ALL SELECT ${COLUMNS} FROM $T WHERE name = 'twice'`;
    const s = await scenario(30, { mode: 'upsert', deleteBehavior: 'delete' });
    await s.run({}, { query: twice });
    expect((await s.run({}, { query: twice })).staging?.narrowed?.byChecksum).toBe(true);
    // An unchanged row duplicated: only the key's count tells.
    await s.source(`UPDATE $T SET name = 'twice' WHERE id = 9`);
    await s.source(`UPDATE $T SET name = 'edited' WHERE id = 8`);
    const failed = await s.run({}, { query: twice });
    expect(failed.reason).toBe('DuplicatePrimaryKey');
    expect(failed.message).toMatch(/first 1: 9\b/);
    const skipped = await s.run({ invalidPrimaryKeys: 'skip' }, { query: twice });
    expect(skipped.counts).toMatchObject({ changed: 1, removed: 0, delivered: 1, skipped: 2 });
    expect(skipped.invalidKeys).toMatchObject({ duplicateCount: 1, sample: ['9'] });
    expect(await s.dest(`SELECT id::int AS id, name FROM $D WHERE id IN (8, 9) ORDER BY id`)).toEqual([
      { id: 8, name: 'edited' },
      { id: 9, name: 'name 9' },
    ]);
    await s.source(`UPDATE $T SET name = 'once' WHERE id = 9`);
    const released = await s.run({ invalidPrimaryKeys: 'skip' }, { query: twice });
    expect(released.counts).toMatchObject({ changed: 1, delivered: 1, skipped: 0 });
    expect(await s.same()).toBe(true);
    const withNull = await s.run(
      {},
      {
        query: `SELECT IF(id = 1, CAST(NULL AS INT64), id) AS id, name, amount, tags, meta, seen_at FROM $T`,
      },
    );
    expect(withNull.reason, withNull.message).toBe('NullPrimaryKey');
    expect(withNull.message).toContain('<null>');
  });

  it('compares STRING keys in BigQuery exactly as the engine does', async () => {
    const s = await scenario(20, { mode: 'upsert', deleteBehavior: 'delete' });
    const keyed = `SELECT CONCAT('k', CAST(id AS STRING), IF(id = 3, ' ', IF(id = 4, 'ü', IF(id = 5, 'A', '')))) AS code, name FROM $T`;
    const run = () => s.run({ target: { table: `${s.target}_keyed` } }, { query: keyed, primaryKey: 'code' });
    expect((await run()).counts.added).toBe(20);
    expect((await run()).staging?.narrowed?.byChecksum).toBe(true);
    await s.source(`UPDATE $T SET name = 'changed' WHERE id = 3`);
    await s.source(`DELETE FROM $T WHERE id = 4`);
    const changed = await run();
    expect(changed.counts).toMatchObject({ changed: 1, removed: 1, delivered: 2 });
    expect(changed.staging?.narrowed).toEqual({ rows: 1, previousRows: 2, byChecksum: false });
  });

  it('trips the safety rail before anything is sent', async () => {
    const s = await scenario(10, { mode: 'upsert', deleteBehavior: 'delete' });
    await s.run();
    await s.source('DELETE FROM $T WHERE id <= 6');
    const stopped = await s.run();
    expect(stopped.reason).toBe('SafetyRailTripped');
    expect(stopped.message).toContain('6 of the 10 records');
    expect(await s.dest('SELECT count(*)::int AS n FROM $D')).toEqual([{ n: 10 }]);
  });
});

/** Records by id, over HTTP; requests past `holdAfter` applied writes are held unanswered. */
class RecordsApi {
  records = new Map<string, string>();
  applied = 0;
  holdAfter = Infinity;
  delayMs = 0;
  onApplied: (() => void) | undefined;
  url = '';
  private server: Server | undefined;
  private held: ServerResponse[] = [];

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  release(): void {
    this.holdAfter = Infinity;
    for (const res of this.held) res.destroy();
    this.held = [];
  }

  async stop(): Promise<void> {
    this.release();
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
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
    if (req.method === 'DELETE') this.records.delete(id);
    else this.records.set(id, (JSON.parse(body) as { v: string }).v);
    this.applied++;
    this.onApplied?.();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  }
}

describe('a BigQuery warehouse snapshot under faults', { timeout: 600_000 }, () => {
  const api = new RecordsApi();
  const work = mkdtempSync(join(tmpdir(), 'syncline-bq-kills-'));
  const REPO = fileURLToPath(new URL('../../..', import.meta.url));
  const BIN = join(REPO, 'bin', 'syncline.mjs');
  const ROWS = 40;
  let items = '';
  let state = tempState();

  beforeAll(async () => {
    await api.start();
  });
  afterAll(async () => {
    await api.stop();
    state.remove();
    rmSync(work, { recursive: true, force: true });
  });
  beforeEach(async () => {
    counter++;
    items = `analytics.items_${counter}`;
    api.records.clear();
    api.applied = 0;
    state.remove();
    state = tempState();
    await bqQuery(stack.bq, `CREATE TABLE ${items} (id INT64, v STRING)`);
    await bqQuery(
      stack.bq,
      `INSERT INTO ${items} (id, v) SELECT g, CONCAT('a', CAST(g AS STRING)) FROM UNNEST(GENERATE_ARRAY(1, ${ROWS})) AS g`,
    );
  });

  const plan = () =>
    bigqueryPlan({
      stack,
      query: `SELECT id, v FROM ${items}`,
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
        snapshot: WAREHOUSE,
      },
      stateUrl: state.url,
      name: `bq-faults-${counter}`,
    });

  async function model(): Promise<Map<string, string>> {
    const rows = await bqQuery(stack.bq, `SELECT CAST(id AS STRING) AS id, v FROM ${items}`);
    return new Map(rows.map((r) => [String(r['id']), String(r['v'])]));
  }

  /** `syncline job` on a plan, SIGKILLed once the API has applied `killAfter` more writes. */
  function killedJob(killAfter: number) {
    const file = join(work, `plan-${Date.now()}.json`);
    writeFileSync(file, JSON.stringify(plan()));
    return new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, 'job', '--plan', file], {
        cwd: REPO,
        env: { ...process.env, TMPDIR: work, SYNCLINE_TERMINATION_LOG: join(work, 'termination') },
        stdio: 'ignore',
      });
      const target = api.applied + killAfter;
      api.holdAfter = target;
      api.onApplied = () => {
        if (api.applied >= target) {
          api.onApplied = undefined;
          setTimeout(() => child.kill('SIGKILL'), 200);
        }
      };
      child.once('error', reject);
      child.once('exit', (code, signal) => {
        api.release();
        resolve({ code, signal });
      });
    });
  }

  it('after a SIGKILL during delivery, one clean run leaves the destination equal to the model', async () => {
    expect((await runBigQuery(plan(), pg)).result).toBe('Succeeded');
    expect(api.records).toEqual(await model());
    await bqQuery(stack.bq, `UPDATE ${items} SET v = CONCAT('b', CAST(id AS STRING)) WHERE TRUE`);
    await bqQuery(stack.bq, `DELETE FROM ${items} WHERE id > 35`);
    await bqQuery(stack.bq, `INSERT INTO ${items} (id, v) VALUES (41, 'new'), (42, 'new')`);
    const killed = await killedJob(10);
    expect(killed.signal).toBe('SIGKILL');
    expect(api.applied).toBe(ROWS + 10);
    const clean = await runBigQuery(plan(), pg);
    expect(clean.result, clean.message).toBe('Succeeded');
    expect(api.records).toEqual(await model());
    const settled = await runBigQuery(plan(), pg);
    expect(settled.counts.delivered).toBe(0);
  });

  it('refuses the commit of a run when another committed meanwhile, and the next run resends', async () => {
    expect((await runBigQuery(plan(), pg)).result).toBe('Succeeded');
    await bqQuery(stack.bq, `UPDATE ${items} SET v = CONCAT('e', CAST(id AS STRING)) WHERE id <= 5`);
    api.delayMs = 100;
    let moved: Promise<unknown> | undefined;
    const raced = await executeRun(plan(), {
      secrets: secretResolver({}, {}),
      log: silentLogger(),
      signal: new AbortController().signal,
      backoff: { baseMs: 5, capMs: 50 },
      onProgress: (p) => {
        // Another writer commits while this run delivers (a run that ignored the lease).
        if (p.phase === 'Delivering')
          moved ??= bqQuery(
            stack.bq,
            `UPDATE syncline.syncline_state SET generation = generation + 1 WHERE sync = 'bq-faults-${counter}'`,
          );
      },
    });
    await moved;
    api.delayMs = 0;
    expect(raced.result).toBe('Failed');
    expect(raced.reason).toBe('ConcurrentCommit');
    expect(raced.message).toMatch(/generation of syncline.syncline_state moved/);
    const next = await runBigQuery(plan(), pg);
    expect(next.result, next.message).toBe('Succeeded');
    expect(next.counts.changed).toBe(5);
    expect(api.records).toEqual(await model());
  });
});
