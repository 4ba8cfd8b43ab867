// The snapshot kept in the warehouse (Sync.spec.snapshot.location: warehouse): the source database's
// `syncline` schema holds it, the diff runs there in SQL, and only the rows that differ leave it. Through
// the real engine, PostgreSQL to PostgreSQL; the rules of the bucket snapshot hold unchanged.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Mapping, SyncSpec } from '../../crds/index.ts';
import { snapshotTables } from '../../connectors/postgres/snapshot-tables.ts';
import { silentLogger } from '../../core/logger.ts';
import { runSnapshotDrop } from '../../runner/drop-snapshot.ts';
import { runCheck } from '../../runner/job.ts';
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

const COLUMNS = 'id, name, amount, tags, meta, seen_at';
const WAREHOUSE = { location: 'warehouse', schema: 'syncline' } as const;
const BUCKET = { location: 'diffStore' } as const;

/** A source table of n rows of several types, a destination table, a diff store, a warehouse snapshot. */
async function scenario(
  rows: number,
  sync: Partial<SyncSpec> & { mode: SyncSpec['mode'] },
  query = `SELECT ${COLUMNS} FROM $T`,
) {
  counter++;
  const table = `things_${counter}`;
  const target = `copy_${counter}`;
  const state = tempState();
  states.push(state);
  const name = `warehouse-${counter}`;
  await sql(
    srcUrl,
    `CREATE TABLE ${table} (id int PRIMARY KEY, name text, amount numeric(12,2), tags text[], meta jsonb, seen_at timestamptz)`,
  );
  await sql(
    srcUrl,
    `INSERT INTO ${table} SELECT g, 'name ' || g, g * 1.5, ARRAY['t' || (g % 3)], jsonb_build_object('g', g),
       timestamptz '2024-01-01' + g * interval '1 hour' FROM generate_series(1, ${rows}) g`,
  );
  const plan = (extra: Partial<SyncSpec> = {}, sqlText = query) =>
    makePlan({
      server,
      sourceDb: 'src',
      query: sqlText.replaceAll('$T', table),
      destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
      sync: { target: { table: target }, snapshot: WAREHOUSE, ...sync, ...extra },
      stateUrl: state.url,
      name,
    });
  const stateRow = async () =>
    (
      await sql<{ generation: string; row_count: string; stale_count: string; snapshot_table: string }>(
        srcUrl,
        'SELECT generation, row_count, stale_count, snapshot_table FROM syncline.syncline_state WHERE sync = $1',
        [name],
      )
    )[0];
  return {
    name,
    state,
    plan,
    tables: snapshotTables('syncline', 'test', name),
    source: (text: string) => sql(srcUrl, text.replaceAll('$T', table)),
    dest: (text: string) => sql(dstUrl, text.replaceAll('$D', target)),
    run: (
      extra: Partial<SyncSpec> = {},
      options: { dryRun?: boolean; query?: string; primaryKey?: string } = {},
    ) => {
      const planned = plan(extra, options.query);
      const model = options.primaryKey
        ? { ...planned.model, spec: { ...planned.model.spec, primaryKey: options.primaryKey } }
        : planned.model;
      return run({ ...planned, model, dryRun: options.dryRun ?? false }, server);
    },
    runFullResync: () => run({ ...plan(), fullResync: true }, server),
    stateRow,
    snapshotRows: async (where = 'TRUE') => {
      const t = (await stateRow())?.snapshot_table;
      return sql<{ key_text: string; stale: boolean; hash: string | null }>(
        srcUrl,
        `SELECT key_text, stale, hash FROM syncline."${t}" WHERE ${where} ORDER BY key_text`,
      );
    },
    /** The model and the destination, row by row, as PostgreSQL renders them. */
    same: async () => {
      const model = await sql<{ r: string }>(
        srcUrl,
        `SELECT (${COLUMNS})::text AS r FROM ${table} ORDER BY id`,
      );
      const copy = await sql<{ r: string }>(
        dstUrl,
        `SELECT (${COLUMNS})::text AS r FROM ${target} ORDER BY id`,
      );
      return copy.map((row) => row.r).join('\n') === model.map((row) => row.r).join('\n');
    },
  };
}

