// The files connectors on s3:// (MinIO) and gs:// (fake-gcs-server): source files are downloaded into the
// run's scratch folder before DuckDB reads them; the destination's run file is uploaded on close.
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationSpec, ModelSpec, SourceSpec } from '../../crds/index.ts';
import { secretResolver } from '../../core/secrets.ts';
import { openBlobStore, type BlobStore } from '../../core/storage/index.ts';
import { startGcs, startS3, type GcsServer, type S3Server } from '../../test/stack/objectstore.ts';
import {
  change,
  deliveryContext,
  openDuck,
  rowsOf,
  synclineFailure,
  testContext,
} from '../shared/test-context.ts';
import type { StageRequest } from '../../core/connectors.ts';
import { destination, source } from './index.ts';

const BUCKET = 'syncline-files';
let s3: S3Server;
let gcs: GcsServer;
let duck: Awaited<ReturnType<typeof openDuck>>;
const base = testContext();
let n = 0;

function remote(scheme: 's3' | 'gs') {
  const secrets = {
    's3-creds': { 'access-key-id': s3.accessKeyId, 'secret-access-key': s3.secretAccessKey },
  };
  const settings =
    scheme === 's3'
      ? {
          s3: {
            endpoint: s3.endpoint,
            region: s3.region,
            forcePathStyle: true,
            accessKeyId: { secretKeyRef: { name: 's3-creds', key: 'access-key-id' } },
            secretAccessKey: { secretKeyRef: { name: 's3-creds', key: 'secret-access-key' } },
          },
        }
      : { gcs: { endpoint: gcs.endpoint, projectId: gcs.projectId } };
  return { secrets, settings, resolver: secretResolver({}, secrets) };
}

async function seed(scheme: 's3' | 'gs', prefix: string): Promise<BlobStore> {
  const { settings, resolver } = remote(scheme);
  const store = openBlobStore(`${scheme}://${BUCKET}/${prefix}`, { ...settings, secrets: resolver });
  await store.put('customers/2024-01.csv', 'id,name\n1,Ada\n2,"Zoë, 😀"\n');
  await store.put('customers/2024-02.csv', 'id,name\n3,Bob\n');
  await store.put('other/ignored.csv', 'id,name\n99,No\n');
  return store;
}

beforeAll(async () => {
  [s3, gcs] = await Promise.all([startS3(), startGcs()]);
  await Promise.all([s3.createBucket(BUCKET), gcs.createBucket(BUCKET)]);
  duck = await openDuck();
}, 600_000);

afterAll(async () => {
  duck?.close();
  await Promise.all([s3?.stop(), gcs?.stop()]);
  base.cleanup();
});

