import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGcs, startS3 } from './objectstore.ts';
import { freePort } from './process.ts';
import { secretResolver } from '../../core/secrets.ts';
import { openBlobStore, type BlobStore } from '../../core/storage/index.ts';

/**
 * One running backend for the shared behaviour suites (tests only): the file store, MinIO as S3, and
 * fake-gcs-server as GCS. Each `open()` gives a store under a fresh prefix so tests do not meet.
 */
export interface TestBackend {
  name: 'file' | 's3' | 'gs';
  open(): BlobStore;
  /** A second client on the same URL as `store`, as a second runner Job would have. */
  reopen(store: BlobStore): BlobStore;
  /** A store whose bucket does not exist (undefined for the file backend, which has no buckets). */
  openMissingBucket?(): BlobStore;
  /** A store with credentials the server refuses. */
  openBadCredentials?(): BlobStore;
  /** A store whose endpoint nothing listens on. */
  openUnreachable?(): Promise<BlobStore>;
  /** Values that must never appear in an error message. */
  secretValues: string[];
  stop(): Promise<void>;
}

let counter = 0;
const freshPrefix = () => `t${process.pid}-${Date.now().toString(36)}-${counter++}`;

export async function startFileBackend(): Promise<TestBackend> {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-blob-'));
  const secrets = secretResolver({});
  return {
    name: 'file',
    open: () => openBlobStore(`file://${dir}/${freshPrefix()}`, { secrets }),
    reopen: (store) => openBlobStore(store.url, { secrets }),
    secretValues: [],
    async stop() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startS3Backend(): Promise<TestBackend> {
  const server = await startS3();
  const bucket = 'syncline-test';
  await server.createBucket(bucket);
  const env = {
    SYNCLINE_SECRET_S3_CREDS__ACCESS_KEY_ID: server.accessKeyId,
    SYNCLINE_SECRET_S3_CREDS__SECRET_ACCESS_KEY: server.secretAccessKey,
    SYNCLINE_SECRET_S3_BAD__ACCESS_KEY_ID: server.accessKeyId,
    SYNCLINE_SECRET_S3_BAD__SECRET_ACCESS_KEY: 'wrong-secret-value-0123456789',
  };
  const secrets = secretResolver(env);
  const creds = (secret: string, endpoint = server.endpoint) => ({
    endpoint,
    region: server.region,
    forcePathStyle: true,
    accessKeyId: { secretKeyRef: { name: secret, key: 'access-key-id' } },
    secretAccessKey: { secretKeyRef: { name: secret, key: 'secret-access-key' } },
  });
  return {
    name: 's3',
    open: () => openBlobStore(`s3://${bucket}/${freshPrefix()}`, { secrets, s3: creds('s3-creds') }),
    reopen: (store) => openBlobStore(store.url, { secrets, s3: creds('s3-creds') }),
    openMissingBucket: () =>
      openBlobStore(`s3://no-such-bucket-${freshPrefix()}/x`, { secrets, s3: creds('s3-creds') }),
    openBadCredentials: () =>
      openBlobStore(`s3://${bucket}/${freshPrefix()}`, { secrets, s3: creds('s3-bad') }),
    async openUnreachable() {
      const port = await freePort();
      return openBlobStore(`s3://${bucket}/x`, {
        secrets,
        s3: creds('s3-creds', `http://127.0.0.1:${port}`),
      });
    },
    secretValues: [server.secretAccessKey, env.SYNCLINE_SECRET_S3_BAD__SECRET_ACCESS_KEY],
    stop: () => server.stop(),
  };
}

export async function startGcsBackend(): Promise<TestBackend> {
  const server = await startGcs();
  const bucket = 'syncline-test';
  await server.createBucket(bucket);
  const secrets = secretResolver({});
  const gcs = (endpoint = server.endpoint) => ({ endpoint, projectId: server.projectId });
  return {
    name: 'gs',
    open: () => openBlobStore(`gs://${bucket}/${freshPrefix()}`, { secrets, gcs: gcs() }),
    reopen: (store) => openBlobStore(store.url, { secrets, gcs: gcs() }),
    openMissingBucket: () => openBlobStore(`gs://no-such-bucket-${freshPrefix()}/x`, { secrets, gcs: gcs() }),
    async openUnreachable() {
      const port = await freePort();
      return openBlobStore(`gs://${bucket}/x`, { secrets, gcs: gcs(`http://127.0.0.1:${port}`) });
    },
    secretValues: [],
    stop: () => server.stop(),
  };
}

export const BACKENDS = { file: startFileBackend, s3: startS3Backend, gs: startGcsBackend } as const;
