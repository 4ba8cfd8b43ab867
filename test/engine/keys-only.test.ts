// Resyncs from PostgreSQL that read only keys and row hashes out of the database (PostgreSQL hashing the
// rows itself), and then only the rows whose hash changed: through the real engine, PostgreSQL to
// PostgreSQL.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Mapping, SyncSpec } from '../../crds/index.ts';
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

/** A source table of n rows of several types, a destination table and a diff store of its own. */
async function scenario(rows: number, sync: Partial<SyncSpec> & { mode: SyncSpec['mode'] }, query?: string) {
  counter++;
  const table = `things_${counter}`;
  const target = `copy_${counter}`;
  const state = tempState();
  states.push(state);
  const name = `keys-${counter}`;
  await sql(
    srcUrl,
    `CREATE TABLE ${table} (id int PRIMARY KEY, name text, amount numeric(12,2), tags text[], meta jsonb, seen_at timestamptz)`,
  );
  await sql(
    srcUrl,
    `INSERT INTO ${table} SELECT g, 'name ' || g, g * 1.5, ARRAY['t' || (g % 3)], jsonb_build_object('g', g),
       timestamptz '2024-01-01' + g * interval '1 hour' FROM generate_series(1, ${rows}) g`,
  );
  const plan = (extra: Partial<SyncSpec> = {}) =>
    makePlan({
      server,
      sourceDb: 'src',
      query: (query ?? `SELECT ${COLUMNS} FROM $T`).replaceAll('$T', table),
      destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
      sync: { target: { table: target }, ...sync, ...extra },
      stateUrl: state.url,
      name,
    });
  const manifestFile = join(state.dir, 'test', name, 'manifest.json');
  return {
    source: (text: string) => sql(srcUrl, text.replaceAll('$T', table)),
    dest: (text: string) => sql(dstUrl, text.replaceAll('$D', target)),
    run: (extra: Partial<SyncSpec> = {}, options: { dryRun?: boolean } = {}) =>
      run({ ...plan(extra), dryRun: options.dryRun ?? false }, server),
    runFullResync: () => run({ ...plan(), fullResync: true }, server),
    manifest: () => JSON.parse(readFileSync(manifestFile, 'utf8')) as Record<string, unknown>,
    editManifest: (edit: (m: Record<string, unknown>) => Record<string, unknown>) =>
      writeFileSync(manifestFile, JSON.stringify(edit(JSON.parse(readFileSync(manifestFile, 'utf8'))))),
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

describe('keys-only resyncs (PostgreSQL hashes the rows)', () => {
  it('moves the snapshot to PostgreSQL hashes on the second run, then reads only the rows that changed', async () => {
    const s = await scenario(500, { mode: 'upsert', deleteBehavior: 'delete' });
    const first = await s.run();
    expect(first.result).toBe('Succeeded');
    expect(first.staging).toEqual({ keysOnly: false, hashFunction: 'duckdb' });
    expect(s.manifest()['hashFunction']).toBe('duckdb');

    // Nothing changed: compared with DuckDB's hashes, kept as PostgreSQL's from now on.
    const second = await s.run();
    expect(second.counts).toMatchObject({ queried: 500, added: 0, changed: 0, removed: 0, delivered: 0 });
    expect(second.staging).toEqual({ keysOnly: false, hashFunction: 'postgres' });
    expect(s.manifest()['hashFunction']).toBe('postgres');
    expect(s.manifest()['hashProbe']).toMatch(/^-?\d+$/);

    const third = await s.run();
    expect(third.counts).toMatchObject({ queried: 500, changed: 0, delivered: 0 });
    expect(third.staging).toEqual({ keysOnly: true, fetchedRows: 0, hashFunction: 'postgres' });
    expect(third.snapshot).toBe(second.snapshot);

    // One change of each column's type, a row gone, a row new.
    await s.source(`UPDATE $T SET name = 'renamed' WHERE id = 2`);
    await s.source(`UPDATE $T SET amount = amount + 0.01 WHERE id = 3`);
    await s.source(`UPDATE $T SET tags = ARRAY['t0', 'x'] WHERE id = 4`);
    await s.source(`UPDATE $T SET meta = '{"g": 5, "more": true}' WHERE id = 5`);
    await s.source(`UPDATE $T SET seen_at = seen_at + interval '1 microsecond' WHERE id = 6`);
    await s.source(`UPDATE $T SET name = NULL WHERE id = 7`);
    await s.source(`DELETE FROM $T WHERE id = 1`);
    await s.source(`INSERT INTO $T VALUES (501, 'newcomer', 1, '{}', '{}', now())`);
    const fourth = await s.run();
    expect(fourth.result).toBe('Succeeded');
    expect(fourth.counts).toMatchObject({ queried: 500, added: 1, changed: 6, removed: 1, delivered: 8 });
    expect(fourth.operations).toEqual({ upsert: 7, delete: 1 });
    expect(fourth.outcomes).toEqual({
      upsert: { delivered: 7, failed: 0 },
      delete: { delivered: 1, failed: 0 },
    });
    expect(fourth.staging).toEqual({ keysOnly: true, fetchedRows: 7, hashFunction: 'postgres' });
    expect(await s.same()).toBe(true);

    // The committed snapshot holds the new hashes: the next run finds nothing to do.
    const fifth = await s.run();
    expect(fifth.counts).toMatchObject({ added: 0, changed: 0, removed: 0, delivered: 0 });
    expect(fifth.staging?.keysOnly).toBe(true);
  });

  it('sends only changes in update and insert modes too', async () => {
    for (const mode of ['update', 'insert'] as const) {
      const s = await scenario(50, { mode });
      // update needs the records to exist: the first run creates them.
      await s.run({ mode: mode === 'update' ? 'upsert' : mode });
      await s.run();
      await s.source(`UPDATE $T SET name = 'changed' WHERE id = 10`);
      await s.source(`INSERT INTO $T VALUES (51, 'newcomer', 1, '{}', '{}', now())`);
      const result = await s.run();
      expect(result.staging?.keysOnly, mode).toBe(true);
      if (mode === 'insert') {
        // insert sends only rows new to the destination: the changed row is not fetched at all.
        expect(result.operations).toEqual({ insert: 1 });
        expect(result.staging?.fetchedRows).toBe(1);
        expect(await s.dest(`SELECT name FROM $D WHERE id IN (10, 51) ORDER BY id`)).toEqual([
          { name: 'name 10' },
          { name: 'newcomer' },
        ]);
      } else {
        expect(result.operations).toEqual({ update: 2 });
        expect(result.staging?.fetchedRows).toBe(2);
      }
    }
  });

  it('reads every row when the mode sends every row, the mappings change, or a full resync is asked for', async () => {
    const s = await scenario(40, { mode: 'upsert' });
    await s.run();
    await s.run();
    expect((await s.run()).staging?.keysOnly).toBe(true);
    expect((await s.run({ mode: 'all' })).staging?.keysOnly).toBe(false);

    // A newly mapped field: compared over the columns the snapshot was hashed from (by PostgreSQL), so
    // only rows with a value for the new field go.
    const mappings = (extra: Mapping[] = []): Mapping[] => [
      { to: 'id', from: 'id', valueType: 'string' },
      { to: 'name', from: 'name', valueType: 'string' },
      ...extra,
    ];
    const narrow = await scenario(30, { mode: 'upsert', mappings: mappings() });
    await narrow.run();
    await narrow.run();
    expect((await narrow.run()).staging?.keysOnly).toBe(true);
    await narrow.source(`UPDATE $T SET amount = NULL WHERE id > 10`);
    await narrow.source(`UPDATE $T SET name = 'edited' WHERE id = 20`);
    await narrow.dest(`ALTER TABLE $D ADD COLUMN amount numeric(12,2)`);
    const widened = await narrow.run({
      mappings: mappings([{ to: 'amount', from: 'amount', valueType: 'string' }]),
    });
    expect(widened.staging?.keysOnly).toBe(false);
    // Rows 1-10 have an amount (new to the destination); row 20 changed its name.
    expect(widened.counts).toMatchObject({ changed: 11, delivered: 11 });
    const again = await narrow.run({
      mappings: mappings([{ to: 'amount', from: 'amount', valueType: 'string' }]),
    });
    expect(again.staging?.keysOnly).toBe(true);
    expect(again.counts.changed).toBe(0);

    const resync = await s.runFullResync();
    expect(resync.staging?.keysOnly).toBe(false);
    expect(resync.counts).toMatchObject({ changed: 40, delivered: 40 });
    expect((await s.run()).staging?.keysOnly).toBe(true);
  });

  it('notices values moving between keys, and a key replaced by another with the same values', async () => {
    const s = await scenario(20, { mode: 'upsert', deleteBehavior: 'delete' });
    await s.run();
    // Swap two rows' values (the set of hashes stays the same, the keys they belong to do not).
    await s.source(`UPDATE $T SET name = CASE id WHEN 3 THEN 'name 4' ELSE 'name 3' END WHERE id IN (3, 4)`);
    const swapped = await s.run();
    expect(swapped.staging?.keysOnly).toBe(false);
    expect(swapped.counts).toMatchObject({ changed: 2, delivered: 2 });
    await s.source(`UPDATE $T SET name = CASE id WHEN 5 THEN 'name 6' ELSE 'name 5' END WHERE id IN (5, 6)`);
    const again = await s.run();
    expect(again.staging?.keysOnly).toBe(true);
    expect(again.counts).toMatchObject({ changed: 2, delivered: 2 });
    // Row 7 leaves, row 21 arrives with row 7's values: the row count and the hashes are unchanged.
    await s.source(`INSERT INTO $T SELECT 21, name, amount, tags, meta, seen_at FROM $T WHERE id = 7`);
    await s.source(`DELETE FROM $T WHERE id = 7`);
    const moved = await s.run();
    expect(moved.counts).toMatchObject({ added: 1, removed: 1, delivered: 2 });
    expect(await s.same()).toBe(true);
    expect((await s.run()).counts).toMatchObject({ added: 0, changed: 0, removed: 0 });
  });

  it('plans a keys-only resync without delivering, and holds a key that became duplicated with skip', async () => {
    const s = await scenario(
      30,
      { mode: 'upsert', deleteBehavior: 'delete', invalidPrimaryKeys: 'skip' },
      `SELECT ${COLUMNS} FROM $T UNION ALL SELECT ${COLUMNS} FROM $T WHERE name = 'twice'`,
    );
    await s.run();
    await s.run();
    await s.source(`UPDATE $T SET name = 'edited' WHERE id = 8`);
    await s.source(`UPDATE $T SET name = 'twice' WHERE id = 9`);
    const before = s.manifest();
    const planned = await s.run({}, { dryRun: true });
    expect(planned.staging).toEqual({ keysOnly: true, fetchedRows: 1, hashFunction: 'postgres' });
    expect(planned.counts).toMatchObject({ changed: 1, delivered: 0, skipped: 2 });
    expect(planned.samples?.['upsert']).toEqual([
      expect.objectContaining({ key: '8', fields: expect.objectContaining({ name: 'edited' }) }),
    ]);
    expect(s.manifest()).toEqual(before);
    expect(await s.dest(`SELECT name FROM $D WHERE id = 8`)).toEqual([{ name: 'name 8' }]);

    const result = await s.run();
    expect(result.staging?.keysOnly).toBe(true);
    // Key 9 is held (neither sent nor deleted) while it is duplicated; key 8 goes.
    expect(result.counts).toMatchObject({ changed: 1, removed: 0, delivered: 1, skipped: 2 });
    expect(result.invalidKeys).toMatchObject({ duplicateCount: 1, sample: ['9'] });
    expect(await s.dest(`SELECT id, name FROM $D WHERE id IN (8, 9) ORDER BY id`)).toEqual([
      { id: 8, name: 'edited' },
      { id: 9, name: 'name 9' },
    ]);
    await s.source(`UPDATE $T SET name = 'once' WHERE id = 9`);
    const released = await s.run();
    expect(released.counts).toMatchObject({ changed: 1, delivered: 1, skipped: 0 });
    expect(await s.same()).toBe(true);
  });

  it('resends every row once when PostgreSQL hashes differently from the snapshot', async () => {
    const s = await scenario(20, { mode: 'upsert' });
    await s.run();
    await s.run();
    s.editManifest((m) => ({ ...m, hashProbe: '12345' }));
    const resent = await s.run();
    expect(resent.staging?.keysOnly).toBe(false);
    expect(resent.counts).toMatchObject({ changed: 20, delivered: 20 });
    const after = await s.run();
    expect(after.staging?.keysOnly).toBe(true);
    expect(after.counts.changed).toBe(0);
  });

  it('counts a row the model does not return when read again as failed, sends nothing for it, and retries it', async () => {
    // A model that leaves row 5 out of the second read (the one filtering on the changed keys):
    // current_query() differs between the two statements. A deterministic model never does this.
    const s = await scenario(
      10,
      { mode: 'upsert' },
      `SELECT ${COLUMNS} FROM $T WHERE id <> 5 OR strpos(current_query(), 'ANY' || '(E') = 0`,
    );
    await s.run();
    await s.run();
    await s.source(`UPDATE $T SET name = 'edited' WHERE id IN (4, 5)`);
    const result = await s.run();
    expect(result.staging?.keysOnly).toBe(true);
    expect(result.result).toBe('PartiallySucceeded');
    expect(result.counts).toMatchObject({ changed: 2, delivered: 1, failed: 1 });
    expect(result.outcomes).toEqual({ upsert: { delivered: 1, failed: 1 } });
    expect(result.rejected).toEqual([
      {
        key: '5',
        operation: 'upsert',
        reason: expect.stringMatching(/did not return this row.*deterministic/),
      },
    ]);
    expect(await s.dest(`SELECT id, name FROM $D WHERE id IN (4, 5) ORDER BY id`)).toEqual([
      { id: 4, name: 'edited' },
      { id: 5, name: 'name 5' },
    ]);
    // Not recorded as delivered: the next run tries again.
    expect((await s.run()).counts).toMatchObject({ changed: 1, failed: 1 });
  });
});
