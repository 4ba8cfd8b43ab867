import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SynclineError } from '../errors.ts';
import { secretResolver } from '../secrets.ts';
import { openBlobStore, parseStorageUrl, type BlobStore } from './index.ts';
import { BACKENDS, type TestBackend } from '../../test/stack/blobstores.ts';

const work = mkdtempSync(join(tmpdir(), 'syncline-blobtest-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The SynclineError a promise rejects with. */
async function rejection(promise: Promise<unknown>): Promise<SynclineError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(SynclineError);
    return error as SynclineError;
  }
  throw new Error('expected a rejection');
}

function randomFile(name: string, bytes: number): { path: string; sha: string } {
  const path = join(work, name);
  const data = randomBytes(bytes);
  writeFileSync(path, data);
  return { path, sha: createHash('sha256').update(data).digest('hex') };
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe.each(Object.keys(BACKENDS) as (keyof typeof BACKENDS)[])('BlobStore on %s', (name) => {
  let backend: TestBackend;
  let store: BlobStore;

  beforeAll(async () => {
    backend = await BACKENDS[name]();
  });
  afterAll(async () => backend?.stop());

  it('puts, gets, lists and deletes objects', async () => {
    store = backend.open();
    expect(store.url).toMatch(new RegExp(`^${name}://`));
    expect(await store.get('a/missing.json')).toBeUndefined();

    const first = await store.put('a/one.json', '{"n":1}');
    const binary = Buffer.from([0, 255, 1, 254, 10, 13]);
    await store.put('a/b/two.bin', binary);
    await store.put('c.txt', 'ünïcødé ✓');

    const one = await store.get('a/one.json');
    expect(one?.body.toString()).toBe('{"n":1}');
    expect(one?.etag).toBe(first.etag);
    expect((await store.get('a/b/two.bin'))?.body.equals(binary)).toBe(true);
    expect((await store.get('c.txt'))?.body.toString('utf8')).toBe('ünïcødé ✓');

    const second = await store.put('a/one.json', '{"n":2}');
    expect(second.etag).not.toBe(first.etag);
    expect((await store.get('a/one.json'))?.etag).toBe(second.etag);

    const all = await store.list('');
    expect(all.map((e) => e.path).sort()).toEqual(['a/b/two.bin', 'a/one.json', 'c.txt']);
    expect(all.find((e) => e.path === 'a/b/two.bin')?.size).toBe(binary.length);
    for (const entry of all) expect(new Date(entry.updatedAt).toISOString()).toBe(entry.updatedAt);
    expect((await store.list('a/')).map((e) => e.path).sort()).toEqual(['a/b/two.bin', 'a/one.json']);
    expect((await store.list('a/o')).map((e) => e.path)).toEqual(['a/one.json']);
    expect(await store.list('zzz/')).toEqual([]);

    await store.delete('a/one.json');
    await store.delete('a/one.json'); // absent: no error
    expect(await store.get('a/one.json')).toBeUndefined();
    expect((await store.list('')).map((e) => e.path).sort()).toEqual(['a/b/two.bin', 'c.txt']);

    await store.put('a/b/three.bin', 'x');
    expect(await store.deletePrefix('a/')).toBe(2);
    expect((await store.list('')).map((e) => e.path)).toEqual(['c.txt']);
    expect(await store.deletePrefix('nothing/')).toBe(0);
  });

  it('streams files up and down, also in parts', async () => {
    store = backend.open();
    const small = randomFile(`${name}-small.bin`, 300_000);
    const large = randomFile(`${name}-large.bin`, 20 * 1024 * 1024 + 123);
    await store.putFile('snap/small.bin', small.path);
    await store.putFile('snap/large.bin', large.path);
    const entries = await store.list('snap/');
    expect(entries.find((e) => e.path === 'snap/large.bin')?.size).toBe(20 * 1024 * 1024 + 123);

    const out = join(work, `${name}-out`, 'large.copy');
    expect(await store.getToFile('snap/large.bin', out)).toBe(true);
    expect(sha(out)).toBe(large.sha);
    expect(await store.getToFile('snap/small.bin', out)).toBe(true);
    expect(sha(out)).toBe(small.sha);

    const absent = join(work, `${name}-out`, 'absent.copy');
    expect(await store.getToFile('snap/none.bin', absent)).toBe(false);
    expect(existsSync(absent)).toBe(false);
  });

  it('conditional puts win once and then fail with PreconditionFailed', async () => {
    store = backend.open();
    const created = await store.put('manifest.json', 'v1', { ifNoneMatch: '*' });
    const again = await rejection(store.put('manifest.json', 'v1-again', { ifNoneMatch: '*' }));
    expect(again.reason).toBe('PreconditionFailed');
    expect(again.message).toContain(store.url);

    const updated = await store.put('manifest.json', 'v2', { ifMatch: created.etag });
    const stale = await rejection(store.put('manifest.json', 'v2-stale', { ifMatch: created.etag }));
    expect(stale.reason).toBe('PreconditionFailed');
    expect((await store.get('manifest.json'))?.body.toString()).toBe('v2');
    expect((await store.get('manifest.json'))?.etag).toBe(updated.etag);

    // The same on the streamed path, single request and multipart. Etags follow the content (S3's is
    // its MD5), so each replacement writes different bytes.
    for (const [label, bytes] of [
      ['small', 1000],
      ['large', 17 * 1024 * 1024],
    ] as const) {
      const a = randomFile(`${name}-cond-${label}-a.bin`, bytes);
      const b = randomFile(`${name}-cond-${label}-b.bin`, bytes);
      const path = `cond/${label}.bin`;
      const put = await store.putFile(path, a.path, { ifNoneMatch: '*' });
      expect((await rejection(store.putFile(path, b.path, { ifNoneMatch: '*' }))).reason).toBe(
        'PreconditionFailed',
      );
      const replaced = await store.putFile(path, b.path, { ifMatch: put.etag });
      expect(replaced.etag).not.toBe(put.etag);
      expect((await rejection(store.putFile(path, a.path, { ifMatch: put.etag }))).reason).toBe(
        'PreconditionFailed',
      );
      const out = join(work, `${name}-cond-${label}.out`);
      expect(await store.getToFile(path, out)).toBe(true);
      expect(sha(out)).toBe(b.sha);
      expect((await store.get(path))?.etag).toBe(replaced.etag);
    }
  });

  it('lets exactly one of many concurrent conditional writers win', async () => {
    store = backend.open();
    const racers = 8;
    const creates = await Promise.allSettled(
      Array.from({ length: racers }, (_, i) => store.put('race.json', `create-${i}`, { ifNoneMatch: '*' })),
    );
    expect(creates.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of creates)
      if (r.status === 'rejected') expect((r.reason as SynclineError).reason).toBe('PreconditionFailed');

    const current = await store.get('race.json');
    const swaps = await Promise.allSettled(
      Array.from({ length: racers }, (_, i) =>
        store.put('race.json', `swap-${i}`, { ifMatch: current!.etag }),
      ),
    );
    const winners = swaps.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(winners).toHaveLength(1);
    for (const r of swaps)
      if (r.status === 'rejected') expect((r.reason as SynclineError).reason).toBe('PreconditionFailed');
    expect((await store.get('race.json'))?.body.toString()).toBe(`swap-${winners[0]}`);
  });

  it("gives up on a read whose signal aborts, with the signal's reason", async () => {
    store = backend.open();
    await store.put('abort/one.json', '{"n":1}');
    const live = new AbortController();
    expect((await store.get('abort/one.json', { signal: live.signal }))?.body.toString()).toBe('{"n":1}');
    const stopped = new AbortController();
    stopped.abort(new Error('gave up'));
    await expect(store.get('abort/one.json', { signal: stopped.signal })).rejects.toThrow('gave up');
  });

  it('refuses paths that could leave the base', async () => {
    store = backend.open();
    for (const bad of ['../escape.json', '/abs.json', 'a//b', 'a/./b', '']) {
      expect((await rejection(store.put(bad, 'x'))).reason).toBe('InvalidStoragePath');
    }
    expect((await rejection(store.list('../'))).reason).toBe('InvalidStoragePath');
  });

  if (name === 'file') return; // no buckets, credentials or endpoints: see 'file store' below

  it('names a missing bucket, refused credentials and an unreachable endpoint, never a secret', async () => {
    const errors: SynclineError[] = [];
    const missing = backend.openMissingBucket!();
    const bucketError = await rejection(missing.get('x.json'));
    expect(bucketError.reason).toBe('StorageBucketNotFound');
    expect(bucketError.message).toContain(missing.url);
    expect((await rejection(missing.put('x.json', 'x'))).reason).toBe('StorageBucketNotFound');
    expect((await rejection(missing.list(''))).reason).toBe('StorageBucketNotFound');
    errors.push(bucketError);

    if (backend.openBadCredentials) {
      const bad = backend.openBadCredentials();
      for (const op of [() => bad.get('x.json'), () => bad.put('x.json', 'x'), () => bad.list('')]) {
        const denied = await rejection(op());
        expect(denied.reason).toBe('StorageAccessDenied');
        expect(denied.message).toContain(bad.url);
        errors.push(denied);
      }
    }

    const unreachable = await backend.openUnreachable!();
    const down = await rejection(unreachable.get('x.json'));
    expect(down.reason).toBe('StorageUnreachable');
    expect(down.retryable).toBe(true);
    errors.push(down);

    for (const error of errors) {
      for (const secret of backend.secretValues) {
        expect(error.message).not.toContain(secret);
        expect(JSON.stringify(error)).not.toContain(secret);
      }
    }
  });
});

describe('file store', () => {
  it('is a compare-and-swap across processes', async () => {
    const dir = join(work, 'cross-process');
    const store = openBlobStore(dir, { secrets: secretResolver({}) });
    const { etag } = await store.put('m.json', 'start');
    const { spawn } = await import('node:child_process');
    const script = `
      import { openBlobStore } from ${JSON.stringify(new URL('./index.ts', import.meta.url).href)};
      import { secretResolver } from ${JSON.stringify(new URL('../secrets.ts', import.meta.url).href)};
      const store = openBlobStore(${JSON.stringify(dir)}, { secrets: secretResolver({}) });
      try { await store.put('m.json', 'from-' + process.pid, { ifMatch: ${JSON.stringify(etag)} }); console.log('won'); }
      catch (e) { console.log(e.reason); }`;
    const outcomes = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<string>((resolve, reject) => {
            const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
              stdio: ['ignore', 'pipe', 'inherit'],
            });
            let out = '';
            child.stdout.on('data', (d: Buffer) => (out += d.toString()));
            child.once('error', reject);
            child.once('exit', () => resolve(out.trim()));
          }),
      ),
    );
    expect(outcomes.filter((o) => o === 'won')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'PreconditionFailed')).toHaveLength(3);
    expect((await store.get('m.json'))?.body.toString()).toMatch(/^from-\d+$/);
    // Neither temp files nor lock folders are left or listed.
    expect((await store.list('')).map((e) => e.path)).toEqual(['m.json']);
  });

  it('gives every write a new etag, even with the same bytes in the same millisecond', async () => {
    const store = openBlobStore(join(work, 'etags'), { secrets: secretResolver({}) });
    const etags: string[] = [];
    for (let i = 0; i < 50; i++) etags.push((await store.put('same.json', 'same bytes')).etag);
    expect(new Set(etags).size).toBe(50);
    expect((await store.get('same.json'))?.etag).toBe(etags.at(-1));
    const stale = await rejection(store.put('same.json', 'same bytes', { ifMatch: etags[0]! }));
    expect(stale.reason).toBe('PreconditionFailed');
  });

  it('recovers from a writer killed while holding the lock or mid-write', async () => {
    const dir = join(work, 'killed');
    const store = openBlobStore(dir, { secrets: secretResolver({}) });
    const { etag } = await store.put('ns/s/manifest.json', 'v1');
    // What a SIGKILLed writer leaves: its lock folder and a half-written temp file, both long untouched.
    const lock = join(dir, 'ns/s/manifest.json.syncline-lock');
    const temp = join(dir, 'ns/s/manifest.json.0123456789ab.syncline-tmp');
    mkdirSync(lock);
    writeFileSync(temp, 'half');
    const old = new Date(Date.now() - 3600_000);
    utimesSync(lock, old, old);
    utimesSync(temp, old, old);

    expect((await store.list('')).map((e) => e.path)).toEqual(['ns/s/manifest.json']);
    expect((await store.get('ns/s/manifest.json'))?.body.toString()).toBe('v1');
    await store.put('ns/s/manifest.json', 'v2', { ifMatch: etag });
    expect((await store.get('ns/s/manifest.json'))?.body.toString()).toBe('v2');

    mkdirSync(lock); // killed again, then the sync is deleted
    utimesSync(lock, old, old);
    expect(await store.deletePrefix('ns/')).toBe(1);
    expect(existsSync(temp)).toBe(false);
    expect(existsSync(join(dir, 'ns'))).toBe(false);
  });

  it('normalises file URLs and plain paths', () => {
    expect(parseStorageUrl('file:///var/lib/syncline/').url).toBe('file:///var/lib/syncline');
    expect(parseStorageUrl('/var/lib/syncline')).toMatchObject({ scheme: 'file', root: '/var/lib/syncline' });
    expect(parseStorageUrl('s3://bucket/a/b/')).toMatchObject({
      url: 's3://bucket/a/b',
      bucket: 'bucket',
      prefix: 'a/b',
    });
    expect(parseStorageUrl('gs://bucket')).toMatchObject({ url: 'gs://bucket', prefix: '' });
    for (const bad of ['http://x/y', 's3://', 's3://A_B/x', 'gs://bucket/../x']) {
      expect(() => parseStorageUrl(bad)).toThrow(expect.objectContaining({ reason: 'InvalidStorageUrl' }));
    }
  });

  it('reports an unusable folder with the URL', async () => {
    const blocker = join(work, 'not-a-folder');
    writeFileSync(blocker, 'x');
    const store = openBlobStore(blocker, { secrets: secretResolver({}) });
    const error = await rejection(store.put('a.json', 'x'));
    expect(error.reason).toBe('StorageError');
    expect(error.message).toContain(store.url);
  });
});

