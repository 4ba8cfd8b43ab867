// The Snowflake warehouse snapshot store through the real snowflake-sdk against the emulator: the privilege
// a role lacks is named with its GRANT, commits are compare-and-swap on the generation (two at once: one
// wins), deltas are merged, rejections land in a table users may query, and dropAll leaves the schema.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../core/diffstore/index.ts';
import { isSynclineError } from '../../core/errors.ts';
import type { SourceSpec } from '../../crds/index.ts';
import { startSnowflakeEmulator, type SnowflakeEmulator } from '../../test/emulators/snowflake/server.ts';
import { openDuck, rowsOf, testContext } from '../shared/test-context.ts';
import { snowflakeSource } from './source.ts';
import type { SnowflakeWarehouseSnapshot } from './snapshot.ts';

let sf: SnowflakeEmulator;
let duck: Awaited<ReturnType<typeof openDuck>>;
const ctx = testContext({ sf: { password: 'pw' } });

beforeAll(async () => {
  sf = await startSnowflakeEmulator({ syncWaitMs: 2000 });
  sf.addUser({ name: 'owner', password: 'pw' });
  sf.addUser({
    name: 'reader',
    password: 'pw',
    grants: { database: [], schemas: { PUBLIC: ['USAGE', 'SELECT'], SYNCLINE: ['USAGE', 'SELECT'] } },
  });
  sf.addUser({ name: 'outsider', password: 'pw', grants: { database: [], schemas: {} } });
  sf.setWarehouse('WH', 'STARTED');
  await sf.createDatabase('ANALYTICS');
  duck = await openDuck();
});
afterAll(async () => {
  duck?.close();
  await sf?.stop();
  ctx.cleanup();
});

function spec(user: string): SourceSpec {
  return {
    type: 'snowflake',
    snowflake: {
      account: 'testorg-testaccount',
      user,
      password: { secretKeyRef: { name: 'sf', key: 'password' } },
      warehouse: 'WH',
      database: 'ANALYTICS',
      schema: 'PUBLIC',
      host: sf.url,
    },
  };
}

function open(options: { user?: string; sync?: string; readOnly?: boolean } = {}) {
  return snowflakeSource.warehouseSnapshot!({
    ...ctx,
    source: spec(options.user ?? 'owner'),
    namespace: 'test',
    sync: options.sync ?? 'store',
    schema: 'syncline',
    duck: duck.duck,
    readOnly: options.readOnly ?? false,
  }) as Promise<SnowflakeWarehouseSnapshot>;
}

async function refusal(promise: Promise<unknown>): Promise<{ reason: string; message: string }> {
  try {
    await ((await promise) as SnowflakeWarehouseSnapshot).close();
  } catch (error) {
    if (isSynclineError(error)) return { reason: error.reason, message: error.message };
    throw error;
  }
  return { reason: 'none', message: '' };
}

function manifest(runId: string, snapshot: string): Manifest {
  return {
    version: 2,
    runId,
    snapshot,
    committedAt: new Date().toISOString(),
    primaryKey: 'id',
    columns: [{ name: 'id', type: 'BIGINT' }],
    modelFingerprint: 'f',
    comparedColumns: ['id'],
    hashFunction: 'snowflake',
    hashProbe: '1',
    rowCount: 0,
    destinationType: 'postgres',
  };
}

/** A snapshot Parquet file of keys (hash = key * 7, stale where asked), with tombstones for `gone`. */
async function snapshotFile(name: string, ids: number[], gone: number[] = [], stale: number[] = []) {
  const file = `${ctx.tmpDir}/${name}.parquet`;
  const rows = [
    ...ids.map((id) => `('${id}', ${stale.includes(id)}, ${id}::BIGINT, ${id * 7}::UBIGINT, FALSE)`),
    ...gone.map((id) => `('${id}', TRUE, ${id}::BIGINT, NULL::UBIGINT, TRUE)`),
  ];
  await duck.duck.run(
    `COPY (SELECT k AS __syncline_key, s AS __syncline_stale, id, h AS __syncline_hash, d AS __syncline_deleted
       FROM (VALUES ${rows.join(', ')}) v(k, s, id, h, d)) TO '${file}' (FORMAT parquet)`,
  );
  return file;
}

async function tableRows(store: SnowflakeWarehouseSnapshot) {
  const file = `${ctx.tmpDir}/read-${Math.random()}.parquet`;
  const m = (await store.readManifest())!.manifest;
  await store.downloadSnapshot(m, file);
  return rowsOf(
    duck.duck,
    `SELECT __syncline_key AS k, __syncline_stale AS s, __syncline_hash AS h FROM '${file}' ORDER BY id`,
  );
}

