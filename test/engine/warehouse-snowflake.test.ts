// The snapshot kept in Snowflake (Sync.spec.snapshot.location: warehouse), through the real engine and the
// real snowflake-sdk against the Snowflake emulator, into a real PostgreSQL destination: Snowflake hashes
// the rows (HASH), a resync with nothing changed is proved unchanged by HASH_AGG and moves no row, a
// resync with changes moves only them, and the rules of the bucket snapshot hold unchanged.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SyncSpec } from '../../crds/index.ts';
import { silentLogger } from '../../core/logger.ts';
import { runPlan, type RunPlan } from '../../core/plan.ts';
import { secretResolver } from '../../core/secrets.ts';
import type { RunSummary } from '../../core/summary.ts';
import { executeRun } from '../../runner/run.ts';
import { startSnowflakeEmulator, type SnowflakeEmulator } from '../emulators/snowflake/server.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { pgSettings, sql, tempState } from './helpers.ts';

let server: PostgresServer;
let sf: SnowflakeEmulator;
let dstUrl: string;
const states: { remove(): void }[] = [];
let counter = 0;
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'syncline-sf-kill-'));

beforeAll(async () => {
  server = await startPostgres();
  dstUrl = await server.createDatabase('dst');
  sf = await startSnowflakeEmulator({ syncWaitMs: 5000, inlineRows: 500, rowsPerChunk: 2000 });
  sf.addUser({ name: 'syncline', password: 'sf-pw' });
  sf.addUser({
    name: 'reader',
    password: 'sf-pw',
    grants: { database: [], schemas: { PUBLIC: ['USAGE', 'SELECT'] } },
  });
  sf.setWarehouse('WH', 'STARTED');
  await sf.createDatabase('ANALYTICS');
});
afterAll(async () => {
  await sf?.stop();
  await server?.stop();
  for (const s of states) s.remove();
  rmSync(work, { recursive: true, force: true });
});

