// The move between the diff store and the warehouse, stopped after each of its writes: the next run
// always finds the state (or knows it was lost), and a dry run writes nothing.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Manifest, SnapshotStore, StoredManifest } from '../../core/diffstore/index.ts';
import { SynclineError } from '../../core/errors.ts';
import { placeSnapshot, type PlaceInput } from './snapshot-location.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-place-'));
  dirs.push(dir);
  return dir;
}

/** A snapshot store in memory, whose files are local copies; it counts its writes. */
class MemoryStore implements SnapshotStore {
  readonly takesDeltas = false;
  readonly namespace = 'ns';
  readonly sync = 'orders';
  readonly files = new Map<string, string>();
  manifest: StoredManifest | undefined;
  writes = 0;
  private generation = 0;
  private readonly dir = tempDir();

  readonly url: string;

  constructor(url: string) {
    this.url = url;
  }

  private write(): void {
    this.writes++;
  }

  readManifest(): Promise<StoredManifest | undefined> {
    return Promise.resolve(this.manifest && structuredClone(this.manifest));
  }
  readManifestForRepair() {
    return this.readManifest();
  }
  downloadSnapshot(manifest: Manifest, localFile: string): Promise<void> {
    const file = this.files.get(manifest.snapshot);
    if (!file) throw new SynclineError('SnapshotMissing', `${this.url}${manifest.snapshot} is missing`);
    copyFileSync(file, localFile);
    return Promise.resolve();
  }
  downloadPending(manifest: Manifest, localFile: string): Promise<void> {
    copyFileSync(this.files.get(manifest.pending?.file ?? '') ?? '', localFile);
    return Promise.resolve();
  }
  private keep(relative: string, localFile: string): string {
    this.write();
    const copy = join(this.dir, relative.replaceAll('/', '_'));
    copyFileSync(localFile, copy);
    this.files.set(relative, copy);
    return relative;
  }
  uploadSnapshot(runId: string, localFile: string): Promise<string> {
    return Promise.resolve(this.keep(`snapshots/${runId}`, localFile));
  }
  uploadPending(runId: string, localFile: string): Promise<string> {
    return Promise.resolve(this.keep(`pending/${runId}`, localFile));
  }
  commit(manifest: Manifest, expectedEtag: string | undefined): Promise<void> {
    if (this.manifest?.etag !== expectedEtag)
      throw new SynclineError('ConcurrentCommit', `${this.url}: the etag moved`);
    this.write();
    this.manifest = { manifest: structuredClone(manifest), etag: String(++this.generation) };
    return Promise.resolve();
  }
  deleteRelative(): Promise<void> {
    return Promise.resolve();
  }
  listSnapshots() {
    return Promise.resolve([]);
  }
  downloadRelative(): Promise<boolean> {
    return Promise.resolve(false);
  }
  dropAll(): Promise<void> {
    this.write();
    this.manifest = undefined;
    this.files.clear();
    return Promise.resolve();
  }
}

function committed(store: MemoryStore, rows: string): void {
  const file = join(tempDir(), 'snapshot');
  writeFileSync(file, rows);
  store.files.set('snapshots/r1', file);
  const pendingFile = join(tempDir(), 'pending');
  writeFileSync(pendingFile, 'pending keys of r1');
  store.files.set('pending/r1', pendingFile);
  store.manifest = {
    etag: '7',
    manifest: {
      version: 2,
      runId: 'r1',
      snapshot: 'snapshots/r1',
      committedAt: '2026-12-01T00:00:00Z',
      primaryKey: 'id',
      columns: [{ name: 'id', type: 'INTEGER' }],
      modelFingerprint: 'f',
      comparedColumns: ['id'],
      rowCount: 3,
      destinationType: 'postgres',
      pending: { file: 'pending/r1', runId: 'r1', folded: true },
    },
  };
}

/** The diff store (away, keeps a tombstone) and the warehouse (home, dropped when moved away from). */
function stores() {
  return {
    bucket: new MemoryStore('file:///state/ns/orders/'),
    warehouse: new MemoryStore('postgres://db/s.t/'),
  };
}

function toWarehouse(s: ReturnType<typeof stores>, extra: Partial<PlaceInput> = {}): PlaceInput {
  return {
    home: s.warehouse,
    homeLocation: 'warehouse',
    away: { location: 'diffStore', open: () => Promise.resolve(s.bucket) },
    runId: `run-${s.bucket.writes}-${s.warehouse.writes}`,
    dir: tempDir(),
    dryRun: false,
    fullResync: false,
    log: pino({ level: 'silent' }),
    ...extra,
  };
}

function toBucket(s: ReturnType<typeof stores>, extra: Partial<PlaceInput> = {}): PlaceInput {
  return {
    ...toWarehouse(s),
    home: s.bucket,
    homeLocation: 'diffStore',
    away: {
      location: 'warehouse',
      open: () => Promise.resolve(s.warehouse),
      release: (store) => (store as MemoryStore).dropAll(),
    },
    ...extra,
  };
}

/** The snapshot's content as the store that now holds the state names it. */
function content(store: SnapshotStore & { files: Map<string, string> }, manifest: Manifest): string {
  return readFileSync(store.files.get(manifest.snapshot) ?? '', 'utf8');
}

