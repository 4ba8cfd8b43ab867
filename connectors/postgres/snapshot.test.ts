// The warehouse snapshot store against a real PostgreSQL: the grant it lacks is named with its GRANT,
// commits are compare-and-swap on the generation, deltas keep the table's counts and checksum exactly,
// and a dry run's store creates nothing.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../core/diffstore/index.ts';
import { isSynclineError } from '../../core/errors.ts';
import type { SourceSpec } from '../../crds/index.ts';
import { startPostgres, type PostgresServer } from '../../test/stack/postgres.ts';
import { openDuck, testContext } from '../shared/test-context.ts';
import { source } from './index.ts';
import type { PgWarehouseSnapshot } from './snapshot.ts';

let server: PostgresServer;
let adminUrl: string;
let duck: Awaited<ReturnType<typeof openDuck>>;
const ctx = testContext();

beforeAll(async () => {
  server = await startPostgres();
  adminUrl = await server.createDatabase('wh');
  duck = await openDuck();
});
afterAll(async () => {
  duck?.close();
  await server?.stop();
  ctx.cleanup();
});

async function admin(text: string, values: unknown[] = []): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return (await client.query(text, values)).rows;
  } finally {
    await client.end();
  }
}

function spec(user: string): SourceSpec {
  return {
    type: 'postgres',
    postgres: {
      host: server.host,
      port: server.port,
      database: 'wh',
      user,
      password: { secretKeyRef: { name: 'pg', key: 'password' } },
      tls: { mode: 'disable' },
    },
  } as SourceSpec;
}

function open(options: { user?: string; schema?: string; sync?: string; readOnly?: boolean } = {}) {
  return source.warehouseSnapshot!({
    ...ctx,
    secrets: testContext({ pg: { password: server.password } }).secrets,
    source: spec(options.user ?? server.user),
    namespace: 'test',
    sync: options.sync ?? 'store',
    schema: options.schema ?? 'syncline',
    duck: duck.duck,
    readOnly: options.readOnly ?? false,
  }) as Promise<PgWarehouseSnapshot>;
}

async function refusal(promise: Promise<unknown>): Promise<{ reason: string; message: string }> {
  try {
    const opened = await promise;
    await (opened as PgWarehouseSnapshot).close();
  } catch (error) {
    if (isSynclineError(error)) return { reason: error.reason, message: error.message };
    throw error;
  }
  return { reason: 'none', message: '' };
}

function manifest(runId: string, snapshot: string, extra: Partial<Manifest> = {}): Manifest {
  return {
    version: 2,
    runId,
    snapshot,
    committedAt: new Date().toISOString(),
    primaryKey: 'id',
    columns: [{ name: 'id', type: 'BIGINT' }],
    modelFingerprint: 'f',
    comparedColumns: ['id'],
    hashFunction: 'postgres',
    hashProbe: '1',
    rowCount: 0,
    destinationType: 'postgres',
    ...extra,
  };
}

/** A snapshot Parquet file of keys `ids` (stale where `stale` says), or a delta with tombstones for `gone`. */
async function snapshotFile(
  name: string,
  rows: { id: number; hash: number | null; stale?: boolean }[],
  gone: number[] = [],
): Promise<string> {
  const file = `${ctx.tmpDir}/${name}.parquet`;
  const delta = gone.length > 0;
  const values = [
    ...rows.map(
      (r) => `('${r.id}', ${r.stale ?? false}, ${r.id}::BIGINT, ${r.hash ?? 'NULL'}::UBIGINT, FALSE)`,
    ),
    ...gone.map((id) => `('${id}', TRUE, ${id}::BIGINT, NULL::UBIGINT, TRUE)`),
  ];
  const deleted = delta ? ', __syncline_deleted' : '';
  await duck.duck.run(
    `COPY (SELECT k AS __syncline_key, s AS __syncline_stale, id, h AS __syncline_hash${deleted}
       FROM (VALUES ${values.length ? values.join(', ') : "('x', FALSE, 0::BIGINT, 0::UBIGINT, FALSE)"}) v(k, s, id, h, __syncline_deleted)
       ${values.length ? '' : 'WHERE FALSE'}) TO '${file}' (FORMAT parquet)`,
  );
  return file;
}