describe('gs store credentials', () => {
  let server: Server;
  let endpoint: string;
  beforeAll(async () => {
    // Answers like Google Cloud Storage does to a token it refuses.
    server = createServer((_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: { code: 401, message: 'Invalid Credentials', errors: [{ reason: 'authError' }] },
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    endpoint = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('turns a 401 into StorageAccessDenied', async () => {
    const store = openBlobStore('gs://bucket-x/p', { secrets: secretResolver({}), gcs: { endpoint } });
    for (const op of [() => store.get('a.json'), () => store.put('a.json', 'x'), () => store.list('')]) {
      expect((await rejection(op())).reason).toBe('StorageAccessDenied');
    }
  });

  it('refuses a service-account key that is not JSON without echoing it', async () => {
    const key = 'not-json-but-secret-material-42';
    const secrets = secretResolver({ SYNCLINE_SECRET_GCS__KEY: key });
    let error: unknown;
    try {
      openBlobStore('gs://bucket-x/p', {
        secrets,
        gcs: { endpoint, serviceAccountKey: { secretKeyRef: { name: 'gcs', key: 'key' } } },
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({ reason: 'InvalidStorageCredentials' });
    expect((error as Error).message).not.toContain(key);
  });

  it('names the missing secret, not a value', () => {
    expect(() =>
      openBlobStore('s3://bucket-x/p', {
        secrets: secretResolver({}),
        s3: {
          accessKeyId: { secretKeyRef: { name: 's3', key: 'id' } },
          secretAccessKey: { secretKeyRef: { name: 's3', key: 'secret' } },
        },
      }),
    ).toThrow(expect.objectContaining({ reason: 'SecretNotFound' }));
  });
});