describe('the Snowflake warehouse snapshot store', () => {
  it('names the privilege a role lacks, with the GRANT that gives it', async () => {
    const none = await refusal(open({ user: 'outsider' }));
    expect(none.reason).toBe('WarehouseSnapshotGrantMissing');
    expect(none.message).toContain('CREATE SCHEMA on database ANALYTICS');
    expect(none.message).toContain('GRANT CREATE SCHEMA ON DATABASE "ANALYTICS" TO ROLE "PUBLIC"');
    // The schema made by its owner; the reader may see it but not create tables in it.
    await (await open()).close();
    const reader = await refusal(open({ user: 'reader', sync: 'other' }));
    expect(reader.reason).toBe('WarehouseSnapshotGrantMissing');
    expect(reader.message).toContain('GRANT USAGE, CREATE TABLE ON SCHEMA "ANALYTICS"."SYNCLINE"');
    // A dry run needs only to read.
    const dry = await open({ user: 'reader', readOnly: true });
    expect(await dry.readManifest()).toBeUndefined();
    await dry.close();
  });

  it('commits whole snapshots and deltas by compare-and-swap, and one of two concurrent commits', async () => {
    const store = await open({ sync: 'cas' });
    const other = await open({ sync: 'cas' });
    try {
      const first = await store.uploadSnapshot('r1', await snapshotFile('whole', [1, 2, 3, 4]));
      await store.commit(manifest('r1', first), undefined);
      const read = (await store.readManifest())!;
      expect(read.etag).toBe('1');
      expect(read.manifest.rowCount).toBe(4);
      expect(await tableRows(store)).toEqual([
        { k: '1', s: false, h: '7' },
        { k: '2', s: false, h: '14' },
        { k: '3', s: false, h: '21' },
        { k: '4', s: false, h: '28' },
      ]);
      // Two runs read generation 1 and commit at once: exactly one is recorded.
      const a = await store.uploadSnapshot('r2', await snapshotFile('a', [5], [1]), { delta: true });
      const b = await other.uploadSnapshot('r3', await snapshotFile('b', [6], [], [6]), { delta: true });
      const outcomes = await Promise.allSettled([
        store.commit(manifest('r2', a), '1'),
        other.commit(manifest('r3', b), '1'),
      ]);
      const failed = outcomes.filter((o) => o.status === 'rejected');
      expect(failed).toHaveLength(1);
      expect((failed[0] as PromiseRejectedResult).reason).toMatchObject({ reason: 'ConcurrentCommit' });
      const after = (await store.readManifest())!;
      expect(after.etag).toBe('2');
      const keys = (await tableRows(store)).map((r) => r.k);
      expect(keys).toEqual(after.manifest.runId === 'r2' ? ['2', '3', '4', '5'] : ['1', '2', '3', '4', '6']);
    } finally {
      await store.close();
      await other.close();
    }
  });

  it('lets only one of two first commits of a Sync create its state', async () => {
    const [a, b] = await Promise.all([open({ sync: 'first' }), open({ sync: 'first' })]);
    try {
      const ra = await a.uploadSnapshot('ra', await snapshotFile('fa', [1]));
      const rb = await b.uploadSnapshot('rb', await snapshotFile('fb', [2]));
      const outcomes = await Promise.allSettled([
        a.commit(manifest('ra', ra), undefined),
        b.commit(manifest('rb', rb), undefined),
      ]);
      expect(
        outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason),
      ).toMatchObject([{ reason: 'ConcurrentCommit' }]);
      const read = (await a.readManifest())!;
      expect(read.etag).toBe('1');
      expect((await tableRows(a)).map((r) => r.k)).toEqual(read.manifest.runId === 'ra' ? ['1'] : ['2']);
      // The loser's uploaded rows are gone with the winner's commit.
      expect(await a.client.rows(`SELECT RUN_ID FROM ${a.tables.upload}`)).toEqual([]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('keeps rejections in a table users may query, and drops every table of the Sync', async () => {
    const store = await open({ sync: 'rejects' });
    try {
      await store.commit(
        manifest('r1', await store.uploadSnapshot('r1', await snapshotFile('r', [1, 2]))),
        undefined,
      );
      await store.recordRejections([
        { key: '2', reason: 'RowRejected', message: 'invalid email', runId: 'r1' },
      ]);
      const name = `${store.tables.snapshotName}_rejections`;
      const [row] = await store.client.rows(`SELECT KEY, REASON, MESSAGE, RUN_ID FROM syncline.${name}`);
      expect(row).toEqual({ KEY: '2', REASON: 'RowRejected', MESSAGE: 'invalid email', RUN_ID: 'r1' });
      expect(await store.dropAll()).toBe(4);
      expect(await store.readManifest()).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});