describe('a warehouse snapshot', () => {
  it('keeps PostgreSQL hashes from the first sync, proves a resync unchanged by checksum, and stages only what changed', async () => {
    const s = await scenario(500, { mode: 'upsert', deleteBehavior: 'delete' });
    const first = await s.run();
    expect(first.result, first.message).toBe('Succeeded');
    expect(first.counts).toMatchObject({ queried: 500, added: 500, delivered: 500 });
    expect(first.staging).toEqual({ keysOnly: false, hashFunction: 'postgres' });
    expect(first.snapshot).toMatch(/^snapshots\//);
    expect(await s.stateRow()).toMatchObject({ row_count: '500', stale_count: '0' });

    // Nothing changed: one checksum row left PostgreSQL, no key, no row; nothing committed.
    const generation = (await s.stateRow())?.generation;
    const second = await s.run();
    expect(second.counts).toMatchObject({ queried: 500, added: 0, changed: 0, removed: 0, delivered: 0 });
    expect(second.staging?.narrowed).toEqual({ rows: 0, previousRows: 0, byChecksum: true });
    expect((await s.stateRow())?.generation).toBe(generation);

    // One change of each column's type, a row gone, a row new.
    await s.source(`UPDATE $T SET name = 'renamed' WHERE id = 2`);
    await s.source(`UPDATE $T SET amount = amount + 0.01 WHERE id = 3`);
    await s.source(`UPDATE $T SET tags = ARRAY['t0', 'x'] WHERE id = 4`);
    await s.source(`UPDATE $T SET meta = '{"g": 5, "more": true}' WHERE id = 5`);
    await s.source(`UPDATE $T SET seen_at = seen_at + interval '1 microsecond' WHERE id = 6`);
    await s.source(`UPDATE $T SET name = NULL WHERE id = 7`);
    await s.source(`DELETE FROM $T WHERE id = 1`);
    await s.source(`INSERT INTO $T VALUES (501, 'newcomer', 1, '{}', '{}', now())`);
    const third = await s.run();
    expect(third.result, third.message).toBe('Succeeded');
    expect(third.counts).toMatchObject({ queried: 500, added: 1, changed: 6, removed: 1, delivered: 8 });
    expect(third.operations).toEqual({ upsert: 7, delete: 1 });
    // 7 model rows (6 changed, 1 new) and 7 snapshot rows (6 changed, 1 removed) left PostgreSQL.
    expect(third.staging?.narrowed).toEqual({ rows: 7, previousRows: 7, byChecksum: false });
    expect(await s.same()).toBe(true);
    expect(await s.stateRow()).toMatchObject({ row_count: '500', stale_count: '0' });

    // The commit kept the table's checksum: the next resync is proved unchanged again.
    const fourth = await s.run();
    expect(fourth.counts).toMatchObject({ added: 0, changed: 0, removed: 0, delivered: 0 });
    expect(fourth.staging?.narrowed?.byChecksum).toBe(true);
  });

  it('sends only the 1% that changed of 2,000 rows, and values moving between keys', async () => {
    const s = await scenario(2000, { mode: 'upsert', deleteBehavior: 'delete' });
    await s.run();
    await s.source(`UPDATE $T SET name = name || '!' WHERE id % 100 = 0`);
    const changed = await s.run();
    expect(changed.counts).toMatchObject({ changed: 20, delivered: 20 });
    expect(changed.staging?.narrowed).toEqual({ rows: 20, previousRows: 20, byChecksum: false });
    // Two rows swap their values: the set of hashes is unchanged, the keys they belong to are not.
    await s.source(`UPDATE $T SET name = CASE id WHEN 3 THEN 'name 4' ELSE 'name 3' END WHERE id IN (3, 4)`);
    const swapped = await s.run();
    expect(swapped.counts).toMatchObject({ changed: 2, delivered: 2 });
    // Row 7 leaves, row 2001 arrives with row 7's values.
    await s.source(`INSERT INTO $T SELECT 2001, name, amount, tags, meta, seen_at FROM $T WHERE id = 7`);
    await s.source(`DELETE FROM $T WHERE id = 7`);
    const moved = await s.run();
    expect(moved.counts).toMatchObject({ added: 1, removed: 1, delivered: 2 });
    expect(await s.same()).toBe(true);
  });

  it('keeps rejected rows pending (stale in the table) and sends them again next run', async () => {
    const s = await scenario(6, { mode: 'update', deleteBehavior: 'delete' });
    await s.dest(
      'CREATE TABLE $D (id int PRIMARY KEY, name text, amount numeric(12,2), tags text[], meta jsonb, seen_at timestamptz)',
    );
    await s.dest(`INSERT INTO $D (id, name) SELECT g, 'old' FROM generate_series(1, 4) g`);
    const first = await s.run();
    expect(first.result).toBe('PartiallySucceeded');
    expect(first.counts).toMatchObject({ delivered: 4, failed: 2 });
    expect(await s.stateRow()).toMatchObject({ row_count: '6', stale_count: '2' });
    expect((await s.snapshotRows('stale')).map((r) => r.key_text)).toEqual(['5', '6']);
    // Users may query why: one row per refused key, with the destination's message and the run.
    const rejections = () =>
      sql<{ key: string; reason: string; message: string; run_id: string }>(
        srcUrl,
        `SELECT key, reason, message, run_id FROM syncline."${s.tables.rejectionsName}" ORDER BY key`,
      );
    const refused = await rejections();
    expect(refused.map((r) => [r.key, r.reason, r.run_id])).toEqual([
      ['5', 'RowsRejected', first.runId],
      ['6', 'RowsRejected', first.runId],
    ]);
    expect(refused[0]?.message).toMatch(/^no record with key 5 in .* to update$/);
    // Stale rows: no checksum can prove the model unchanged; the two go again, and fail again.
    const second = await s.run();
    expect(second.staging?.narrowed).toEqual({ rows: 2, previousRows: 2, byChecksum: false });
    // Adds that never arrived: stale with no hash, so added again.
    expect(second.counts).toMatchObject({ added: 2, failed: 2, delivered: 0 });
    await s.dest(`INSERT INTO $D (id, name) VALUES (5, 'old'), (6, 'old')`);
    const third = await s.run();
    expect(third.counts).toMatchObject({ added: 2, delivered: 2, failed: 0 });
    expect(await s.stateRow()).toMatchObject({ stale_count: '0' });
    expect(await rejections()).toEqual([]);
    expect((await s.run()).staging?.narrowed?.byChecksum).toBe(true);
  });

  it('resends only the rows with a value of a newly mapped field, and reads every row when the mode sends every row', async () => {
    const mappings = (extra: Mapping[] = []): Mapping[] => [
      { to: 'id', from: 'id', valueType: 'string' },
      { to: 'name', from: 'name', valueType: 'string' },
      ...extra,
    ];
    const s = await scenario(30, { mode: 'upsert', mappings: mappings() });
    await s.run();
    await s.source(`UPDATE $T SET amount = NULL WHERE id > 10`);
    await s.source(`UPDATE $T SET name = 'edited' WHERE id = 20`);
    await s.dest(`ALTER TABLE $D ADD COLUMN amount numeric(12,2)`);
    const wider = { mappings: mappings([{ to: 'amount', from: 'amount', valueType: 'string' }]) };
    const widened = await s.run(wider);
    // Rows 1-10 have an amount (new to the destination); row 20 changed its name. Every row's hash is
    // written anew (over one more column), so every row is staged once.
    expect(widened.counts).toMatchObject({ changed: 11, delivered: 11 });
    expect(widened.staging?.narrowed).toBeUndefined();
    const again = await s.run(wider);
    expect(again.counts.changed).toBe(0);
    expect(again.staging?.narrowed?.byChecksum).toBe(true);
    // Mode all sends every row: every row is staged, and the whole snapshot read.
    const all = await s.run({ ...wider, mode: 'all' });
    expect(all.counts).toMatchObject({ delivered: 30 });
    expect(all.staging?.narrowed).toBeUndefined();
  });

  it('resends every row when a column type changes or a column is added, and stops on a changed primary key', async () => {
    const s = await scenario(20, { mode: 'upsert' });
    await s.run();
    const retyped = await s.run(
      {},
      { query: `SELECT id, name, amount::float8 AS amount, tags, meta, seen_at FROM $T` },
    );
    expect(retyped.staging?.narrowed).toBeUndefined();
    expect(retyped.counts).toMatchObject({ changed: 20, delivered: 20 });
    expect((await s.run()).counts).toMatchObject({ changed: 20 });
    await s.dest(`ALTER TABLE $D ADD COLUMN extra int`);
    const wider = await s.run({}, { query: `SELECT ${COLUMNS}, 1 AS extra FROM $T` });
    expect(wider.counts).toMatchObject({ changed: 20, delivered: 20 });
    const rekeyed = await s.run({}, { query: `SELECT ${COLUMNS}, 1 AS extra FROM $T`, primaryKey: 'name' });
    expect(rekeyed.result).toBe('Failed');
    expect(rekeyed.reason).toBe('PrimaryKeyChanged');
    expect(rekeyed.counts.delivered).toBe(0);
  });

  it('names duplicate and null keys, and holds a key duplicated with skip', async () => {
    const twice = `SELECT ${COLUMNS} FROM $T UNION ALL SELECT ${COLUMNS} FROM $T WHERE name = 'twice'`;
    const s = await scenario(30, { mode: 'upsert', deleteBehavior: 'delete' }, twice);
    await s.run();
    expect((await s.run()).staging?.narrowed?.byChecksum).toBe(true);
    // An unchanged row duplicated: it leaves the model twice, so only the counts can tell.
    await s.source(`UPDATE $T SET name = 'twice' WHERE id = 9`);
    await s.source(`UPDATE $T SET name = 'edited' WHERE id = 8`);
    const failed = await s.run();
    expect(failed.reason).toBe('DuplicatePrimaryKey');
    expect(failed.message).toMatch(/first 1: 9\b/);
    const skipped = await s.run({ invalidPrimaryKeys: 'skip' });
    expect(skipped.counts).toMatchObject({ changed: 1, removed: 0, delivered: 1, skipped: 2 });
    expect(skipped.invalidKeys).toMatchObject({ duplicateCount: 1, sample: ['9'] });
    expect(await s.dest(`SELECT id, name FROM $D WHERE id IN (8, 9) ORDER BY id`)).toEqual([
      { id: 8, name: 'edited' },
      { id: 9, name: 'name 9' },
    ]);
    // The held key is stale in the table; once unique again it goes.
    expect((await s.snapshotRows('stale')).map((r) => r.key_text)).toEqual(['9']);
    await s.source(`UPDATE $T SET name = 'once' WHERE id = 9`);
    const released = await s.run({ invalidPrimaryKeys: 'skip' });
    expect(released.counts).toMatchObject({ changed: 1, delivered: 1, skipped: 0 });
    expect(await s.same()).toBe(true);

    const withNull = await s.run(
      {},
      { query: `SELECT ${COLUMNS} FROM $T UNION ALL SELECT NULL, 'x', 1, '{}', '{}', now()` },
    );
    expect(withNull.reason).toBe('NullPrimaryKey');
    expect(withNull.message).toContain('<null>');
  });

  it('names a key the model returns twice unchanged, whose copies both equal the snapshot row', async () => {
    counter++;
    const dups = `dups_${counter}`;
    await sql(srcUrl, `CREATE TABLE ${dups} (id int)`);
    const twice = `SELECT ${COLUMNS} FROM $T UNION ALL SELECT t.id, t.name, t.amount, t.tags, t.meta, t.seen_at FROM $T t JOIN ${dups} d ON d.id = t.id`;
    const s = await scenario(40, { mode: 'upsert', deleteBehavior: 'delete' }, twice);
    await s.run();
    await sql(srcUrl, `INSERT INTO ${dups} VALUES (12), (30)`);
    await s.source(`DELETE FROM $T WHERE id = 1`);
    const failed = await s.run();
    expect(failed.reason).toBe('DuplicatePrimaryKey');
    expect(failed.message).toMatch(/2 primary key value\(s\).*first 2: 12, 30/);
    const skipped = await s.run({ invalidPrimaryKeys: 'skip' });
    expect(skipped.counts).toMatchObject({ queried: 41, removed: 1, delivered: 1, skipped: 4 });
    expect(skipped.invalidKeys).toMatchObject({ duplicateCount: 2, sample: ['12', '30'] });
    // Held, not deleted: the destination keeps them; the table marks them stale.
    expect(await s.dest(`SELECT count(*)::int AS n FROM $D WHERE id IN (12, 30)`)).toEqual([{ n: 2 }]);
    expect((await s.snapshotRows('stale')).map((r) => r.key_text)).toEqual(['12', '30']);
    await sql(srcUrl, `DELETE FROM ${dups}`);
    const released = await s.run({ invalidPrimaryKeys: 'skip' });
    expect(released.counts).toMatchObject({ changed: 2, delivered: 2, skipped: 0 });
    expect(await s.same()).toBe(true);
    expect((await s.run()).staging?.narrowed?.byChecksum).toBe(true);
  });

  it.each([
    ['text', `'k' || g`, [`'a'`, `'A'`, `'b '`, `'b'`, `'ü'`]],
    [
      'uuid',
      `md5(g::text)::uuid`,
      [`'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'`, `'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12'`],
    ],
    ['bigint', `g * 9007199254740993`, ['-9223372036854775808', '9223372036854775807']],
  ])('compares %s keys in PostgreSQL exactly as the engine does', async (type, key, extra) => {
    counter++;
    const table = `keyed_${counter}`;
    const target = `keyed_copy_${counter}`;
    await sql(srcUrl, `CREATE TABLE ${table} (code ${type} PRIMARY KEY, v text)`);
    await sql(srcUrl, `INSERT INTO ${table} SELECT ${key}, 'v' || g FROM generate_series(1, 50) g`);
    await sql(srcUrl, `INSERT INTO ${table} VALUES ${extra.map((k) => `(${k}, 'x')`).join(', ')}`);
    const state = tempState();
    states.push(state);
    const plan = () => {
      const p = makePlan({
        server,
        sourceDb: 'src',
        query: `SELECT code, v FROM ${table}`,
        primaryKey: 'code',
        destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
        sync: { mode: 'upsert', deleteBehavior: 'delete', target: { table: target }, snapshot: WAREHOUSE },
        stateUrl: state.url,
        name: `keyed-${counter}`,
      });
      return p;
    };
    expect((await run(plan(), server)).counts.added).toBe(50 + extra.length);
    expect((await run(plan(), server)).staging?.narrowed?.byChecksum).toBe(true);
    await sql(srcUrl, `UPDATE ${table} SET v = 'changed' WHERE code = ${extra[0]}`);
    await sql(srcUrl, `DELETE FROM ${table} WHERE code = ${extra[extra.length - 1]}`);
    const changed = await run(plan(), server);
    expect(changed.counts).toMatchObject({ changed: 1, removed: 1, delivered: 2 });
    expect(changed.staging?.narrowed).toEqual({ rows: 1, previousRows: 2, byChecksum: false });
    const model = await sql(srcUrl, `SELECT code::text, v FROM ${table} ORDER BY code`);
    expect(await sql(dstUrl, `SELECT code::text, v FROM ${target} ORDER BY code`)).toEqual(model);
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

  it('moves the snapshot when the Sync switches between the diff store and the warehouse, sending nothing again', async () => {
    const s = await scenario(300, { mode: 'upsert', deleteBehavior: 'delete', snapshot: BUCKET });
    expect((await s.run()).counts).toMatchObject({ added: 300, delivered: 300 });
    await s.source(`UPDATE $T SET name = 'while in the bucket' WHERE id = 9`);
    // To the warehouse: the bucket's snapshot is copied into the table, and only the change is sent.
    const moved = await s.run({ snapshot: WAREHOUSE });
    expect(moved.result, moved.message).toBe('Succeeded');
    expect(moved.reason).toBe('SnapshotMoved');
    expect(moved.message).toContain('nothing is sent again');
    expect(moved.counts).toMatchObject({ changed: 1, added: 0, removed: 0, delivered: 1 });
    expect(await s.stateRow()).toMatchObject({ row_count: '300', stale_count: '0' });
    const tombstone = JSON.parse(readFileSync(join(s.state.dir, 'test', s.name, 'manifest.json'), 'utf8'));
    expect(tombstone.movedTo).toMatchObject({ location: 'warehouse', confirmed: true });
    const settled = await s.run({ snapshot: WAREHOUSE });
    expect(settled.counts).toMatchObject({ delivered: 0 });
    expect(settled.staging?.narrowed?.byChecksum).toBe(true);
    await s.source(`DELETE FROM $T WHERE id = 10`);
    expect((await s.run({ snapshot: WAREHOUSE })).counts).toMatchObject({ removed: 1, delivered: 1 });
    // And back: the table's state (with the deletion) goes into the bucket, and the tables are dropped.
    const back = await s.run({ snapshot: BUCKET });
    expect(back.reason).toBe('SnapshotMoved');
    expect(back.counts).toMatchObject({ added: 0, changed: 0, removed: 0, delivered: 0 });
    expect(await s.stateRow()).toBeUndefined();
    expect(await sql(srcUrl, 'SELECT to_regclass($1) AS t', [`syncline."${s.tables.snapshotName}"`])).toEqual(
      [{ t: null }],
    );
    await s.source(`INSERT INTO $T VALUES (10, 'back', 1, '{}', '{}', now())`);
    expect((await s.run({ snapshot: BUCKET })).counts).toMatchObject({ added: 1, delivered: 1 });
    expect(await s.same()).toBe(true);
  });

  it('takes the default location of the Source, which a Sync overrides', async () => {
    const s = await scenario(20, { mode: 'upsert' });
    const planned = s.plan({ snapshot: undefined });
    const sourceSpec = { ...planned.source.spec, snapshot: { location: 'warehouse' as const } };
    const withDefault = { ...planned, source: { ...planned.source, spec: sourceSpec } };
    const first = await run(withDefault, server);
    expect(first.result, first.message).toBe('Succeeded');
    expect(await s.stateRow()).toMatchObject({ row_count: '20' });
    const overridden = await run(
      { ...withDefault, sync: { ...withDefault.sync, spec: { ...withDefault.sync.spec, snapshot: BUCKET } } },
      server,
    );
    expect(overridden.reason).toBe('SnapshotMoved');
    expect(await s.stateRow()).toBeUndefined();
  });

  it('resyncs with a clear reason when someone dropped the schema, deleting by the keys the bucket still has', async () => {
    // Kept in the warehouse from the first run: the bucket holds only the mark that it is there.
    const s = await scenario(30, { mode: 'upsert', deleteBehavior: 'delete' });
    expect((await s.run()).counts).toMatchObject({ delivered: 30 });
    await sql(srcUrl, 'DROP SCHEMA syncline CASCADE');
    const resynced = await s.run();
    expect(resynced.result, resynced.message).toBe('Succeeded');
    expect(resynced.reason).toBe('WarehouseSnapshotLost');
    expect(resynced.message).toMatch(/holds no state now \(was its schema or state table dropped\?\)/);
    expect(resynced.fullResync).toBe(true);
    expect(resynced.counts).toMatchObject({ queried: 30, delivered: 30 });
    expect((await s.run()).staging?.narrowed?.byChecksum).toBe(true);

    // Moved there from the bucket: the bucket's last snapshot still names keys, so removed rows are deleted.
    const t = await scenario(30, { mode: 'upsert', deleteBehavior: 'delete', snapshot: BUCKET });
    await t.run();
    expect((await t.run({ snapshot: WAREHOUSE })).reason).toBe('SnapshotMoved');
    await sql(srcUrl, 'DROP SCHEMA syncline CASCADE');
    await t.source('DELETE FROM $T WHERE id <= 3');
    const repaired = await t.run({ snapshot: WAREHOUSE });
    expect(repaired.reason).toBe('WarehouseSnapshotLost');
    expect(repaired.counts).toMatchObject({ removed: 3, delivered: 30 });
    expect(await t.same()).toBe(true);
  });

  it('fails at open, before anything is sent, naming the grant the Source user lacks', async () => {
    const s = await scenario(5, { mode: 'upsert' });
    await sql(srcUrl, `CREATE ROLE reader LOGIN PASSWORD '${server.password}'`);
    await sql(srcUrl, 'GRANT USAGE ON SCHEMA syncline TO reader');
    const planned = s.plan({ snapshot: { location: 'warehouse', schema: 'syncline' } });
    const postgres = { ...planned.source.spec.postgres!, user: 'reader' };
    const refused = await run(
      { ...planned, source: { ...planned.source, spec: { ...planned.source.spec, postgres } } },
      server,
    );
    expect(refused.result).toBe('Failed');
    expect(refused.stage).toBe('open');
    expect(refused.reason).toBe('WarehouseSnapshotGrantMissing');
    expect(refused.message).toContain('GRANT CREATE ON SCHEMA "syncline" TO "reader"');
    expect(await s.dest(`SELECT to_regclass('$D') AS t`)).toEqual([{ t: null }]);
  });

  it("names the missing grant in the connection check of a Source that keeps its Syncs' snapshots in the warehouse", async () => {
    await sql(srcUrl, `CREATE ROLE checker LOGIN PASSWORD '${server.password}'`);
    await sql(srcUrl, 'CREATE SCHEMA checked');
    await sql(srcUrl, 'GRANT USAGE ON SCHEMA checked TO checker');
    const work = tempState();
    states.push(work);
    const check = async (snapshot?: { location: 'warehouse' | 'diffStore'; schema?: string }) => {
      const termination = join(work.dir, 'termination');
      const postgres = { ...pgSettings(server, 'src'), user: 'checker' };
      const plan = {
        apiVersion: 'syncline.io/v1alpha1',
        kind: 'CheckPlan',
        namespace: 'test',
        target: {
          kind: 'Source',
          name: 'db',
          spec: { type: 'postgres', postgres, ...(snapshot ? { snapshot } : {}) },
        },
      };
      const env = {
        SYNCLINE_CHECK_PLAN: JSON.stringify(plan),
        SYNCLINE_TERMINATION_LOG: termination,
        SYNCLINE_SECRET_PG__PASSWORD: server.password,
      };
      const code = await runCheck({ env, log: silentLogger() });
      return {
        code,
        ...(JSON.parse(readFileSync(termination, 'utf8')) as {
          ok: boolean;
          reason: string;
          message: string;
        }),
      };
    };
    expect(await check()).toMatchObject({ code: 0, ok: true });
    expect(await check({ location: 'diffStore' })).toMatchObject({ code: 0, ok: true });
    const warehouse = { location: 'warehouse', schema: 'checked' } as const;
    const refused = await check(warehouse);
    expect(refused).toMatchObject({ code: 1, ok: false, reason: 'WarehouseSnapshotGrantMissing' });
    expect(refused.message).toContain('GRANT CREATE ON SCHEMA "checked" TO "checker"');
    await sql(srcUrl, 'GRANT CREATE ON SCHEMA checked TO checker');
    expect(await check(warehouse)).toMatchObject({ code: 0, ok: true });
    // A check creates nothing.
    expect(
      await sql(srcUrl, "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'checked'"),
    ).toEqual([{ n: 0 }]);
  });

  it("drops a deleted Sync's tables (syncline drop-snapshot, the finalizer's Job), and only its own", async () => {
    const a = await scenario(10, { mode: 'upsert' });
    const b = await scenario(10, { mode: 'upsert' });
    await a.run();
    await b.run();
    const work = tempState();
    states.push(work);
    const drop = async (sync: string, password = server.password) => {
      const termination = join(work.dir, 'termination');
      const plan = {
        apiVersion: 'syncline.io/v1alpha1',
        kind: 'SnapshotDropPlan',
        namespace: 'test',
        sync,
        source: { name: 'db', spec: { type: 'postgres', postgres: pgSettings(server, 'src') } },
        schema: 'syncline',
      };
      const env = {
        SYNCLINE_DROP_PLAN: JSON.stringify(plan),
        SYNCLINE_TERMINATION_LOG: termination,
        SYNCLINE_SECRET_PG__PASSWORD: password,
        TMPDIR: work.dir,
      };
      const code = await runSnapshotDrop({ env, log: silentLogger() });
      const said = JSON.parse(readFileSync(termination, 'utf8')) as {
        ok: boolean;
        reason: string;
        message: string;
        dropped?: number;
      };
      return { code, ...said };
    };
    const tableOf = async (t: typeof a) =>
      (
        await sql<{ t: string | null }>(srcUrl, 'SELECT to_regclass($1)::text AS t', [
          `syncline."${t.tables.snapshotName}"`,
        ])
      )[0]?.t;
    const refused = await drop(a.name, 'not-the-password');
    expect(refused).toMatchObject({ code: 1, ok: false, reason: 'AuthenticationFailed' });
    expect(refused.message).not.toContain('not-the-password');
    expect(await tableOf(a)).not.toBeNull();
    expect(await drop(a.name)).toMatchObject({ code: 0, ok: true, dropped: 3 });
    expect(await tableOf(a)).toBeNull();
    expect(await a.stateRow()).toBeUndefined();
    expect(await tableOf(b)).not.toBeNull();
    expect(await b.stateRow()).toMatchObject({ row_count: '10' });
    // Again (the Job retried): nothing left, and that is no failure.
    expect(await drop(a.name)).toMatchObject({ code: 0, ok: true, dropped: 0 });
  });

  it('plans without writing anything, and repairs by a full resync', async () => {
    const s = await scenario(10, { mode: 'upsert' });
    // A dry run before the first commit creates no table and no state.
    const planned = await s.run({}, { dryRun: true });
    expect(planned.result, planned.message).toBe('Succeeded');
    expect(await s.stateRow()).toBeUndefined();
    await s.run();
    await s.source(`UPDATE $T SET name = 'edited' WHERE id = 3`);
    const before = await s.stateRow();
    const dry = await s.run({}, { dryRun: true });
    expect(dry.counts).toMatchObject({ changed: 1, delivered: 0 });
    expect(await s.stateRow()).toEqual(before);
    // A manifest someone broke: DiffStoreCorrupt naming the table, then a full resync sends every row.
    await sql(srcUrl, `UPDATE syncline.syncline_state SET manifest = '{"version": 9}' WHERE sync = $1`, [
      s.name,
    ]);
    const broken = await s.run();
    expect(broken.reason).toBe('DiffStoreCorrupt');
    expect(broken.message).toContain('syncline_state');
    const repaired = await s.runFullResync();
    expect(repaired.result, repaired.message).toBe('Succeeded');
    expect(repaired.counts).toMatchObject({ changed: 10, delivered: 10 });
    expect((await s.run()).staging?.narrowed?.byChecksum).toBe(true);
  });
});
