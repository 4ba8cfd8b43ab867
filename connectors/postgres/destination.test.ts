import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationSpec, Mapping, SyncSpec } from '../../crds/index.ts';
import { isSynclineError } from '../../core/errors.ts';
import { freePort } from '../../test/stack/process.ts';
import { startPostgres, type PostgresServer } from '../../test/stack/postgres.ts';
import { change, deliveryContext, testContext } from '../shared/test-context.ts';
import type { ColumnInfo, DestinationWriter } from '../../core/connectors.ts';
import { destination } from './index.ts';

let server: PostgresServer;
let db: pg.Client;
const base = testContext({ pg: { password: 'syncline-test', wrong: 'hunter2-wrong' } });

function spec(overrides: Record<string, unknown> = {}): DestinationSpec {
  return {
    type: 'postgres',
    postgres: {
      host: server.host,
      port: server.port,
      database: 'dst',
      user: server.user,
      password: { secretKeyRef: { name: 'pg', key: 'password' } },
      schema: 'public',
      ...overrides,
    },
  } as DestinationSpec;
}

const columns: ColumnInfo[] = [
  { name: 'id', type: 'BIGINT' },
  { name: 'amount', type: 'DECIMAL(38,9)' },
  { name: 'at', type: 'TIMESTAMP WITH TIME ZONE' },
  { name: 'doc', type: 'JSON' },
  { name: 'tags', type: 'VARCHAR[]' },
  { name: 'raw', type: 'BLOB' },
  { name: 'note', type: 'VARCHAR' },
];

async function open(table: string, sync: Partial<SyncSpec> = {}, mappings?: Mapping[], cols = columns) {
  const harness = deliveryContext(base, {
    destination: spec(),
    sync: { target: { table }, ...sync },
    columns: cols,
    primaryKey: 'id',
    mappings,
  });
  const writer = await destination!.open(harness.ctx);
  return { ...harness, writer };
}

async function rows(sql: string): Promise<Record<string, unknown>[]> {
  return (await db.query(sql)).rows as Record<string, unknown>[];
}

async function reason(promise: Promise<unknown>): Promise<{ reason: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isSynclineError(error)) return { reason: error.reason, message: error.message };
    throw error;
  }
  throw new Error('expected a SynclineError');
}

const writers: DestinationWriter[] = [];

beforeAll(async () => {
  server = await startPostgres();
  db = new pg.Client({ connectionString: await server.createDatabase('dst') });
  await db.connect();
  await db.query("SET TimeZone = 'UTC'");
}, 120_000);

afterAll(async () => {
  for (const w of writers) await w.close().catch(() => undefined);
  await db?.end();
  await server?.stop();
  base.cleanup();
});