describe('placing the snapshot', () => {
  it('moves the state from the bucket to the warehouse and back, with its pending keys', async () => {
    const s = stores();
    committed(s.bucket, 'keys 1 2 3');
    const there = await placeSnapshot(toWarehouse(s));
    expect(there.notice?.reason).toBe('SnapshotMoved');
    expect(there.snapshots).toBe(s.warehouse);
    const manifest = there.stored.current?.manifest as Manifest;
    expect(content(s.warehouse, manifest)).toBe('keys 1 2 3');
    expect(manifest.pending?.runId).toBe('r1');
    expect(readFileSync(s.warehouse.files.get(manifest.pending?.file ?? '') ?? '', 'utf8')).toBe(
      'pending keys of r1',
    );
    expect(s.bucket.manifest?.manifest.movedTo).toMatchObject({ location: 'warehouse', confirmed: true });
    // Asked again: the warehouse is home and live, nothing moves.
    const again = await placeSnapshot(toWarehouse(s));
    expect(again.notice).toBeUndefined();
    expect(again.stored.etag).toBe(there.stored.etag);

    const back = await placeSnapshot(toBucket(s));
    expect(back.notice?.reason).toBe('SnapshotMoved');
    expect(back.snapshots).toBe(s.bucket);
    expect(back.stored.current?.manifest.movedTo).toBeUndefined();
    expect(content(s.bucket, back.stored.current?.manifest as Manifest)).toBe('keys 1 2 3');
    expect(s.warehouse.manifest).toBeUndefined();
  });

  it('finds the state after a move killed at any of its writes', async () => {
    for (const direction of ['toWarehouse', 'toBucket'] as const) {
      for (let killAt = 1; killAt <= 5; killAt++) {
        const s = stores();
        const from = direction === 'toWarehouse' ? s.bucket : s.warehouse;
        const to = direction === 'toWarehouse' ? s.warehouse : s.bucket;
        committed(from, `state of ${direction} ${killAt}`);
        const input = direction === 'toWarehouse' ? toWarehouse : toBucket;
        // Writes happen in turn on either store: count them on both and stop the move at the killAt-th.
        let writes = 0;
        for (const store of [s.bucket, s.warehouse]) {
          const write = store.commit.bind(store);
          const upload = store.uploadSnapshot.bind(store);
          const pending = store.uploadPending.bind(store);
          const drop = store.dropAll.bind(store);
          const kill = <T>(go: () => Promise<T>) =>
            ++writes === killAt ? Promise.reject(new Error('killed')) : go();
          store.commit = (m, e) => kill(() => write(m, e));
          store.uploadSnapshot = (r, f) => kill(() => upload(r, f));
          store.uploadPending = (r, f) => kill(() => pending(r, f));
          store.dropAll = () => kill(() => drop());
        }
        const first = await placeSnapshot(input(s)).then(
          (placed) => placed,
          (error: unknown) => error as Error,
        );
        writes = -1000; // the next run is not killed
        const next = await placeSnapshot(input(s));
        const where = `${direction}, killed at write ${killAt} (${first instanceof Error ? first.message : 'survived'})`;
        // The fifth write cleans up what was left away: its failure only warns.
        expect(first instanceof Error, where).toBe(killAt <= 4);
        expect(next.snapshots, where).toBe(to);
        expect(next.fullResync, where).toBeUndefined();
        const manifest = next.stored.current?.manifest as Manifest;
        expect(manifest?.movedTo, where).toBeUndefined();
        expect(content(to, manifest), where).toBe(`state of ${direction} ${killAt}`);
      }
    }
  });

  it('tells a state lost where it moved to from a first sync', async () => {
    const s = stores();
    committed(s.bucket, 'keys 1 2 3');
    await placeSnapshot(toWarehouse(s));
    await s.warehouse.dropAll(); // someone dropped the schema
    const lost = await placeSnapshot(toWarehouse(s));
    expect(lost.notice?.reason).toBe('WarehouseSnapshotLost');
    expect(lost.fullResync).toBe(true);
    expect(lost.stored.recoverFrom).toBe(s.bucket);
    expect(lost.stored.problem).toContain('was its schema or state table dropped?');

    const fresh = stores();
    const marks: string[] = [];
    const elsewhere = {
      read: () => Promise.resolve(marks[0]),
      mark: (url: string) => Promise.resolve(void marks.push(url)),
    };
    const first = await placeSnapshot(toWarehouse(fresh, { elsewhere }));
    expect(first).toMatchObject({ stored: { current: undefined }, snapshots: fresh.warehouse });
    expect(first.notice).toBeUndefined();
    expect(marks).toEqual([fresh.warehouse.url]);
    // The warehouse is emptied after that first run: the mark tells it was there.
    const later = await placeSnapshot(toWarehouse(fresh, { elsewhere }));
    expect(later.notice?.reason).toBe('WarehouseSnapshotLost');
    expect(later.notice?.message).toContain(fresh.warehouse.url);
  });

  it('reads a move in a dry run from where the state is, writing nothing', async () => {
    const s = stores();
    committed(s.bucket, 'keys 1 2 3');
    const dry = await placeSnapshot(toWarehouse(s, { dryRun: true }));
    expect(dry.snapshots).toBe(s.bucket);
    expect(dry.stored.current?.manifest.runId).toBe('r1');
    expect([s.bucket.writes, s.warehouse.writes]).toEqual([0, 0]);
    expect(s.warehouse.manifest).toBeUndefined();
  });
});
