// A Sync may keep its snapshot in the diff store or in the warehouse (spec.snapshot.location), and may
// switch. The place it asks for is "home", the other "away". A switch moves the state, so nothing is sent
// again: away's manifest first becomes a tombstone (movedTo, unconfirmed), then home commits a copy of
// its snapshot and pending keys, then away is confirmed moved (the diff store keeps the tombstone and its
// last snapshot) or dropped (the warehouse). A run stopped anywhere leaves a state the next run reads:
//   home live                     → the state
//   home unconfirmed tombstone    → the move away never finished: its content is still the state
//   away live or unconfirmed      → move it home
//   away/home confirmed, no live  → the state was lost where it moved to (say, its schema was dropped):
//                                   a full resync, recovering the keys of the last snapshot still kept
//   nothing anywhere              → a first sync
import { join } from 'node:path';
import type { Logger } from '../../core/connectors.ts';
import type { Manifest, SnapshotStore, StoredManifest } from '../../core/diffstore/index.ts';
import { SynclineError } from '../../core/errors.ts';
import type { RunState } from '../state.ts';

export type Location = 'diffStore' | 'warehouse';

/** A place a snapshot may be kept; `open` is called at most once, and may find nothing to open. */
export interface Place {
  location: Location;
  open(): Promise<SnapshotStore | undefined>;
  /** Remove what is left once the state moved away (the warehouse drops its tables). */
  release?(store: SnapshotStore): Promise<void>;
}

export interface Placed {
  snapshots: SnapshotStore;
  stored: RunState;
  /** Said in the run's ending: the state moved, or was lost and the run resyncs. */
  notice?: { reason: 'SnapshotMoved' | 'WarehouseSnapshotLost'; message: string };
  /** The run must send every row (the state was lost). */
  fullResync?: boolean;
}

export interface PlaceInput {
  home: SnapshotStore;
  homeLocation: Location;
  away: Place;
  runId: string;
  dir: string;
  /** A dry run writes nothing: a move is read from where the state is. */
  dryRun: boolean;
  fullResync: boolean;
  log: Logger;
  /** When home is the warehouse: the diff store's mark that the state lives there (DiffStore.readElsewhere). */
  elsewhere?: { read(): Promise<string | undefined>; mark(url: string): Promise<void> };
}

type Read = StoredManifest | undefined;

const live = (read: Read): boolean => read !== undefined && !read.manifest.movedTo;
const unconfirmed = (read: Read) => read?.manifest.movedTo?.confirmed === false;

function withoutMove(manifest: Manifest): Manifest {
  const { movedTo: _moved, ...rest } = manifest;
  return rest;
}

/** Where this run reads and commits its snapshot, after finishing or making the move its Sync asks for. */
export async function placeSnapshot(input: PlaceInput): Promise<Placed> {
  const { home } = input;
  const here = await readHome(home, input.fullResync);
  if ('problem' in here) return { snapshots: home, stored: here.problem };
  if (here.read && live(here.read)) return { snapshots: home, stored: state(here.read) };
  if (here.read && unconfirmed(here.read)) {
    if (input.dryRun) return { snapshots: home, stored: state(here.read, withoutMove(here.read.manifest)) };
    const revived = withoutMove(here.read.manifest);
    await home.commit(revived, here.read.etag);
    return { snapshots: home, stored: await reread(home) };
  }
  const away = await input.away.open();
  const there: Read = away ? await away.readManifest() : undefined;
  if (away && there && (live(there) || unconfirmed(there))) {
    if (input.dryRun) return { snapshots: away, stored: state(there, withoutMove(there.manifest)) };
    return moveHome(input, away, there, here.read);
  }
  const tombstone = here.read ?? (there?.manifest.movedTo ? there : undefined);
  if (tombstone) return lost(input, tombstone, here.read, away);
  const marked = await input.elsewhere?.read();
  if (marked !== undefined) return lost(input, undefined, undefined, away, marked);
  if (!input.dryRun) await input.elsewhere?.mark(home.url);
  return { snapshots: home, stored: { current: undefined, etag: undefined } };
}