/** `syncline job` on a plan, in its own process; `kill` decides when to SIGKILL it. */
function runJob(plan: RunPlan, kill?: (child: ReturnType<typeof spawn>) => void) {
  const file = join(work, `plan-${Date.now()}-${Math.random()}.json`);
  writeFileSync(file, JSON.stringify(plan));
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>(
    (resolve, reject) => {
      const child = spawn(process.execPath, [join(REPO, 'bin', 'syncline.mjs'), 'job', '--plan', file], {
        cwd: REPO,
        env: {
          ...process.env,
          TMPDIR: work,
          SYNCLINE_SECRET_PG__PASSWORD: server.password,
          SYNCLINE_SECRET_SF__PASSWORD: 'sf-pw',
          SYNCLINE_TERMINATION_LOG: join(work, 'termination'),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      kill?.(child);
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve({ code, signal, output }));
    },
  );
}

/** Resolves once a session of database `db` waits on a lock (the run is blocked mid-delivery). */
async function lockWaiter(url: string, db: string): Promise<void> {
  for (;;) {
    const [row] = await sql<{ n: number }>(
      url,
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
      [db],
    );
    if ((row?.n ?? 0) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const COLUMNS = 'ID, NAME, AMOUNT, SEEN_AT';
const WAREHOUSE = { location: 'warehouse', schema: 'syncline' } as const;

function runOf(plan: RunPlan): Promise<RunSummary> {
  return executeRun(plan, {
    secrets: secretResolver({}, { pg: { password: server.password }, sf: { password: 'sf-pw' } }),
    log: silentLogger(),
    signal: new AbortController().signal,
    backoff: { baseMs: 5, capMs: 50 },
  });
}

/** A Snowflake table of n rows, a PostgreSQL destination table, a diff store, a warehouse snapshot. */
async function scenario(
  rows: number,
  sync: Partial<SyncSpec> & { mode: SyncSpec['mode'] },
  query = `SELECT ${COLUMNS} FROM $T`,
) {
  counter++;
  const table = `THINGS_${counter}`;
  const target = `copy_${counter}`;
  const state = tempState();
  states.push(state);
  const name = `snowflake-${counter}`;
  await sf.exec(
    `CREATE TABLE ${table} (ID NUMBER(38,0), NAME VARCHAR, AMOUNT NUMBER(12,2), SEEN_AT TIMESTAMP_NTZ);
     INSERT INTO ${table} SELECT g, 'name ' || g, g * 1.5, TIMESTAMP '2024-01-01' + g * INTERVAL 1 HOUR FROM range(1, ${rows + 1}) t(g)`,
    'ANALYTICS',
  );
  let runs = 0;
  const plan = (
    extra: Partial<SyncSpec> = {},
    options: {
      query?: string;
      primaryKey?: string;
      user?: string;
      fullResync?: boolean;
      dryRun?: boolean;
    } = {},
  ) =>
    runPlan.parse({
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'RunPlan',
      runId: `run-${counter}-${++runs}-${process.pid}`,
      namespace: 'test',
      fullResync: options.fullResync ?? false,
      dryRun: options.dryRun ?? false,
      sync: {
        name,
        spec: {
          modelRef: { name: 'model' },
          destinationRef: { name: 'dest' },
          target: { table: target },
          snapshot: WAREHOUSE,
          ...sync,
          ...extra,
        },
      },
      model: {
        name: 'model',
        spec: {
          sourceRef: { name: 'src' },
          query: (options.query ?? query).replaceAll('$T', table),
          primaryKey: options.primaryKey ?? 'ID',
        },
      },
      source: {
        name: 'src',
        spec: {
          type: 'snowflake',
          snowflake: {
            account: 'testorg-testaccount',
            user: options.user ?? 'syncline',
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
      diffStore: { url: state.url },
    });
  const snowflakeRows = async (text: string) => {
    const connection = await sf.engine.instance.connect();
    try {
      await connection.run('USE "ANALYTICS"."PUBLIC"');
      return (await connection.runAndReadAll(sf.engine.rewrite(text, { user: 'admin' }))).getRowObjectsJS();
    } finally {
      connection.closeSync();
    }
  };
  return {
    name,
    plan,
    run: (extra: Partial<SyncSpec> = {}, options: Parameters<typeof plan>[1] = {}) =>
      runOf(plan(extra, options)),
    source: (text: string) => sf.exec(text.replaceAll('$T', table), 'ANALYTICS'),
    dest: (text: string) => sql(dstUrl, text.replaceAll('$D', target)),
    /** The Sync's state row and tables, as Snowflake holds them. */
    stateRow: async () => {
      const tables = await snowflakeRows(
        `SELECT count(*) AS N FROM information_schema.tables WHERE table_catalog = 'ANALYTICS' AND table_schema = 'SYNCLINE' AND table_name = 'SYNCLINE_STATE'`,
      );
      if (Number(tables[0]?.['N']) === 0) return undefined;
      return (
        await snowflakeRows(
          `SELECT GENERATION, ROW_COUNT, STALE_COUNT, SNAPSHOT_TABLE FROM "SYNCLINE"."SYNCLINE_STATE" WHERE SYNC = '${name}'`,
        )
      )[0];
    },
    snowflakeRows,
    /** The model and the destination, row by row. */
    same: async () => {
      const model = await snowflakeRows(
        `SELECT CAST(ID AS VARCHAR) || '|' || coalesce(NAME, '-') || '|' || CAST(AMOUNT AS VARCHAR) AS R FROM ${table} ORDER BY ID`,
      );
      const copy = await sql<{ r: string }>(
        dstUrl,
        `SELECT "ID"::text || '|' || coalesce("NAME", '-') || '|' || "AMOUNT"::numeric(12,2)::text AS r FROM ${target} ORDER BY "ID"`,
      );
      return copy.map((r) => r.r).join('\n') === model.map((r) => String(r['R'])).join('\n');
    },
  };
}

describe('a warehouse snapshot in Snowflake', () => {
  it('keeps Snowflake hashes from the first sync, proves a resync unchanged by checksum, and moves only what changed', async () => {
    const s = await scenario(300, { mode: 'upsert', deleteBehavior: 'delete' });
    const first = await s.run();
    expect(first.result, first.message).toBe('Succeeded');
    expect(first.counts).toMatchObject({ queried: 300, added: 300, delivered: 300 });
    expect(first.staging).toMatchObject({ keysOnly: false, hashFunction: 'snowflake' });
    expect(await s.stateRow()).toMatchObject({ ROW_COUNT: 300, STALE_COUNT: 0 });
    expect(await s.same()).toBe(true);

    const generation = (await s.stateRow())?.['GENERATION'];
    const before = sf.stats.bytesSent;
    const second = await s.run();
    expect(second.counts).toMatchObject({ queried: 300, added: 0, changed: 0, removed: 0, delivered: 0 });
    expect(second.staging?.narrowed).toEqual({ rows: 0, previousRows: 0, byChecksum: true });
    expect((await s.stateRow())?.['GENERATION']).toBe(generation);
    const unchangedBytes = sf.stats.bytesSent - before;

    await s.source(`UPDATE $T SET NAME = 'renamed' WHERE ID = 2`);
    await s.source(`UPDATE $T SET AMOUNT = AMOUNT + 0.01 WHERE ID = 3`);
    await s.source(`UPDATE $T SET NAME = NULL WHERE ID = 4`);
    await s.source(`DELETE FROM $T WHERE ID = 1`);
    await s.source(`INSERT INTO $T VALUES (301, 'newcomer', 1, TIMESTAMP '2025-01-01')`);
    const third = await s.run();
    expect(third.result, third.message).toBe('Succeeded');
    expect(third.counts).toMatchObject({ queried: 300, added: 1, changed: 3, removed: 1, delivered: 5 });
    // 4 model rows (3 changed, 1 new) and 4 snapshot rows (3 changed, 1 removed) left Snowflake.
    expect(third.staging?.narrowed).toEqual({ rows: 4, previousRows: 4, byChecksum: false });
    expect(await s.same()).toBe(true);
    const after = sf.stats.bytesSent;
    expect((await s.run()).staging?.narrowed?.byChecksum).toBe(true);
    // A resync with nothing changed sends no row: fewer bytes than the one with five changes.
    expect(sf.stats.bytesSent - after).toBeLessThan(after - before - unchangedBytes);
  });

  it('keeps rejected rows pending (stale, and in the rejections table) and sends them again next run', async () => {
    const s = await scenario(6, { mode: 'update', deleteBehavior: 'delete' });
    await s.dest(
      `CREATE TABLE $D ("ID" numeric PRIMARY KEY, "NAME" text, "AMOUNT" numeric(12,2), "SEEN_AT" timestamp)`,
    );
    await s.dest(`INSERT INTO $D ("ID", "NAME") SELECT g, 'old' FROM generate_series(1, 4) g`);
    const first = await s.run();
    expect(first.result, first.message).toBe('PartiallySucceeded');
    expect(first.counts).toMatchObject({ delivered: 4, failed: 2 });
    expect(await s.stateRow()).toMatchObject({ ROW_COUNT: 6, STALE_COUNT: 2 });
    const table = String((await s.stateRow())?.['SNAPSHOT_TABLE']);
    const rejected = await s.snowflakeRows(
      `SELECT KEY, REASON, RUN_ID FROM SYNCLINE.${table}_REJECTIONS ORDER BY KEY`,
    );
    expect(rejected.map((r) => r['KEY'])).toEqual(['5', '6']);
    const second = await s.run();
    expect(second.staging?.narrowed).toEqual({ rows: 2, previousRows: 2, byChecksum: false });
    expect(second.counts).toMatchObject({ added: 2, failed: 2, delivered: 0 });
    await s.dest(`INSERT INTO $D ("ID", "NAME") VALUES (5, 'old'), (6, 'old')`);
    const third = await s.run();
    expect(third.counts).toMatchObject({ added: 2, delivered: 2, failed: 0 });
    expect(await s.stateRow()).toMatchObject({ STALE_COUNT: 0 });
    expect(await s.snowflakeRows(`SELECT KEY FROM SYNCLINE.${table}_REJECTIONS`)).toEqual([]);
    expect((await s.run()).staging?.narrowed?.byChecksum).toBe(true);
  });

  it('resends every row when a column type changes or a column is added, and stops on a changed primary key', async () => {
    const s = await scenario(20, { mode: 'upsert' });
    await s.run();
    const retyped = await s.run(
      {},
      { query: `SELECT ID, NAME, CAST(AMOUNT AS DOUBLE) AS AMOUNT, SEEN_AT FROM $T` },
    );
    expect(retyped.staging?.narrowed).toBeUndefined();
    expect(retyped.counts).toMatchObject({ changed: 20, delivered: 20 });
    await s.dest(`ALTER TABLE $D ADD COLUMN "EXTRA" numeric`);
    const wider = await s.run({}, { query: `SELECT ${COLUMNS}, 1 AS EXTRA FROM $T` });
    expect(wider.counts).toMatchObject({ changed: 20, delivered: 20 });
    const rekeyed = await s.run({}, { query: `SELECT ${COLUMNS}, 1 AS EXTRA FROM $T`, primaryKey: 'NAME' });
    expect(rekeyed.reason).toBe('PrimaryKeyChanged');
    expect(rekeyed.counts.delivered).toBe(0);
  });

  it('resends only the rows with a value of a newly mapped field', async () => {
    const mappings = [
      { to: 'ID', from: 'ID', valueType: 'string' as const },
      { to: 'NAME', from: 'NAME', valueType: 'string' as const },
    ];
    const s = await scenario(30, { mode: 'upsert', mappings });
    await s.run();
    await s.source(`UPDATE $T SET AMOUNT = NULL WHERE ID > 10`);
    await s.dest(`ALTER TABLE $D ADD COLUMN "AMOUNT" numeric(12,2)`);
    const wider = { mappings: [...mappings, { to: 'AMOUNT', from: 'AMOUNT', valueType: 'string' as const }] };
    const widened = await s.run(wider);
    expect(widened.counts).toMatchObject({ changed: 10, delivered: 10 });
    expect((await s.run(wider)).staging?.narrowed?.byChecksum).toBe(true);
  });

  it('names duplicate and null keys, and trips the safety rail before anything is sent', async () => {
    const twice = `SELECT ${COLUMNS} FROM $T UNION ALL SELECT ${COLUMNS} FROM $T WHERE NAME = 'twice'`;
    const s = await scenario(10, { mode: 'upsert', deleteBehavior: 'delete' }, twice);
    await s.run();
    await s.source(`UPDATE $T SET NAME = 'twice' WHERE ID = 9`);
    const failed = await s.run();
    expect(failed.reason).toBe('DuplicatePrimaryKey');
    expect(failed.message).toMatch(/first 1: 9\b/);
    const withNull = await s.run(
      {},
      { query: `SELECT ${COLUMNS} FROM $T UNION ALL SELECT NULL, 'x', 1, NULL` },
    );
    expect(withNull.reason).toBe('NullPrimaryKey');
    expect(withNull.message).toContain('<null>');
    await s.source(`UPDATE $T SET NAME = 'once' WHERE ID = 9`);
    expect((await s.run()).result).toBe('Succeeded');
    await s.source('DELETE FROM $T WHERE ID <= 6');
    const stopped = await s.run();
    expect(stopped.reason).toBe('SafetyRailTripped');
    expect(await s.dest('SELECT count(*)::int AS n FROM $D')).toEqual([{ n: 10 }]);
  });

  it('fails at open, before anything is sent, naming the privilege the role lacks', async () => {
    const s = await scenario(5, { mode: 'upsert' });
    const refused = await s.run({}, { user: 'reader' });
    expect(refused.result).toBe('Failed');
    expect(refused.reason).toBe('WarehouseSnapshotGrantMissing');
    expect(refused.message).toContain(
      'GRANT USAGE, CREATE TABLE ON SCHEMA "ANALYTICS"."SYNCLINE" TO ROLE "PUBLIC"',
    );
    expect(await s.dest(`SELECT to_regclass('$D') AS t`)).toEqual([{ t: null }]);
  });

  it('compares string keys in Snowflake exactly as the engine does', async () => {
    const extra = [`'a'`, `'A'`, `'b '`, `'b'`, `'ü'`];
    const s = await scenario(
      40,
      { mode: 'upsert', deleteBehavior: 'delete' },
      `SELECT 'k' || ID AS CODE, NAME FROM $T UNION ALL SELECT * FROM CODES_$T`,
    );
    await s.source(
      `CREATE TABLE CODES_$T (CODE VARCHAR, NAME VARCHAR); INSERT INTO CODES_$T VALUES ${extra.map((k) => `(${k}, 'x')`).join(', ')}`,
    );
    const keyed = { primaryKey: 'CODE' };
    expect((await s.run({}, keyed)).counts.added).toBe(45);
    expect((await s.run({}, keyed)).staging?.narrowed?.byChecksum).toBe(true);
    await s.source(`UPDATE CODES_$T SET NAME = 'changed' WHERE CODE = 'a'`);
    await s.source(`DELETE FROM CODES_$T WHERE CODE = 'ü'`);
    const changed = await s.run({}, keyed);
    expect(changed.counts).toMatchObject({ changed: 1, removed: 1, delivered: 2 });
    expect(changed.staging?.narrowed).toEqual({ rows: 1, previousRows: 2, byChecksum: false });
    expect(
      await s.dest(
        `SELECT "CODE", "NAME" FROM $D WHERE "CODE" IN ('a', 'A', 'b ', 'b', 'ü') ORDER BY "CODE" COLLATE "C"`,
      ),
    ).toEqual([
      { CODE: 'A', NAME: 'x' },
      { CODE: 'a', NAME: 'changed' },
      { CODE: 'b', NAME: 'x' },
      { CODE: 'b ', NAME: 'x' },
    ]);
  });

  it('plans without writing anything, and repairs a broken manifest by a full resync', async () => {
    const s = await scenario(10, { mode: 'upsert' });
    const planned = await s.run({}, { dryRun: true });
    expect(planned.result, planned.message).toBe('Succeeded');
    expect(await s.stateRow()).toBeUndefined();
    await s.run();
    await s.source(`UPDATE $T SET NAME = 'edited' WHERE ID = 3`);
    const before = await s.stateRow();
    const dry = await s.run({}, { dryRun: true });
    expect(dry.counts).toMatchObject({ changed: 1, delivered: 0 });
    expect(await s.stateRow()).toEqual(before);
    await s.snowflakeRows(
      `UPDATE "SYNCLINE"."SYNCLINE_STATE" SET MANIFEST = '{"version": 9}' WHERE SYNC = '${s.name}'`,
    );
    const broken = await s.run();
    expect(broken.reason).toBe('DiffStoreCorrupt');
    expect(broken.message).toContain('SYNCLINE_STATE');
    const repaired = await s.run({}, { fullResync: true });
    expect(repaired.result, repaired.message).toBe('Succeeded');
    expect(repaired.counts).toMatchObject({ changed: 10, delivered: 10 });
    expect((await s.run()).staging?.narrowed?.byChecksum).toBe(true);
    expect(await s.same()).toBe(true);
  });

  it('moves the snapshot when the Sync switches between the diff store and Snowflake, sending nothing again', async () => {
    const BUCKET = { location: 'diffStore' } as const;
    const s = await scenario(100, { mode: 'upsert', deleteBehavior: 'delete', snapshot: BUCKET });
    expect((await s.run()).counts).toMatchObject({ added: 100, delivered: 100 });
    await s.source(`UPDATE $T SET NAME = 'while in the bucket' WHERE ID = 9`);
    const moved = await s.run({ snapshot: WAREHOUSE });
    expect(moved.result, moved.message).toBe('Succeeded');
    expect(moved.reason).toBe('SnapshotMoved');
    expect(moved.counts).toMatchObject({ changed: 1, added: 0, removed: 0, delivered: 1 });
    expect(await s.stateRow()).toMatchObject({ ROW_COUNT: 100, STALE_COUNT: 0 });
    const settled = await s.run({ snapshot: WAREHOUSE });
    expect(settled.counts).toMatchObject({ delivered: 0 });
    expect(settled.staging?.narrowed?.byChecksum).toBe(true);
    await s.source('DELETE FROM $T WHERE ID = 10');
    expect((await s.run({ snapshot: WAREHOUSE })).counts).toMatchObject({ removed: 1, delivered: 1 });
    // And back: the table's state goes into the bucket, and the Sync's tables are dropped.
    const table = String((await s.stateRow())?.['SNAPSHOT_TABLE']);
    const back = await s.run({ snapshot: BUCKET });
    expect(back.reason).toBe('SnapshotMoved');
    expect(back.counts).toMatchObject({ added: 0, changed: 0, removed: 0, delivered: 0 });
    expect(await s.stateRow()).toBeUndefined();
    const left = await s.snowflakeRows(
      `SELECT table_name AS T FROM information_schema.tables WHERE table_schema = 'SYNCLINE' AND starts_with(table_name, '${table}')`,
    );
    expect(left).toEqual([]);
    expect(await s.same()).toBe(true);
  });

  it('resyncs with a clear reason when someone dropped the schema', async () => {
    const s = await scenario(30, { mode: 'upsert', deleteBehavior: 'delete' });
    expect((await s.run()).counts).toMatchObject({ delivered: 30 });
    await s.snowflakeRows('DROP SCHEMA "SYNCLINE" CASCADE');
    const resynced = await s.run();
    expect(resynced.result, resynced.message).toBe('Succeeded');
    expect(resynced.reason).toBe('WarehouseSnapshotLost');
    expect(resynced.counts).toMatchObject({ queried: 30, delivered: 30 });
    expect((await s.run()).staging?.narrowed?.byChecksum).toBe(true);
  });

  it('after a SIGKILL during delivery, one clean run leaves the destination equal to the model', async () => {
    const s = await scenario(40, {
      mode: 'upsert',
      deleteBehavior: 'delete',
      delivery: { batchSize: 5, concurrency: 1, maxRetries: 2 },
    });
    const first = await runJob(s.plan());
    expect(first.code, first.output).toBe(0);
    await s.source(`UPDATE $T SET NAME = NAME || ' v2'`);
    await s.source('DELETE FROM $T WHERE ID > 35');
    // A row of the destination locked by another session: the batch that writes it waits, and the run is killed then.
    const holder = new pg.Client({ connectionString: dstUrl });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query(`SELECT 1 FROM copy_${counter} WHERE "ID" = 20 FOR UPDATE`);
    const killed = await runJob(s.plan(), (child) => {
      void lockWaiter(dstUrl, 'dst').then(() => child.kill('SIGKILL'));
    });
    await holder.query('ROLLBACK');
    await holder.end();
    expect(killed.signal).toBe('SIGKILL');
    expect(await s.same()).toBe(false);
    const clean = await runJob(s.plan());
    expect(clean.code, clean.output).toBe(0);
    expect(await s.same()).toBe(true);
    expect((await s.run()).staging?.narrowed?.byChecksum).toBe(true);
  });
});
