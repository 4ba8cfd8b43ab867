import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SynclineError } from '../errors.ts';
import { secretResolver } from '../secrets.ts';
import { openBlobStore, type BlobStore } from '../storage/index.ts';
import { BACKENDS, type TestBackend } from '../../test/stack/blobstores.ts';
import { DiffStore, type Manifest } from './index.ts';

const work = mkdtempSync(join(tmpdir(), 'syncline-difftest-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function rejection(promise: Promise<unknown>): Promise<SynclineError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(SynclineError);
    return error as SynclineError;
  }
  throw new Error('expected a rejection');
}

function manifestFor(runId: string, snapshot: string, rowCount = 3): Manifest {
  return {
    version: 1,
    runId,
    snapshot,
    committedAt: new Date().toISOString(),
    primaryKey: 'id',
    columns: [
      { name: 'id', type: 'BIGINT' },
      { name: 'email', type: 'VARCHAR' },
    ],
    modelFingerprint: 'fp-1',
    comparedColumns: ['email'],
    rowCount,
    destinationType: 'postgres',
  };
}

function localSnapshot(runId: string): string {
  const file = join(work, `${runId}-${randomBytes(4).toString('hex')}.parquet`);
  writeFileSync(file, randomBytes(2048));
  return file;
}

/** Separates upload times on every backend (object stores keep milliseconds). */
const tick = () => sleep(25);

