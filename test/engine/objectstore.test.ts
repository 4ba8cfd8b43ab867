// The engine with its diff store in object storage: MinIO (s3://) and fake-gcs-server (gs://).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiffStore } from '../../core/diffstore/index.ts';
import { silentLogger } from '../../core/logger.ts';
import { executeRun } from '../../runner/run.ts';
import { secretResolver } from '../../core/secrets.ts';
import { openBlobStore } from '../../core/storage/index.ts';
import { startGcs, startS3, type GcsServer, type S3Server } from '../stack/objectstore.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, pgSettings, sql } from './helpers.ts';

let pgServer: PostgresServer;
let s3: S3Server;
let gcs: GcsServer;
let srcUrl: string;
let dstUrl: string;

beforeAll(async () => {
  [pgServer, s3, gcs] = await Promise.all([startPostgres(), startS3(), startGcs()]);
  srcUrl = await pgServer.createDatabase('src');
  dstUrl = await pgServer.createDatabase('dst');
  await Promise.all([s3.createBucket('state'), gcs.createBucket('state')]);
  await sql(srcUrl, 'CREATE TABLE people (id int PRIMARY KEY, name text)');
  await sql(srcUrl, "INSERT INTO people SELECT g, 'name ' || g FROM generate_series(1, 200) g");
});
afterAll(async () => {
  await Promise.all([pgServer?.stop(), s3?.stop(), gcs?.stop()]);
});

const ref = (key: string) => ({ secretKeyRef: { name: 'store', key } });

const stores = () => [
  {
    name: 's3',
    url: 's3://state/syncline',
    settings: {
      s3: {
        endpoint: s3.endpoint,
        region: s3.region,
        forcePathStyle: true,
        accessKeyId: ref('id'),
        secretAccessKey: ref('secret'),
      },
    },
  },
  {
    name: 'gcs',
    url: 'gs://state/syncline',
    settings: { gcs: { endpoint: gcs.endpoint, projectId: gcs.projectId } },
  },
];

describe('diff store in object storage', () => {
  it.each(['s3', 'gcs'])('%s: commits snapshots and diffs against them', async (which) => {
    const store = stores().find((s) => s.name === which)!;
    const secrets = secretResolver(
      {},
      { pg: { password: pgServer.password }, store: { id: s3.accessKeyId, secret: s3.secretAccessKey } },
    );
    const plan = () =>
      makePlan({
        server: pgServer,
        sourceDb: 'src',
        query: 'SELECT id, name FROM people',
        destination: { type: 'postgres', postgres: { ...pgSettings(pgServer, 'dst'), schema: 'public' } },
        sync: { mode: 'upsert', target: { table: `people_${which}` } },
        stateUrl: store.url,
        name: `sync-${which}`,
        diffStore: store.settings,
      });
    const deps = { secrets, log: silentLogger(), signal: new AbortController().signal };
    const first = await executeRun(plan(), deps);
    expect(first.result, first.message).toBe('Succeeded');
    expect(first.counts.delivered).toBe(200);
    await sql(srcUrl, `UPDATE people SET name = name || ' ${which}' WHERE id <= 4`);
    const second = await executeRun(plan(), deps);
    expect(second.counts).toMatchObject({ changed: 4, delivered: 4 });
    const diffStore = new DiffStore(
      openBlobStore(store.url, { ...store.settings, secrets }),
      'test',
      `sync-${which}`,
    );
    const manifest = await diffStore.readManifest();
    expect(manifest?.manifest.runId).toBe(second.runId);
    expect(manifest?.manifest.rowCount).toBe(200);
    expect(await diffStore.readRunSummary(second.runId)).toMatchObject({
      result: 'Succeeded',
      counts: { delivered: 4 },
    });
    expect(
      (await sql(dstUrl, `SELECT count(*)::int AS n FROM people_${which} WHERE name LIKE '%${which}'`))[0]?.[
        'n'
      ],
    ).toBe(4);
  });
});