describe('the warehouse snapshot store', () => {
  it('names the grant the user lacks, in the order they are needed, with the GRANT that gives it', async () => {
    await admin(`CREATE ROLE limited LOGIN PASSWORD '${server.password}'`);
    await admin('REVOKE CREATE, TEMPORARY ON DATABASE wh FROM PUBLIC');
    const steps: [string, RegExp][] = [
      [
        '',
        /schema syncline, which does not exist, and CREATE on database wh.*GRANT CREATE ON DATABASE "wh" TO "limited"/,
      ],
      ['CREATE SCHEMA syncline', /USAGE on schema syncline.*GRANT USAGE ON SCHEMA "syncline" TO "limited"/],
      [
        'GRANT USAGE ON SCHEMA syncline TO limited',
        /CREATE on schema syncline.*GRANT CREATE ON SCHEMA "syncline" TO "limited"/,
      ],
      [
        'GRANT CREATE ON SCHEMA syncline TO limited',
        /TEMPORARY on database wh.*GRANT TEMPORARY ON DATABASE "wh" TO "limited"/,
      ],
      [
        'GRANT TEMPORARY ON DATABASE wh TO limited; CREATE TABLE syncline.syncline_state (namespace text)',
        /SELECT, INSERT, UPDATE, DELETE on table syncline.syncline_state.*GRANT SELECT, INSERT, UPDATE, DELETE ON "syncline"."syncline_state" TO "limited"/,
      ],
    ];
    for (const [grant, expected] of steps) {
      if (grant) await admin(grant);
      const refused = await refusal(open({ user: 'limited' }));
      expect(refused.reason, grant).toBe('WarehouseSnapshotGrantMissing');
      expect(refused.message, grant).toMatch(expected);
      expect(refused.message).toContain('spec.snapshot.location: diffStore');
    }
    await admin('DROP TABLE syncline.syncline_state');
    const opened = await open({ user: 'limited' });
    await opened.close();
    await admin('DROP SCHEMA syncline CASCADE; GRANT CREATE, TEMPORARY ON DATABASE wh TO PUBLIC');
  });

  it('creates nothing for a dry run, which reads no snapshot yet', async () => {
    const opened = await open({ schema: 'dry_run_schema', readOnly: true });
    expect(await opened.readManifest()).toBeUndefined();
    await opened.close();
    expect(await admin(`SELECT 1 FROM pg_namespace WHERE nspname = 'dry_run_schema'`)).toEqual([]);
  });

  it('commits by compare-and-swap on the generation: of two runs that read one, only the first commits', async () => {
    const a = await open({ sync: 'cas' });
    const b = await open({ sync: 'cas' });
    try {
      expect(await a.readManifest()).toBeUndefined();
      const first = await a.uploadSnapshot('run-1', await snapshotFile('cas-1', [{ id: 1, hash: 11 }]));
      await a.commit(manifest('run-1', first), undefined);
      const read = await b.readManifest();
      expect(read).toMatchObject({ etag: '1', manifest: { runId: 'run-1', rowCount: 1 } });
      // Both read generation 1; a commits, b is refused and changes nothing.
      const fromA = await a.uploadSnapshot('run-2', await snapshotFile('cas-2', [{ id: 2, hash: 22 }], [1]), {
        delta: true,
      });
      const fromB = await b.uploadSnapshot('run-3', await snapshotFile('cas-3', [{ id: 3, hash: 33 }], [1]), {
        delta: true,
      });
      await a.commit(manifest('run-2', fromA), read?.etag);
      const refused = await b.commit(manifest('run-3', fromB), read?.etag).catch((e: unknown) => e);
      expect(isSynclineError(refused) && refused.reason).toBe('ConcurrentCommit');
      const now = await b.readManifest();
      expect(now).toMatchObject({ etag: '2', manifest: { runId: 'run-2', rowCount: 1 } });
      expect(await admin(`SELECT key_text FROM syncline."${a.tables.snapshotName}" ORDER BY 1`)).toEqual([
        { key_text: '2' },
      ]);
      // A first commit of a Sync that has one is refused too.
      const again = await b.uploadSnapshot('run-4', await snapshotFile('cas-4', []));
      const first2 = await b.commit(manifest('run-4', again), undefined).catch((e: unknown) => e);
      expect(isSynclineError(first2) && first2.reason).toBe('ConcurrentCommit');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('keeps row count, stale rows and checksum through deltas exactly as a count of the table says', async () => {
    const store = await open({ sync: 'counts' });
    try {
      const rows = Array.from({ length: 50 }, (_, i) => ({ id: i + 1, hash: 1000 + i }));
      const whole = await store.uploadSnapshot('c-1', await snapshotFile('counts-1', rows));
      await store.commit(manifest('c-1', whole), undefined);
      // Change 5, remove 3, add 2 of which one stale without a hash.
      const delta = await store.uploadSnapshot(
        'c-2',
        await snapshotFile(
          'counts-2',
          [
            ...[1, 2, 3, 4, 5].map((id) => ({ id, hash: 5000 + id })),
            { id: 51, hash: 51 },
            { id: 52, hash: null, stale: true },
          ],
          [1, 2, 3, 4, 5, 10, 11, 12],
        ),
        { delta: true },
      );
      await store.commit(manifest('c-2', delta), (await store.readManifest())?.etag);
      const t = `syncline."${store.tables.snapshotName}"`;
      const [kept] = await admin(
        `SELECT row_count, stale_count, checksum FROM syncline.syncline_state WHERE sync = 'counts'`,
      );
      const [counted] = await admin(
        `SELECT count(*) AS row_count, count(*) FILTER (WHERE stale) AS stale_count,
                bit_xor(hash_record_extended(ROW(key, hash), 0)) AS checksum FROM ${t}`,
      );
      expect(kept).toEqual(counted);
      expect(kept).toMatchObject({ row_count: '49', stale_count: '1' });
      expect((await store.readManifest())?.manifest.rowCount).toBe(49);
    } finally {
      await store.close();
    }
  });
});
