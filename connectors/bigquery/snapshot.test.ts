// The BigQuery warehouse snapshot store against the BigQuery emulator (behind a proxy that answers as IAM
// does when a permission is missing): the permission it lacks is named with the dataset, commits are
// compare-and-swap on the generation, deltas merge into a new table, rejections are kept in a table users
// may query, dropAll drops every table of the Sync, and a dry run's store creates nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../core/diffstore/index.ts';
import { isSynclineError } from '../../core/errors.ts';
import type { SourceSpec } from '../../crds/index.ts';
import { bqQuery, startBigQueryStack, type BigQueryStack } from '../../test/warehouses/bigquery/harness.ts';
import { openDuck, testContext } from '../shared/test-context.ts';
import { source } from './index.ts';
import type { BqWarehouseSnapshot } from './snapshot.ts';

let stack: BigQueryStack;
let duck: Awaited<ReturnType<typeof openDuck>>;
const ctx = testContext();

beforeAll(async () => {
  stack = await startBigQueryStack();
  duck = await openDuck();
});
afterAll(async () => {
  duck?.close();
  await stack?.stop();
  ctx.cleanup();
});

function spec(): SourceSpec {
  return {
    type: 'bigquery',
    bigquery: { project: stack.emulator.project, apiEndpoint: stack.proxy.endpoint },
  } as SourceSpec;
}

function open(options: { schema?: string; sync?: string; readOnly?: boolean } = {}) {
  return source.warehouseSnapshot!({
    ...ctx,
    source: spec(),
    namespace: 'test',
    sync: options.sync ?? 'store',
    schema: options.schema ?? 'syncline',
    duck: duck.duck,
    readOnly: options.readOnly ?? false,
  }) as Promise<BqWarehouseSnapshot>;
}

async function refusal(promise: Promise<unknown>): Promise<{ reason: string; message: string }> {
  try {
    await promise;
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
    hashFunction: 'bigquery-farm-fingerprint-v1',
    hashProbe: '1',
    rowCount: 0,
    destinationType: 'postgres',
    ...extra,
  };
}

