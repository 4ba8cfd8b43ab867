// Every mode and delete behaviour, PostgreSQL to PostgreSQL, through the real engine and connectors —
// with the snapshot in the diff store, and in the warehouse (the source database's syncline schema, where
// the diff runs in SQL).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SyncSpec } from '../../crds/index.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, pgSettings, run, sql, tempState } from './helpers.ts';

let server: PostgresServer;
let srcUrl: string;
let dstUrl: string;
const states: { remove(): void }[] = [];
let counter = 0;

beforeAll(async () => {
  server = await startPostgres();
  srcUrl = await server.createDatabase('src');
  dstUrl = await server.createDatabase('dst');
});
afterAll(async () => {
  await server?.stop();
  for (const s of states) s.remove();
});

const SNAPSHOTS = ['diffStore', 'warehouse'] as const;
type Location = (typeof SNAPSHOTS)[number];

describe.each(SNAPSHOTS)('with the snapshot in the %s', (location) => {
  defineModes(location);
});

/** A source table of people 1..n, a destination table name and a diff store of its own. */
async function scenario(
  location: Location,
  rows: number,
  sync: Partial<SyncSpec> & { mode: SyncSpec['mode'] },
) {
  counter++;
  const table = `people_${counter}`;
  const target = `copy_${counter}`;
  const state = tempState();
  states.push(state);
  await sql(srcUrl, `CREATE TABLE ${table} (id int PRIMARY KEY, name text, email text)`);
  await sql(
    srcUrl,
    `INSERT INTO ${table} SELECT g, 'name ' || g, 'p' || g || '@example.com' FROM generate_series(1, ${rows}) g`,
  );
  const plan = (extra: Partial<SyncSpec> = {}) =>
    makePlan({
      server,
      sourceDb: 'src',
      query: `SELECT id, name, email FROM ${table}`,
      destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
      sync: {
        target: { table: target },
        snapshot: { location, schema: 'syncline' },
        ...sync,
        ...extra,
      },
      stateUrl: state.url,
      name: `sync-${counter}`,
    });
  return {
    table,
    target,
    source: (text: string) => sql(srcUrl, text.replaceAll('$T', table)),
    dest: (text: string) => sql(dstUrl, text.replaceAll('$D', target)),
    plan,
    run: (extra: Partial<SyncSpec> = {}) => run(plan(extra), server),
  };
}

/** Make the second run's model: row 1 leaves, row 2 changes, row n+1 arrives. */
async function churn(s: Awaited<ReturnType<typeof scenario>>, n: number) {
  await s.source(`DELETE FROM $T WHERE id = 1`);
  await s.source(`UPDATE $T SET name = 'renamed' WHERE id = 2`);
  await s.source(`INSERT INTO $T VALUES (${n + 1}, 'newcomer', 'new@example.com')`);
}

const destRows = async (s: Awaited<ReturnType<typeof scenario>>) =>
  (await s.dest('SELECT id, name, email FROM $D ORDER BY id')) as {
    id: number;
    name: string | null;
    email: string | null;
  }[];

