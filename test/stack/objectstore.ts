import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { ensureGoTool } from './build.ts';
import { freePort, startProcess, waitFor, type ManagedProcess } from './process.ts';

export interface S3Server {
  /** http://127.0.0.1:PORT, path-style addressing. */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

export interface GcsServer {
  /** http://127.0.0.1:PORT, for `apiEndpoint` / StorageOptions. */
  endpoint: string;
  projectId: string;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

function describeLog(server: ManagedProcess): () => string {
  return () => `see ${server.logFile}`;
}

async function httpOk(url: string): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return response.ok;
}

/**
 * A MinIO server (built from the Go module proxy on first use, pinned in versions.json) on a free
 * loopback port, with its data in a temp folder removed on stop. MinIO is used rather than a mock
 * because it honours conditional writes (If-Match / If-None-Match on PutObject and
 * CompleteMultipartUpload), which the diff store's compare-and-swap relies on.
 */
export async function startS3(opts: { logDir?: string } = {}): Promise<S3Server> {
  const binary = await ensureGoTool('minio');
  const dir = mkdtempSync(join(tmpdir(), 'syncline-minio-'));
  const port = await freePort();
  const consolePort = await freePort();
  const accessKeyId = 'minio-root';
  const secretAccessKey = 'syncline-test-secret';
  const server = startProcess(
    `minio-${port}`,
    binary,
    [
      'server',
      '--quiet',
      '--address',
      `127.0.0.1:${port}`,
      '--console-address',
      `127.0.0.1:${consolePort}`,
      join(dir, 'data'),
    ],
    {
      logDir: opts.logDir ?? dir,
      env: {
        ...process.env,
        MINIO_ROOT_USER: accessKeyId,
        MINIO_ROOT_PASSWORD: secretAccessKey,
        MINIO_BROWSER: 'off',
        MINIO_UPDATE: 'off',
        MINIO_CI_CD: '1',
      },
    },
  );
  const endpoint = `http://127.0.0.1:${port}`;
  const region = 'us-east-1';
  await waitFor(
    'MinIO',
    async () => {
      if (server.exited()) throw new Error('minio exited');
      return httpOk(`${endpoint}/minio/health/ready`);
    },
    { timeoutMs: 60_000, describe: describeLog(server) },
  );
  const client = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
  });
  return {
    endpoint,
    region,
    accessKeyId,
    secretAccessKey,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async stop() {
      client.destroy();
      await server.stop(10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * fake-gcs-server (built from the Go module proxy on first use) on a free loopback port, plain HTTP,
 * filesystem backend in a temp folder. It honours `ifGenerationMatch` on uploads.
 */
export async function startGcs(opts: { logDir?: string } = {}): Promise<GcsServer> {
  const binary = await ensureGoTool('fake-gcs-server');
  const dir = mkdtempSync(join(tmpdir(), 'syncline-fakegcs-'));
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const server = startProcess(
    `fake-gcs-${port}`,
    binary,
    [
      '-scheme',
      'http',
      '-host',
      '127.0.0.1',
      '-port',
      String(port),
      '-backend',
      'filesystem',
      '-filesystem-root',
      join(dir, 'data'),
      '-public-host',
      `127.0.0.1:${port}`,
      '-external-url',
      endpoint,
      '-log-level',
      'warn',
    ],
    { logDir: opts.logDir ?? dir },
  );
  const projectId = 'syncline-test';
  await waitFor(
    'fake-gcs-server',
    async () => {
      if (server.exited()) throw new Error('fake-gcs-server exited');
      return httpOk(`${endpoint}/storage/v1/b?project=${projectId}`);
    },
    { timeoutMs: 30_000, describe: describeLog(server) },
  );
  return {
    endpoint,
    projectId,
    async createBucket(name) {
      const response = await fetch(`${endpoint}/storage/v1/b?project=${projectId}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name }),
      });
      if (!response.ok)
        throw new Error(
          `fake-gcs-server: creating bucket ${name} failed: ${response.status} ${await response.text()}`,
        );
    },
    async stop() {
      await server.stop(10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