describe.each(Object.keys(BACKENDS) as (keyof typeof BACKENDS)[])('DiffStore on %s', (name) => {
  let backend: TestBackend;
  let blob: BlobStore;

  beforeAll(async () => {
    backend = await BACKENDS[name]();
  });
  afterAll(async () => backend?.stop());

  it('commits a snapshot and reads it back', async () => {
    blob = backend.open();
    const store = new DiffStore(blob, 'team-a', 'customers');
    expect(await store.readManifest()).toBeUndefined();

    const file = localSnapshot('r1');
    const relative = await store.uploadSnapshot('r1', file);
    expect(relative).toBe('snapshots/r1.parquet');
    expect((await blob.list('team-a/customers/')).map((e) => e.path)).toEqual([
      'team-a/customers/snapshots/r1.parquet',
    ]);
    // Uploaded but not committed: nothing is current yet.
    expect(await store.readManifest()).toBeUndefined();

    const committed = manifestFor('r1', relative);
    await store.commit(committed, undefined);
    const current = await store.readManifest();
    expect(current?.manifest).toEqual(committed);
    expect(current?.etag).toBeTruthy();

    const copy = join(work, `${name}-r1-copy.parquet`);
    await store.downloadSnapshot(current!.manifest, copy);
    expect(readFileSync(copy).equals(readFileSync(file))).toBe(true);

    // A second snapshot switches the manifest; the first stays until pruned.
    const r2 = await store.uploadSnapshot('r2', localSnapshot('r2'));
    await store.commit(manifestFor('r2', r2), current!.etag);
    expect((await store.readManifest())?.manifest.snapshot).toBe('snapshots/r2.parquet');
    expect((await blob.list('team-a/customers/snapshots/')).map((e) => e.path).sort()).toEqual([
      'team-a/customers/snapshots/r1.parquet',
      'team-a/customers/snapshots/r2.parquet',
    ]);
  });

  it('refuses a commit from a stale read, and a first commit when one exists', async () => {
    blob = backend.open();
    const store = new DiffStore(blob, 'team-a', 'orders');
    const r1 = await store.uploadSnapshot('r1', localSnapshot('r1'));
    await store.commit(manifestFor('r1', r1), undefined);
    const read = await store.readManifest();

    const r2 = await store.uploadSnapshot('r2', localSnapshot('r2'));
    const again = await rejection(store.commit(manifestFor('r2', r2), undefined));
    expect(again.reason).toBe('ConcurrentCommit');
    const second = manifestFor('r2', r2);
    await store.commit(second, read!.etag);
    // A retried commit whose first attempt landed (its answer lost) is the same commit, not a conflict.
    await store.commit(second, read!.etag);

    const r3 = await store.uploadSnapshot('r3', localSnapshot('r3'));
    const stale = await rejection(store.commit(manifestFor('r3', r3), read!.etag));
    expect(stale.reason).toBe('ConcurrentCommit');
    expect(stale.message).toContain('team-a/orders');
    expect((await store.readManifest())?.manifest.runId).toBe('r2');
  });

  it('lets exactly one of two concurrent commits win', async () => {
    blob = backend.open();
    // Two runners, each with its own client, as two Jobs would have.
    const first = new DiffStore(blob, 'team-b', 'leads');
    const second = new DiffStore(backend.reopen(blob), 'team-b', 'leads');
    const base = await first.uploadSnapshot('r0', localSnapshot('r0'));
    await first.commit(manifestFor('r0', base), undefined);

    for (let round = 1; round <= 3; round++) {
      const seen = await first.readManifest();
      const [a, b] = await Promise.all([
        first.uploadSnapshot(`r${round}-a`, localSnapshot('a')),
        second.uploadSnapshot(`r${round}-b`, localSnapshot('b')),
      ]);
      const results = await Promise.allSettled([
        first.commit(manifestFor(`r${round}-a`, a), seen!.etag),
        second.commit(manifestFor(`r${round}-b`, b), seen!.etag),
      ]);
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i === 0 ? 'a' : 'b'] : []));
      expect(won).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect((lost.reason as SynclineError).reason).toBe('ConcurrentCommit');
      expect((await first.readManifest())?.manifest.runId).toBe(`r${round}-${won[0]}`);
    }
  });

  it('reports a run whose upload the winner pruned as a concurrent commit', async () => {
    blob = backend.open();
    const slow = new DiffStore(blob, 'team-b', 'pruned-race');
    const fast = new DiffStore(backend.reopen(blob), 'team-b', 'pruned-race');
    const seen = await slow.readManifest();
    const slowSnapshot = await slow.uploadSnapshot('slow', localSnapshot('slow'));
    await tick();
    const fastSnapshot = await fast.uploadSnapshot('fast', localSnapshot('fast'));
    await fast.commit(manifestFor('fast', fastSnapshot), seen?.etag);
    await fast.prune({ requestLogDays: 7 });
    expect((await blob.list('team-b/pruned-race/snapshots/')).map((e) => e.path)).toEqual([
      'team-b/pruned-race/snapshots/fast.parquet',
    ]);
    const error = await rejection(slow.commit(manifestFor('slow', slowSnapshot), seen?.etag));
    expect(error.reason).toBe('ConcurrentCommit');
  });

  it('never overwrites the current snapshot and never commits a missing one', async () => {
    blob = backend.open();
    const store = new DiffStore(blob, 'team-a', 'accounts');
    const r1 = await store.uploadSnapshot('r1', localSnapshot('r1'));
    await store.commit(manifestFor('r1', r1), undefined);
    expect((await rejection(store.uploadSnapshot('r1', localSnapshot('r1b')))).reason).toBe('SnapshotInUse');

    const current = await store.readManifest();
    const missing = await rejection(store.commit(manifestFor('r9', 'snapshots/r9.parquet'), current!.etag));
    expect(missing.reason).toBe('SnapshotMissing');
    expect((await store.readManifest())?.manifest.runId).toBe('r1');

    expect((await rejection(store.uploadSnapshot('../evil', localSnapshot('x')))).reason).toBe(
      'InvalidRunId',
    );
    expect(() => new DiffStore(blob, 'Team_A', 'x')).toThrow(
      expect.objectContaining({ reason: 'InvalidDiffStorePath' }),
    );
  });

  it('reports a corrupt manifest and a vanished snapshot so a person can resync', async () => {
    blob = backend.open();
    const store = new DiffStore(blob, 'team-a', 'broken');
    await blob.put('team-a/broken/manifest.json', '{"version": 2}');
    const corrupt = await rejection(store.readManifest());
    expect(corrupt.reason).toBe('DiffStoreCorrupt');
    expect(corrupt.message).toContain('full resync');

    await blob.put('team-a/broken/manifest.json', 'not json');
    expect((await rejection(store.readManifest())).reason).toBe('DiffStoreCorrupt');

    const out = join(work, `${name}-gone.parquet`);
    const gone = await rejection(store.downloadSnapshot(manifestFor('r7', 'snapshots/r7.parquet'), out));
    expect(gone.reason).toBe('SnapshotMissing');
    const outside = await rejection(
      store.downloadSnapshot(manifestFor('r7', '../other/snapshots/r7.parquet'), out),
    );
    expect(outside.reason).toBe('DiffStoreCorrupt');
  });

  it('keeps run summaries and request logs', async () => {
    blob = backend.open();
    const store = new DiffStore(blob, 'team-a', 'summaries');
    expect(await store.readRunSummary('20240101-000000-a')).toBeUndefined();
    expect(await store.listRuns()).toEqual([]);
    for (const runId of ['20240101-000000-a', '20240101-000100-b', '20240101-000200-c']) {
      await store.writeRunSummary(runId, { runId, counts: { delivered: 1 } });
      await tick();
    }
    const gz = join(work, `${name}-requests.jsonl.gz`);
    const lines = '{"op":"upsert","pk":"1","status":200}\n{"op":"delete","pk":"2","status":404}\n';
    writeFileSync(gz, gzipSync(lines));
    await store.writeRequestLog('20240101-000200-c', gz);

    expect(await store.readRunSummary('20240101-000100-b')).toEqual({
      runId: '20240101-000100-b',
      counts: { delivered: 1 },
    });
    expect((await store.listRuns()).map((r) => r.runId)).toEqual([
      '20240101-000200-c',
      '20240101-000100-b',
      '20240101-000000-a',
    ]);
    const log = await store.readRequestLog('20240101-000200-c');
    expect(gunzipSync(log!).toString()).toBe(lines);
    expect(await store.readRequestLog('20240101-000000-a')).toBeUndefined();
  });

  it('prunes old request logs and snapshots nothing points at, but not a newer upload', async () => {
    blob = backend.open();
    const store = new DiffStore(blob, 'team-a', 'pruned');
    const gz = join(work, `${name}-prune.jsonl.gz`);
    writeFileSync(gz, gzipSync('{}\n'));
    await store.writeRequestLog('r1', gz);
    await store.writeRunSummary('r1', { ok: true });

    const r1 = await store.uploadSnapshot('r1', localSnapshot('r1'));
    await store.commit(manifestFor('r1', r1), undefined);
    await tick();
    const r2 = await store.uploadSnapshot('r2', localSnapshot('r2'));
    await tick();
    const r3 = await store.uploadSnapshot('r3', localSnapshot('r3'));
    await store.commit(manifestFor('r3', r3), (await store.readManifest())!.etag);
    await tick();
    // A run that is still going: uploaded after the current snapshot, not committed yet.
    await store.uploadSnapshot('r4', localSnapshot('r4'));

    const paths = async () =>
      (await blob.list('team-a/pruned/')).map((e) => e.path.slice('team-a/pruned/'.length)).sort();
    await store.prune({ requestLogDays: 1, keepSnapshots: 2 });
    expect(await paths()).toEqual([
      'manifest.json',
      'runs/r1.json',
      'runs/r1.requests.jsonl.gz',
      'snapshots/r2.parquet',
      'snapshots/r3.parquet',
      'snapshots/r4.parquet',
    ]);
    expect(r2).toBe('snapshots/r2.parquet');

    if (name === 'file') {
      // Age the request log by a few days (object stores keep their own clock, so only here).
      const old = new Date(Date.now() - 3 * 24 * 3600 * 1000);
      const root = new URL(blob.url + '/').pathname;
      utimesSync(join(root, 'team-a/pruned/runs/r1.requests.jsonl.gz'), old, old);
      await store.prune({ requestLogDays: 2 });
    } else {
      await tick();
      await store.prune({ requestLogDays: 0 });
    }
    expect(await paths()).toEqual([
      'manifest.json',
      'runs/r1.json',
      'snapshots/r3.parquet',
      'snapshots/r4.parquet',
    ]);
    expect((await store.readManifest())?.manifest.snapshot).toBe('snapshots/r3.parquet');
  });

  it('deletes everything of one sync and nothing of another', async () => {
    blob = backend.open();
    const doomed = new DiffStore(blob, 'team-a', 'doomed');
    const kept = new DiffStore(blob, 'team-a', 'doomed-not');
    for (const store of [doomed, kept]) {
      const snap = await store.uploadSnapshot('r1', localSnapshot('r1'));
      await store.commit(manifestFor('r1', snap), undefined);
      await store.writeRunSummary('r1', {});
    }
    expect(await doomed.deleteAll()).toBe(3);
    expect(await doomed.readManifest()).toBeUndefined();
    expect(await doomed.listRuns()).toEqual([]);
    expect((await kept.readManifest())?.manifest.runId).toBe('r1');
    expect(await doomed.deleteAll()).toBe(0);
  });

  it('names a missing diff store bucket', async () => {
    if (!backend.openMissingBucket) {
      // The file backend has no bucket: a folder that cannot be one is its failure instead.
      const blocker = join(work, 'blocker');
      writeFileSync(blocker, '');
      const store = new DiffStore(openBlobStore(blocker, { secrets: secretResolver({}) }), 'ns', 'sync');
      const error = await rejection(store.writeRunSummary('r1', {}));
      expect(error.reason).toBe('StorageError');
      expect(error.message).toContain(blocker);
      return;
    }
    const store = new DiffStore(backend.openMissingBucket(), 'ns', 'sync');
    const error = await rejection(store.readManifest());
    expect(error.reason).toBe('DiffStoreBucketNotFound');
    expect(error.message).toContain(store.blob.url);
    for (const secret of backend.secretValues) expect(error.message).not.toContain(secret);
  });
});