let files = 0;
/** A snapshot Parquet file of keys `rows`, or a delta with tombstones for `gone`. */
async function snapshotFile(
  rows: { id: number; hash: string | null; stale?: boolean }[],
  gone: number[] = [],
): Promise<string> {
  const file = `${ctx.tmpDir}/snapshot-${++files}.parquet`;
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

async function downloaded(store: BqWarehouseSnapshot, m: Manifest) {
  const file = `${ctx.tmpDir}/download-${++files}.parquet`;
  await store.downloadSnapshot(m, file);
  return (
    await duck.duck.runAndReadAll(
      `SELECT __syncline_key AS k, __syncline_stale AS s, CAST(__syncline_hash AS VARCHAR) AS h FROM '${file}' ORDER BY id`,
    )
  ).getRowObjectsJS();
}

describe('the BigQuery warehouse snapshot store', { timeout: 300_000 }, () => {
  it('names the IAM permission it lacks and on which dataset or project', async () => {
    const project = stack.emulator.project;
    stack.proxy.denials = [
      {
        method: 'POST',
        path: /\/datasets\?|\/datasets$/,
        permission: 'bigquery.datasets.create',
        resource: `Project ${project}`,
      },
    ];
    const noDataset = await refusal(open({ schema: 'denied_ds' }));
    expect(noDataset.reason).toBe('WarehouseSnapshotGrantMissing');
    expect(noDataset.message).toContain(`permission bigquery.datasets.create on project ${project}`);
    expect(noDataset.message).toContain('spec.snapshot.location: diffStore');
    await stack.bq.createDataset('denied_tables');
    stack.proxy.denials = [
      {
        method: 'POST',
        path: /\/datasets\/denied_tables\/tables/,
        permission: 'bigquery.tables.create',
        resource: `Dataset ${project}:denied_tables`,
      },
    ];
    const noTables = await refusal(open({ schema: 'denied_tables' }));
    expect(noTables.reason).toBe('WarehouseSnapshotGrantMissing');
    expect(noTables.message).toContain(
      `permission bigquery.tables.create on dataset ${project}:denied_tables`,
    );
    stack.proxy.denials = [];
    const opened = await open({ schema: 'denied_tables' });
    expect(await opened.readManifest()).toBeUndefined();
  });

  it('creates nothing for a dry run, which reads no snapshot yet', async () => {
    const opened = await open({ schema: 'dry_run_dataset', readOnly: true });
    expect(await opened.readManifest()).toBeUndefined();
    const [exists] = await stack.bq.dataset('dry_run_dataset').exists();
    expect(exists).toBe(false);
  });

  it('commits by compare-and-swap on the generation: of two runs that read one, only the first commits', async () => {
    const a = await open({ sync: 'cas' });
    const b = await open({ sync: 'cas' });
    expect(await a.readManifest()).toBeUndefined();
    const first = await a.uploadSnapshot(
      'run-1',
      await snapshotFile([
        { id: 1, hash: '11' },
        { id: 2, hash: '12' },
      ]),
    );
    await a.commit(manifest('run-1', first), undefined);
    const read = await b.readManifest();
    expect(read).toMatchObject({ etag: '1', manifest: { runId: 'run-1', rowCount: 2 } });
    // Both read generation 1; a commits, b is refused and changes nothing.
    const fromA = await a.uploadSnapshot('run-2', await snapshotFile([{ id: 3, hash: '13' }], [1]), {
      delta: true,
    });
    const fromB = await b.uploadSnapshot('run-3', await snapshotFile([{ id: 4, hash: '14' }], [2]), {
      delta: true,
    });
    const [done, refused] = await Promise.allSettled([
      a.commit(manifest('run-2', fromA), read?.etag),
      b.commit(manifest('run-3', fromB), read?.etag),
    ]);
    const outcomes = [done, refused].map((o) =>
      o.status === 'fulfilled' ? 'committed' : isSynclineError(o.reason) ? o.reason.reason : String(o.reason),
    );
    expect(outcomes.sort()).toEqual(['ConcurrentCommit', 'committed']);
    const now = await b.readManifest();
    expect(now?.etag).toBe('2');
    const winner = now?.manifest.runId;
    expect(['run-2', 'run-3']).toContain(winner);
    expect((await downloaded(b, now!.manifest)).map((r) => r['k'])).toEqual(
      winner === 'run-2' ? ['2', '3'] : ['1', '4'],
    );
    // A first commit of a Sync that has one is refused too.
    const again = await b.uploadSnapshot('run-4', await snapshotFile([]));
    const first2 = await b.commit(manifest('run-4', again), undefined).catch((e: unknown) => e);
    expect(isSynclineError(first2) && first2.reason).toBe('ConcurrentCommit');
    // Only the current table (and the state) is left: the loser's and the superseded tables were dropped.
    const [tables] = await stack.bq.dataset('syncline').getTables();
    expect(tables.map((t) => t.id).filter((id) => id?.startsWith(a.names.prefix))).toHaveLength(1);
  });

  it('folds pending keys into the table as stale, keeps hashes exact, records rejections, and drops it all', async () => {
    const store = await open({ sync: 'fold' });
    const whole = await store.uploadSnapshot(
      'f-1',
      await snapshotFile([
        { id: 1, hash: '18446744073709551615' },
        { id: 2, hash: '0' },
      ]),
    );
    await store.commit(manifest('f-1', whole), undefined);
    const read = await store.readManifest();
    const pendingFile = `${ctx.tmpDir}/pending-${++files}.parquet`;
    await duck.duck.run(
      `COPY (SELECT * FROM (VALUES ('2', '2', 'update', 7::UBIGINT, 'f-2'), ('3', '3', 'add', 8::UBIGINT, 'f-2'))
         v(__syncline_key, id, __syncline_op, __syncline_hash, __syncline_epoch)) TO '${pendingFile}' (FORMAT parquet)`,
    );
    const pending = await store.uploadPending('f-2', pendingFile);
    const intent = manifest('f-2', read!.manifest.snapshot, {
      pending: { file: pending, runId: 'f-2', folded: false },
    });
    await store.commit(intent, read?.etag);
    const after = await store.readManifest();
    expect(after?.manifest).toMatchObject({ rowCount: 3, pending: { folded: true, runId: 'f-2' } });
    expect(await downloaded(store, after!.manifest)).toEqual([
      { k: '1', s: false, h: '18446744073709551615' },
      { k: '2', s: true, h: '0' },
      { k: '3', s: true, h: null },
    ]);
    const back = `${ctx.tmpDir}/pending-back-${++files}.parquet`;
    await store.downloadPending(after!.manifest, back);
    const keys = (
      await duck.duck.runAndReadAll(`SELECT __syncline_key, __syncline_op FROM '${back}' ORDER BY 1`)
    ).getRowsJS();
    expect(keys).toEqual([
      ['2', 'update'],
      ['3', 'add'],
    ]);

    await store.recordRejections([
      { key: '2', reason: 'RowsRejected', message: 'no record with key 2', runId: 'f-2' },
    ]);
    const table = `syncline.${store.names.rejections}`;
    expect(await bqQuery(stack.bq, `SELECT key, reason, message, run_id FROM ${table}`)).toEqual([
      { key: '2', reason: 'RowsRejected', message: 'no record with key 2', run_id: 'f-2' },
    ]);
    await store.recordRejections([]);
    expect(await bqQuery(stack.bq, `SELECT key FROM ${table}`)).toEqual([]);

    // snapshot, pending and rejections tables; the state row goes too.
    expect(await store.dropAll()).toBe(3);
    expect(await store.readManifest()).toBeUndefined();
    const [tables] = await stack.bq.dataset('syncline').getTables();
    expect(tables.map((t) => t.id).filter((id) => id?.startsWith(store.names.prefix))).toEqual([]);
  });
});