async function readHome(
  home: SnapshotStore,
  fullResync: boolean,
): Promise<{ read: Read } | { problem: RunState }> {
  if (!fullResync) return { read: await home.readManifest() };
  const found = await home.readManifestForRepair();
  if (found && found.manifest === undefined)
    return { problem: { current: undefined, etag: found.etag, problem: found.problem } };
  return { read: found };
}

function state(read: StoredManifest, manifest = read.manifest): RunState {
  return { current: { manifest, etag: read.etag }, etag: read.etag };
}

async function reread(store: SnapshotStore): Promise<RunState> {
  const now = await store.readManifest();
  if (!now || now.manifest.movedTo) {
    throw new SynclineError(
      'ConcurrentCommit',
      `another run of ${store.namespace}/${store.sync} changed ${store.url} while this one moved its snapshot`,
    );
  }
  return state(now);
}

/** Copy away's state home (snapshot and pending keys), then confirm or release away. */
async function moveHome(
  input: PlaceInput,
  away: SnapshotStore,
  there: StoredManifest,
  homeRead: Read,
): Promise<Placed> {
  const { home, log } = input;
  const manifest = withoutMove(there.manifest);
  let etag = there.etag;
  if (!there.manifest.movedTo) {
    await away.commit(
      { ...manifest, movedTo: { location: input.homeLocation, url: home.url, confirmed: false } },
      there.etag,
    );
    etag = (await away.readManifest())?.etag ?? etag;
  }
  const snapshotFile = join(input.dir, 'moved-snapshot.parquet');
  await away.downloadSnapshot(manifest, snapshotFile);
  const moveId = `${input.runId}-moved`;
  const snapshot = await home.uploadSnapshot(moveId, snapshotFile);
  let pending = manifest.pending;
  if (pending) {
    const pendingFile = join(input.dir, 'moved-pending.parquet');
    await away.downloadPending(manifest, pendingFile);
    pending = { ...pending, file: await home.uploadPending(pending.runId, pendingFile) };
  }
  await home.commit({ ...manifest, snapshot, ...(pending ? { pending } : {}) }, homeRead?.etag);
  const stored = await reread(home);
  await finishAway(input, away, manifest, etag);
  const message = `moved the snapshot of run ${manifest.runId} (${manifest.rowCount} rows) from ${away.url} to ${home.url}: nothing is sent again`;
  log.info({ from: away.url, to: home.url, rows: manifest.rowCount }, 'moved the snapshot');
  return { snapshots: home, stored, notice: { reason: 'SnapshotMoved', message } };
}

/** Away keeps a confirmed tombstone (the diff store) or is dropped (the warehouse); a failure only warns. */
async function finishAway(input: PlaceInput, away: SnapshotStore, manifest: Manifest, etag: string) {
  try {
    if (input.away.release) {
      await input.away.release(away);
      return;
    }
    await away.commit(
      { ...manifest, movedTo: { location: input.homeLocation, url: input.home.url, confirmed: true } },
      etag,
    );
  } catch (error) {
    // The state is home already; what is left away is a tombstone the next move overwrites.
    input.log.warn(
      { from: away.url, err: error instanceof Error ? error.message : String(error) },
      'the snapshot moved, but what is left where it was could not be cleaned up',
    );
  }
}

/** The state moved somewhere that no longer has it: send every row, deleting by the last keys still kept. */
function lost(
  input: PlaceInput,
  tombstone: StoredManifest | undefined,
  homeRead: Read,
  away: SnapshotStore | undefined,
  marked?: string,
): Placed {
  const where = tombstone?.manifest.movedTo?.url ?? marked ?? 'the other location';
  const keeper = homeRead?.manifest.movedTo ? input.home : (away ?? input.home);
  const since = tombstone ? `moved to ${where} after run ${tombstone.manifest.runId}` : `is kept at ${where}`;
  const message =
    `the snapshot of this Sync ${since}, which holds no state now (was its schema or state table dropped?): ` +
    `resending every row, and deleting the records of keys missing from the last snapshot still kept (at ${keeper.url})`;
  input.log.warn({ at: where }, message);
  return {
    snapshots: input.home,
    stored: {
      current: undefined,
      etag: homeRead?.etag,
      problem: message,
      recoverFrom: keeper,
    },
    notice: { reason: 'WarehouseSnapshotLost', message },
    fullResync: true,
  };
}