function defineModes(location: Location): void {
  describe('mode upsert', () => {
    it('deleteBehavior ignore: leaves removed rows alone, sends changes and new rows', async () => {
      const s = await scenario(location, 5, { mode: 'upsert' });
      expect((await s.run()).counts).toMatchObject({ added: 5, delivered: 5 });
      await churn(s, 5);
      const second = await s.run();
      expect(second.counts).toMatchObject({ added: 1, changed: 1, removed: 1, delivered: 2, failed: 0 });
      expect(second.operations).toEqual({ upsert: 2 });
      const rows = await destRows(s);
      expect(rows.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(rows.find((r) => r.id === 2)?.name).toBe('renamed');
    });

    it('deleteBehavior delete: deletes removed rows', async () => {
      const s = await scenario(location, 5, { mode: 'upsert', deleteBehavior: 'delete' });
      await s.run();
      await churn(s, 5);
      const second = await s.run();
      expect(second.operations).toEqual({ upsert: 2, delete: 1 });
      expect((await destRows(s)).map((r) => r.id)).toEqual([2, 3, 4, 5, 6]);
    });

    it('deleteBehavior clear: empties the mapped fields of removed rows', async () => {
      const s = await scenario(location, 5, { mode: 'upsert', deleteBehavior: 'clear' });
      await s.run();
      await churn(s, 5);
      const second = await s.run();
      expect(second.operations).toEqual({ upsert: 2, clear: 1 });
      const rows = await destRows(s);
      expect(rows[0]).toEqual({ id: 1, name: null, email: null });
      // A cleared row left the snapshot: the next run has nothing to do.
      expect((await s.run()).counts).toMatchObject({ added: 0, changed: 0, removed: 0, delivered: 0 });
    });
  });

  describe('mode update', () => {
    it('updates existing records only and rejects rows without one', async () => {
      const s = await scenario(location, 4, { mode: 'update', deleteBehavior: 'delete' });
      await s.dest('CREATE TABLE $D (id int PRIMARY KEY, name text, email text)');
      await s.dest("INSERT INTO $D VALUES (1, 'old', 'old'), (2, 'old', 'old'), (3, 'old', 'old')");
      const first = await s.run();
      expect(first.operations).toEqual({ update: 4 });
      expect(first.counts).toMatchObject({ delivered: 3, failed: 1 });
      expect(first.result).toBe('PartiallySucceeded');
      expect(first.rejected[0]).toMatchObject({ key: '4', operation: 'update' });
      expect((await destRows(s)).map((r) => r.name)).toEqual(['name 1', 'name 2', 'name 3']);
      await s.source('DELETE FROM $T WHERE id = 1');
      const second = await s.run();
      // Row 4 failed last time, so it is still different from the snapshot and is tried again.
      expect(second.operations).toEqual({ update: 1, delete: 1 });
      expect((await destRows(s)).map((r) => r.id)).toEqual([2, 3]);
    });
  });

  describe('mode insert', () => {
    it('sends only rows whose key is new, never changes', async () => {
      const s = await scenario(location, 3, { mode: 'insert' });
      await s.run();
      await churn(s, 3);
      const second = await s.run();
      expect(second.counts).toMatchObject({ added: 1, changed: 1, removed: 1 });
      expect(second.operations).toEqual({ insert: 1 });
      const rows = await destRows(s);
      expect(rows.map((r) => r.id)).toEqual([1, 2, 3, 4]);
      expect(rows.find((r) => r.id === 2)?.name).toBe('name 2');
    });

    it('deleteBehavior delete removes rows that left', async () => {
      const s = await scenario(location, 3, { mode: 'insert', deleteBehavior: 'delete' });
      await s.run();
      await churn(s, 3);
      expect((await s.run()).operations).toEqual({ insert: 1, delete: 1 });
      expect((await destRows(s)).map((r) => r.id)).toEqual([2, 3, 4]);
    });
  });

  describe('mode all', () => {
    it('sends every row every run and deletes rows that left: the destination equals the model', async () => {
      const s = await scenario(location, 5, { mode: 'all' });
      await s.run();
      await s.dest("UPDATE $D SET name = 'edited by hand' WHERE id = 3");
      await churn(s, 5);
      const second = await s.run();
      expect(second.operations).toEqual({ upsert: 5, delete: 1 });
      expect(second.counts).toMatchObject({ added: 1, changed: 1, removed: 1, delivered: 6 });
      const model = await s.source('SELECT id, name, email FROM $T ORDER BY id');
      expect(await destRows(s)).toEqual(model);
    });
  });

  describe('mode archive', () => {
    it('archives every row of the model in the destination', async () => {
      const s = await scenario(location, 3, { mode: 'archive' });
      await s.dest('CREATE TABLE $D (id int PRIMARY KEY, name text, email text, archived_at timestamptz)');
      await s.dest(
        "INSERT INTO $D VALUES (1, 'a', 'a', NULL), (2, 'b', 'b', NULL), (3, 'c', 'c', NULL), (9, 'z', 'z', NULL)",
      );
      const first = await s.run();
      expect(first.operations).toEqual({ archive: 3 });
      const archived = await s.dest('SELECT id FROM $D WHERE archived_at IS NOT NULL ORDER BY id');
      expect(archived.map((r) => r['id'])).toEqual([1, 2, 3]);
      // Every run archives every row again (no change data capture).
      expect((await s.run()).operations).toEqual({ archive: 3 });
    });

    it('archiveBehavior delete deletes every row of the model', async () => {
      const s = await scenario(location, 2, { mode: 'archive', archiveBehavior: 'delete' });
      await s.dest('CREATE TABLE $D (id int PRIMARY KEY, name text, email text)');
      await s.dest("INSERT INTO $D VALUES (1, 'a', 'a'), (2, 'b', 'b'), (3, 'c', 'c')");
      expect((await s.run()).operations).toEqual({ delete: 2 });
      expect((await destRows(s)).map((r) => r.id)).toEqual([3]);
    });
  });

  describe('safety rail', () => {
    it('stops a run that would delete more than maxDeleteShare before delivering anything, unless allowed', async () => {
      const s = await scenario(location, 10, { mode: 'upsert', deleteBehavior: 'delete' });
      await s.run();
      await s.source('DELETE FROM $T WHERE id <= 6');
      await s.source("UPDATE $T SET name = 'changed' WHERE id = 10");
      const stopped = await s.run();
      expect(stopped.result).toBe('Failed');
      expect(stopped.reason).toBe('SafetyRailTripped');
      expect(stopped.message).toContain('6 of the 10 records');
      expect(stopped.message).toContain('allowLargeDeletes');
      expect(stopped.counts.delivered).toBe(0);
      const untouched = await destRows(s);
      expect(untouched).toHaveLength(10);
      expect(untouched.find((r) => r.id === 10)?.name).toBe('name 10');
      // A higher share lets it through.
      const allowed = await s.run({ safety: { maxDeleteShare: 0.7, allowLargeDeletes: false } });
      expect(allowed.result).toBe('Succeeded');
      expect((await destRows(s)).map((r) => r.id)).toEqual([7, 8, 9, 10]);
    });

    it('allowLargeDeletes lets a run delete everything', async () => {
      const s = await scenario(location, 4, { mode: 'all' });
      await s.run();
      await s.source('DELETE FROM $T');
      expect((await s.run()).reason).toBe('SafetyRailTripped');
      const allowed = await s.run({ safety: { maxDeleteShare: 0.5, allowLargeDeletes: true } });
      expect(allowed.operations).toEqual({ delete: 4 });
      expect(await destRows(s)).toEqual([]);
    });
  });

  describe('a run stopped during delivery', () => {
    it('rows it added that then leave the model are still deleted by the next run', async () => {
      const s = await scenario(location, 0, {
        mode: 'upsert',
        deleteBehavior: 'delete',
        delivery: { batchSize: 10, concurrency: 1, maxRetries: 5 },
      });
      await s.source(`INSERT INTO $T SELECT g, 'name ' || g, 'x' FROM generate_series(1, 200) g`);
      const controller = new AbortController();
      const stopped = await run(s.plan(), server, {
        signal: controller.signal,
        onProgress: (p) => {
          if ((p.delivery?.delivered ?? 0) >= 50) controller.abort();
        },
      });
      expect(stopped.reason).toBe('Aborted');
      const arrived = (await destRows(s)).map((r) => r.id);
      expect(arrived.length).toBeGreaterThanOrEqual(50);
      expect(arrived.length).toBeLessThan(200);
      // The rows that arrived leave the model before any run finished.
      await s.source(`DELETE FROM $T WHERE id IN (${arrived.join(', ')})`);
      const next = await s.run();
      expect(next.result).toBe('Succeeded');
      const model = await s.source('SELECT id, name, email FROM $T ORDER BY id');
      expect(await destRows(s)).toEqual(model);
    });
  });

  describe('unsupported combinations', () => {
    it('fails with MissingTarget when the postgres destination has no table', async () => {
      const s = await scenario(location, 1, { mode: 'upsert' });
      const summary = await s.run({ target: {} });
      expect(summary.result).toBe('Failed');
      expect(summary.reason).toBe('MissingTarget');
    });
  });
}