describe('postgres destination', () => {
  it('creates a missing table from the staged types and round-trips every value exactly', async () => {
    const { writer, requests, acquired } = await open('typed');
    writers.push(writer);
    expect(base.log.lines.some((l) => l.msg?.includes('created the destination table'))).toBe(true);
    const results = await writer.write([
      change('upsert', '9007199254740993', {
        id: '9007199254740993',
        amount: '12345678901234567890123456789.123456789',
        at: '2024-06-01T10:00:00.123456Z',
        doc: { big: 1, nested: { list: [1, 'two'] } },
        tags: ['a,b', 'c"d', null, '', 'Zoë 😀'],
        raw: '\\x00\\xFFA',
        note: 'line one\nline two, "quoted" 中文 😀',
      }),
      change('upsert', 2, { id: 2, amount: null, at: null, doc: null, tags: [], raw: null, note: '' }),
      change('upsert', 3, {
        id: 3,
        amount: '-0.000000001',
        at: null,
        doc: '{"already":"json"}',
        tags: null,
        raw: null,
        note: null,
      }),
    ]);
    expect(results).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(acquired()).toBe(1);
    const types = await rows(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'typed' ORDER BY ordinal_position`,
    );
    expect(types.map((t) => t.data_type)).toEqual([
      'bigint',
      'numeric',
      'timestamp with time zone',
      'jsonb',
      'ARRAY',
      'bytea',
      'text',
    ]);
    const stored = await rows(
      `SELECT id::text, amount::text, at::text, doc::text, tags, encode(raw, 'hex') AS raw, note FROM typed ORDER BY id`,
    );
    expect(stored).toEqual([
      { id: '2', amount: null, at: null, doc: null, tags: [], raw: null, note: '' },
      {
        id: '3',
        amount: '-0.000000001',
        at: null,
        doc: '{"already": "json"}',
        tags: null,
        raw: null,
        note: null,
      },
      {
        id: '9007199254740993',
        amount: '12345678901234567890123456789.123456789',
        at: '2024-06-01 10:00:00.123456+00',
        doc: '{"big": 1, "nested": {"list": [1, "two"]}}',
        tags: ['a,b', 'c"d', null, '', 'Zoë 😀'],
        raw: '00ff41',
        note: 'line one\nline two, "quoted" 中文 😀',
      },
    ]);
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({
      operation: 'upsert',
      keys: ['9007199254740993', '2', '3'],
      status: '3 rows',
    });
    expect(requests[0]?.target).toBe('postgres "public"."typed" upsert');
  });

  it('applies each operation kind, rejecting updates of missing records', async () => {
    await db.query(`CREATE TABLE ops (id bigint PRIMARY KEY, name text, score int, archived_at timestamptz)`);
    await db.query(
      `INSERT INTO ops VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3), (4, 'four', 4), (5, 'five', 5)`,
    );
    const cols: ColumnInfo[] = [
      { name: 'id', type: 'BIGINT' },
      { name: 'name', type: 'VARCHAR' },
      { name: 'score', type: 'INTEGER' },
    ];
    const { writer, requests } = await open('ops', { mode: 'upsert' }, undefined, cols);
    writers.push(writer);
    const results = await writer.write([
      change('upsert', 1, { id: 1, name: 'uno', score: 10 }),
      change('upsert', 6, { id: 6, name: 'six', score: 6 }),
      change('insert', 2, { id: 2, name: 'SHOULD NOT APPLY', score: 0 }),
      change('insert', 7, { id: 7, name: 'seven', score: 7 }),
      change('update', 3, { id: 3, name: 'tres', score: 30 }),
      change('update', 99, { id: 99, name: 'ghost', score: 0 }),
      change('delete', 4, { id: 4 }),
      change('delete', 98, { id: 98 }),
      change('clear', 5, { id: 5, name: null, score: null }),
    ]);
    expect(results.map((r) => r.ok)).toEqual([true, true, true, true, true, false, true, true, true]);
    expect(results[5]).toMatchObject({
      ok: false,
      retryable: false,
      reason: expect.stringContaining('no record with key 99'),
    });
    expect(await rows('SELECT id::int, name, score FROM ops ORDER BY id')).toEqual([
      { id: 1, name: 'uno', score: 10 },
      { id: 2, name: 'two', score: 2 },
      { id: 3, name: 'tres', score: 30 },
      { id: 5, name: null, score: null },
      { id: 6, name: 'six', score: 6 },
      { id: 7, name: 'seven', score: 7 },
    ]);
    expect(requests.map((r) => r.operation)).toEqual(['upsert', 'insert', 'update', 'delete', 'clear']);

    const archive = await open('ops', { mode: 'archive' }, undefined, cols);
    writers.push(archive.writer);
    expect(await archive.writer.write([change('archive', 6, { id: 6, name: 'six', score: 6 })])).toEqual([
      { ok: true },
    ]);
    expect((await rows('SELECT archived_at IS NOT NULL AS archived FROM ops WHERE id = 6'))[0]).toEqual({
      archived: true,
    });
    const archiveDelete = await open('ops', { mode: 'archive', archiveBehavior: 'delete' }, undefined, cols);
    writers.push(archiveDelete.writer);
    expect(await archiveDelete.writer.write([change('archive', 7, { id: 7 })])).toEqual([{ ok: true }]);
    expect(await rows('SELECT id FROM ops WHERE id = 7')).toEqual([]);
  });

  it('rejects only the rows that break a batch, each with PostgreSQL’s message', async () => {
    await db.query(
      `CREATE TABLE strict (id int PRIMARY KEY, amount numeric CHECK (amount >= 0), at timestamptz)`,
    );
    const cols: ColumnInfo[] = [
      { name: 'id', type: 'INTEGER' },
      { name: 'amount', type: 'DECIMAL(10,2)' },
      { name: 'at', type: 'TIMESTAMP WITH TIME ZONE' },
    ];
    const { writer, requests } = await open('strict', {}, undefined, cols);
    writers.push(writer);
    const results = await writer.write([
      change('upsert', 1, { id: 1, amount: '5.00', at: '2024-01-01T00:00:00Z' }),
      change('upsert', 2, { id: 2, amount: '-1.00', at: null }),
      change('upsert', 3, { id: 3, amount: '1.00', at: 'not a time' }),
      change('update', 4, { id: 4, amount: '1.00', at: null }),
      change('upsert', 5, { id: 5, amount: '0', at: null }),
    ]);
    expect(results[0]).toEqual({ ok: true });
    expect(results[1]).toMatchObject({
      ok: false,
      retryable: false,
      reason: expect.stringContaining('violates check constraint'),
    });
    expect(results[1]).toMatchObject({ reason: expect.stringContaining('23514') });
    expect(results[2]).toMatchObject({
      ok: false,
      retryable: false,
      reason: expect.stringContaining('invalid input syntax'),
    });
    expect(results[3]).toMatchObject({ ok: false, reason: expect.stringContaining('no record with key 4') });
    expect(results[4]).toEqual({ ok: true });
    expect(await rows('SELECT id FROM strict ORDER BY id')).toEqual([{ id: 1 }, { id: 5 }]);
    // The batch attempt, then one debugger entry per row.
    expect(requests.filter((r) => r.keys.length === 1)).toHaveLength(5);
    expect(JSON.stringify(requests)).not.toContain('syncline-test');
  });

  it('maps fields to other column names and nested fields to jsonb', async () => {
    const cols: ColumnInfo[] = [
      { name: 'id', type: 'INTEGER' },
      { name: 'city', type: 'VARCHAR' },
    ];
    const mappings: Mapping[] = [
      { to: 'customer_id', from: 'id', valueType: 'string' },
      { to: 'address.city', from: 'city', valueType: 'string' },
      { to: 'source', value: 'syncline', valueType: 'string' },
    ];
    const { writer } = await open('renamed', {}, mappings, cols);
    writers.push(writer);
    await writer.write([
      change('upsert', 1, { customer_id: 1, address: { city: 'Zürich' }, source: 'syncline' }),
    ]);
    expect(await rows('SELECT customer_id, address, source FROM renamed')).toEqual([
      { customer_id: 1, address: { city: 'Zürich' }, source: 'syncline' },
    ]);
  });

  it('refuses tables it cannot write correctly', async () => {
    await db.query('CREATE TABLE nokey (id int, name text)');
    const cols: ColumnInfo[] = [
      { name: 'id', type: 'INTEGER' },
      { name: 'name', type: 'VARCHAR' },
    ];
    expect((await reason(open('nokey', {}, undefined, cols))).reason).toBe('DestinationKeyNotUnique');
    await db.query('CREATE TABLE narrow (id int PRIMARY KEY)');
    const missing = await reason(open('narrow', {}, undefined, cols));
    expect(missing).toMatchObject({
      reason: 'UnknownDestinationColumn',
      message: expect.stringContaining('"name"'),
    });
    const unmapped = await reason(
      open('narrow', {}, [{ to: 'name', from: 'name', valueType: 'string' }], cols),
    );
    expect(unmapped.reason).toBe('PrimaryKeyNotMapped');
    expect(
      (
        await reason(
          open('narrow', { mode: 'archive' }, [{ to: 'id', from: 'id', valueType: 'string' }], cols),
        )
      ).reason,
    ).toBe('ArchiveColumnMissing');
    const noTarget = deliveryContext(base, {
      destination: spec(),
      sync: {},
      columns: cols,
      primaryKey: 'id',
    });
    expect((await reason(destination!.open(noTarget.ctx))).reason).toBe('MissingTarget');
  });

  it('check() names each failure', async () => {
    await expect(destination!.check(spec(), base)).resolves.toBeUndefined();
    const wrong = await reason(
      destination!.check(spec({ password: { secretKeyRef: { name: 'pg', key: 'wrong' } } }), base),
    );
    expect(wrong.reason).toBe('AuthenticationFailed');
    expect(wrong.message).not.toContain('hunter2');
    expect((await reason(destination!.check(spec({ database: 'nope' }), base))).reason).toBe(
      'DatabaseNotFound',
    );
    expect((await reason(destination!.check(spec({ port: await freePort() }), base))).reason).toBe(
      'DestinationUnreachable',
    );
    expect(
      (await reason(destination!.check(spec({ password: { secretKeyRef: { name: 'x', key: 'y' } } }), base)))
        .reason,
    ).toBe('SecretNotFound');
    expect((await reason(destination!.check(spec({ schema: 'nope' }), base))).reason).toBe('SchemaNotFound');
  });
});

describe('bulk batches', () => {
  const cols: ColumnInfo[] = [
    { name: 'id', type: 'INTEGER' },
    { name: 'amount', type: 'DECIMAL(10,2)' },
    { name: 'note', type: 'VARCHAR' },
  ];
  const csv = (lines: string[]) => Buffer.from(lines.map((l) => `${l}\n`).join(''));

  it('are offered only where every column takes plain text', async () => {
    const plain = await open('bulk_plain', {}, undefined, cols);
    writers.push(plain.writer);
    expect(plain.writer.bulkFields?.()).toEqual(['id', 'amount', 'note']);
    const rich = await open('bulk_rich');
    writers.push(rich.writer);
    expect(rich.writer.bulkFields?.()).toBeUndefined();
  });

  it('copy straight into a table that was empty, then resolve conflicts once it has rows', async () => {
    const { writer, requests } = await open('bulk_upsert', {}, undefined, cols);
    writers.push(writer);
    expect(
      await writer.writeBulk?.({
        operation: 'upsert',
        keys: ['1', '2'],
        csv: csv(['"1","1.50","a ""quoted"", line\nbreak"', '"2",,""']),
      }),
    ).toEqual([]);
    expect(requests.at(-1)).toMatchObject({ keys: ['1', '2'], status: '2 rows copied' });
    // Key 2 is there now: the straight COPY fails on it and the batch is applied as an upsert.
    expect(
      await writer.writeBulk?.({
        operation: 'upsert',
        keys: ['2', '3'],
        csv: csv(['"2","9.00",', '"3",,"c"']),
      }),
    ).toEqual([]);
    expect(await rows('SELECT id, amount, note FROM bulk_upsert ORDER BY id')).toEqual([
      { id: 1, amount: '1.50', note: 'a "quoted", line\nbreak' },
      { id: 2, amount: '9.00', note: null },
      { id: 3, amount: null, note: 'c' },
    ]);
    expect(
      await writer.writeBulk?.({ operation: 'delete', keys: ['1', '3'], csv: csv(['"1",,', '"3",,']) }),
    ).toEqual([]);
    expect(await rows('SELECT id FROM bulk_upsert ORDER BY id')).toEqual([{ id: 2 }]);
  });

  it('reject updates of missing records by position, and throw (applying nothing) on a bad row', async () => {
    await db.query(
      'CREATE TABLE bulk_update (id int PRIMARY KEY, amount numeric(10,2) CHECK (amount >= 0), note text)',
    );
    await db.query("INSERT INTO bulk_update VALUES (1, 1, 'a'), (3, 3, 'c')");
    const { writer } = await open('bulk_update', { mode: 'update' }, undefined, cols);
    writers.push(writer);
    const rejected = await writer.writeBulk?.({
      operation: 'update',
      keys: ['1', '2', '3', '4'],
      csv: csv(['"1","10",', '"2","20",', '"3","30","z"', '"4","40",']),
    });
    expect(rejected).toEqual([
      { index: 1, reason: expect.stringContaining('no record with key 2') },
      { index: 3, reason: expect.stringContaining('no record with key 4') },
    ]);
    expect(await rows('SELECT id, amount, note FROM bulk_update ORDER BY id')).toEqual([
      { id: 1, amount: '10.00', note: null },
      { id: 3, amount: '30.00', note: 'z' },
    ]);
    await expect(
      writer.writeBulk?.({ operation: 'update', keys: ['1', '3'], csv: csv(['"1","5",', '"3","-1",']) }),
    ).rejects.toThrow(/check constraint/);
    expect(await rows('SELECT id, amount FROM bulk_update ORDER BY id')).toEqual([
      { id: 1, amount: '10.00' },
      { id: 3, amount: '30.00' },
    ]);
  });
});