describe('discovered destination objects (file://)', () => {
  const root = mkdtempSync(join(tmpdir(), 'syncline-discovered-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const blob = () => openBlobStore(`file://${root}`, { secrets: secretResolver({}) });
  const document = {
    version: 1 as const,
    destination: 'crm',
    discoveredAt: '2026-01-01T12:00:00.000Z',
    requested: ['contacts'],
    objects: [
      {
        name: 'contacts',
        fields: [
          { name: 'email', type: 'string' as const, unique: true },
          { name: 'lifecyclestage', type: 'enumeration' as const, options: ['lead', 'customer'] },
        ],
      },
    ],
  };

  it('writes compact JSON beside the namespace Syncs and reads it back', async () => {
    await DiffStore.writeDestinationObjects(blob(), 'team-a', document);
    const file = join(root, 'team-a', '_destinations', 'crm', 'objects.json');
    expect(readFileSync(file, 'utf8')).not.toContain('\n');
    expect(await DiffStore.readDestinationObjects(blob(), 'team-a', 'crm')).toEqual(document);
    expect(await DiffStore.readDestinationObjects(blob(), 'team-a', 'other')).toBeUndefined();
    expect(await DiffStore.readDestinationObjects(blob(), 'team-b', 'crm')).toBeUndefined();
  });

  it('confines paths to the namespace and refuses what is not a Kubernetes name', async () => {
    for (const [namespace, destination] of [
      ['team-a', '../team-b'],
      ['..', 'crm'],
      ['team-a', 'a/b'],
      ['team-a', '_destinations'],
    ] as const) {
      const error = await rejection(DiffStore.readDestinationObjects(blob(), namespace, destination));
      expect(error.reason).toBe('InvalidDiffStorePath');
    }
    await expect(
      DiffStore.writeDestinationObjects(blob(), 'team-a', { ...document, destination: '../x' }),
    ).rejects.toMatchObject({ reason: 'InvalidDiffStorePath' });
  });

  it('reports an unreadable file as corrupt, naming the check that replaces it', async () => {
    writeFileSync(join(root, 'team-a', '_destinations', 'crm', 'objects.json'), '{"version":1');
    const error = await rejection(DiffStore.readDestinationObjects(blob(), 'team-a', 'crm'));
    expect(error.reason).toBe('DiffStoreCorrupt');
    expect(error.message).toContain('next connection check of Destination crm');
  });
});