describe.each(['s3', 'gs'] as const)('files connectors on %s://', (scheme) => {
  it('stages a glob and a query from the bucket', async () => {
    const prefix = `src-${scheme}`;
    await seed(scheme, prefix);
    const { secrets, settings } = remote(scheme);
    const ctx = { ...base, secrets: secretResolver({}, secrets) };
    const spec = {
      type: 'files',
      files: { url: `${scheme}://${BUCKET}/${prefix}`, ...settings },
    } as SourceSpec;
    await expect(source!.check(spec, ctx)).resolves.toBeUndefined();
    const request = (model: Partial<ModelSpec>): StageRequest => {
      n += 1;
      return {
        ...ctx,
        source: spec,
        model: { sourceRef: { name: 'f' }, primaryKey: 'id', ...model } as ModelSpec,
        duck: duck.duck,
        table: `remote_${n}`,
        labels: { namespace: 'default', sync: 's', runId: `r${n}` },
      };
    };
    const glob = request({ table: 'customers/*.csv' });
    expect((await source!.stage(glob)).rows).toBe(3);
    const names = await rowsOf(duck.duck, `SELECT name FROM ${glob.table} ORDER BY id`);
    expect(names.map((r) => r.name)).toEqual(['Ada', 'Zoë, 😀', 'Bob']);
    const query = request({ query: "SELECT count(*) AS n FROM read_csv('customers/2024-01.csv')" });
    await source!.stage(query);
    expect(await rowsOf(duck.duck, `SELECT n::INTEGER AS n FROM ${query.table}`)).toEqual([{ n: 2 }]);
    const missing = await source!.stage(request({ table: 'nothing/*.csv' })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(missing).toMatchObject({ reason: 'PathNotFound' });
    const empty = {
      type: 'files',
      files: { url: `${scheme}://${BUCKET}/empty-${scheme}`, ...settings },
    } as SourceSpec;
    await expect(source!.check(empty, ctx)).rejects.toMatchObject({ reason: 'PathNotFound' });
  });

  it('names a bucket file it cannot read by its URL, never the local download', async () => {
    const prefix = `bad-${scheme}`;
    const { secrets, settings, resolver } = remote(scheme);
    const store = openBlobStore(`${scheme}://${BUCKET}/${prefix}`, { ...settings, secrets: resolver });
    const gz = gzipSync('id,name\n' + Array.from({ length: 50_000 }, (_, i) => `${i},n${i}\n`).join(''));
    await store.put('cut/data.csv.gz', gz.subarray(0, gz.length >> 1));
    await store.put('ragged/data.csv', 'id,name\n1,a\n2,b,c\n');
    const ctx = { ...base, secrets: secretResolver({}, secrets) };
    const url = `${scheme}://${BUCKET}/${prefix}`;
    const spec = { type: 'files', files: { url, ...settings } } as SourceSpec;
    const stage = (model: Partial<ModelSpec>) => {
      n += 1;
      return synclineFailure(
        source!.stage({
          ...ctx,
          source: spec,
          model: { sourceRef: { name: 'f' }, primaryKey: 'id', ...model } as ModelSpec,
          duck: duck.duck,
          table: `remote_${n}`,
          labels: { namespace: 'default', sync: 's', runId: `r${n}` },
        }),
      );
    };
    const cut = await stage({ table: 'cut/*.csv.gz' });
    expect(cut.reason).toBe('SourceFileUnreadable');
    expect(cut.message).toContain(`${url}/cut/data.csv.gz is cut off or corrupt`);
    const ragged = await stage({ table: 'ragged/data.csv' });
    expect(ragged.message).toContain(`${url}/ragged/data.csv line 3:`);
    const outside = await stage({ query: "SELECT * FROM read_csv('../../../etc/hostname')" });
    expect(outside.reason).toBe('SourceAccessDenied');
    for (const error of [cut, ragged, outside]) expect(error.message).not.toContain(base.tmpDir);
  });

  it('uploads the run file on close', async () => {
    const { secrets, settings, resolver } = remote(scheme);
    const ctx = { ...base, secrets: resolver };
    const url = `${scheme}://${BUCKET}/out-${scheme}`;
    const spec = { type: 'files', files: { url, format: 'parquet', ...settings } } as DestinationSpec;
    await expect(destination!.check(spec, ctx)).resolves.toBeUndefined();
    const harness = deliveryContext(ctx, {
      destination: spec,
      sync: {},
      columns: [
        { name: 'id', type: 'BIGINT' },
        { name: 'name', type: 'VARCHAR' },
      ],
      primaryKey: 'id',
      runId: 'run-7',
    });
    const writer = await destination!.open(harness.ctx);
    await writer.write([change('upsert', 1, { id: 1, name: 'Ada' }), change('delete', 2, { id: 2 })]);
    await writer.close();
    const store = openBlobStore(url, { ...settings, secrets: secretResolver({}, secrets) });
    const listed = await store.list('');
    expect(listed.map((e) => e.path)).toEqual(['default/test-sync/run-7.parquet']);
    const local = join(base.tmpDir, `${scheme}-run-7.parquet`);
    expect(await store.getToFile('default/test-sync/run-7.parquet', local)).toBe(true);
    expect(
      await rowsOf(duck.duck, `SELECT _operation, id::INTEGER AS id, name FROM '${local}' ORDER BY id`),
    ).toEqual([
      { _operation: 'upsert', id: 1, name: 'Ada' },
      { _operation: 'delete', id: 2, name: null },
    ]);
  });
});
