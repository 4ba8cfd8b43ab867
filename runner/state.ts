// What a run reads of its Sync's state: the manifest, the current snapshot and the pending keys. A full
// resync must recover from any unreadable state, keeping what can still be read — the keys of the last
// readable snapshot, so that records whose rows left the model are still deleted.
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Logger } from '../core/connectors.ts';
import type { PreviousSnapshot } from './diff.ts';
import type { Manifest, SnapshotStore } from '../core/diffstore/index.ts';
import { queryAll, queryOne, literal, toCount } from './duck.ts';
import { describeError, isSynclineError, SynclineError } from '../core/errors.ts';
import { SNAPSHOT_HASH, SNAPSHOT_KEY, SNAPSHOT_STALE } from './mappings.ts';

export interface RunState {
  /** The manifest when it reads (undefined: no state yet, or a broken manifest being repaired). */
  current: { manifest: Manifest; etag: string } | undefined;
  /** The etag of manifest.json as read, also of a broken one: the next commit replaces exactly it. */
  etag: string | undefined;
  /** Why the state could not be read, when a full resync is repairing it. */
  problem?: string;
  /** Where a full resync repairing the state recovers the last keys from (default: the store read). */
  recoverFrom?: SnapshotStore;
}

/** The manifest; with `fullResync`, a broken one is reported as a problem instead of failing the run. */
export async function readStateForRun(store: SnapshotStore, fullResync: boolean): Promise<RunState> {
  if (!fullResync) {
    const current = await store.readManifest();
    return { current, etag: current?.etag };
  }
  const found = await store.readManifestForRepair();
  if (!found) return { current: undefined, etag: undefined };
  if (found.manifest === undefined) return { current: undefined, etag: found.etag, problem: found.problem };
  return { current: { manifest: found.manifest, etag: found.etag }, etag: found.etag };
}

/** Files of the current state on local disk (started while the model is queried). */
export interface DownloadedState {
  snapshot?: { file: string; error?: unknown };
  pending?: { file: string; error?: unknown };
}

export async function downloadState(
  store: SnapshotStore,
  state: RunState,
  dir: string,
  options: { snapshotFile?: string } = {},
): Promise<DownloadedState> {
  const manifest = state.current?.manifest;
  if (!manifest) return {};
  // A warehouse snapshot narrowed by the staging is on local disk already (the rows of the keys that differ).
  const snapshot = options.snapshotFile ?? join(dir, 'previous.parquet');
  const pendingFile = join(dir, 'previous-pending.parquet');
  const [s, p] = await Promise.allSettled([
    options.snapshotFile ? Promise.resolve() : store.downloadSnapshot(manifest, snapshot),
    manifest.pending ? store.downloadPending(manifest, pendingFile) : Promise.resolve(),
  ]);
  return {
    snapshot: { file: snapshot, ...(s.status === 'rejected' ? { error: s.reason as unknown } : {}) },
    ...(manifest.pending
      ? { pending: { file: pendingFile, ...(p.status === 'rejected' ? { error: p.reason as unknown } : {}) } }
      : {}),
  };
}

/** The columns a snapshot of each version must have. */
function readableAs(columns: Set<string>): 1 | 2 | undefined {
  if (!columns.has(SNAPSHOT_KEY)) return undefined;
  if (columns.has(SNAPSHOT_HASH) && columns.has(SNAPSHOT_STALE)) return 2;
  return 1;
}

/** The columns of a local Parquet file, or why DuckDB cannot read it (naming the object, not the copy). */
async function parquetColumns(conn: DuckDBConnection, file: string): Promise<Set<string> | string> {
  try {
    const rows = await queryAll(conn, `DESCRIBE SELECT * FROM read_parquet(${literal(file)})`);
    await queryOne(conn, `SELECT count(*) FROM read_parquet(${literal(file)})`);
    return new Set(rows.map((r) => String(r['column_name'])));
  } catch (error) {
    const first = describeError(error).message.split('\n')[0] ?? 'unreadable';
    return first.replaceAll(`'${file}' `, '').replaceAll(file, 'the file');
  }
}

/**
 * The previous snapshot for the diff, checked: a snapshot DuckDB cannot read, or pending keys that are
 * missing, fail with DiffStoreCorrupt naming the object — unless the run is a full resync, which then
 * starts from the newest snapshot that still reads (its keys), or from nothing.
 */
export async function previousForDiff(
  conn: DuckDBConnection,
  store: SnapshotStore,
  state: RunState,
  downloaded: DownloadedState,
  options: { fullResync: boolean; primaryKey: string; destinationType: string; dir: string; log: Logger },
): Promise<{ previous: PreviousSnapshot | undefined; pendingFile: string | undefined }> {
  const manifest = state.current?.manifest;
  let problem = state.problem;
  if (manifest && downloaded.snapshot) {
    const checked = await checkSnapshot(conn, store, manifest, downloaded.snapshot);
    if (checked === undefined) {
      const pending = await checkPending(conn, store, manifest, downloaded.pending, options.fullResync);
      return { previous: { file: downloaded.snapshot.file, manifest }, pendingFile: pending };
    }
    if (!options.fullResync) throw checked;
    problem = checked.message;
  }
  if (problem === undefined) return { previous: undefined, pendingFile: undefined };
  options.log.warn({ problem }, 'the Sync state is unreadable; the full resync starts from what can be read');
  return { previous: await recoverKeys(conn, state.recoverFrom ?? store, options), pendingFile: undefined };
}

async function checkSnapshot(
  conn: DuckDBConnection,
  store: SnapshotStore,
  manifest: Manifest,
  snapshot: NonNullable<DownloadedState['snapshot']>,
): Promise<SynclineError | undefined> {
  if (snapshot.error !== undefined) {
    if (isSynclineError(snapshot.error)) return snapshot.error;
    throw snapshot.error;
  }
  const columns = await parquetColumns(conn, snapshot.file);
  if (typeof columns === 'string' || readableAs(columns) !== manifest.version) {
    const why = typeof columns === 'string' ? columns : 'it lacks the columns of a snapshot';
    return new SynclineError(
      'DiffStoreCorrupt',
      `the current snapshot ${store.url}${manifest.snapshot} (run ${manifest.runId}) cannot be read (${why}): request a full resync`,
    );
  }
  return undefined;
}

async function checkPending(
  conn: DuckDBConnection,
  store: SnapshotStore,
  manifest: Manifest,
  pending: DownloadedState['pending'],
  fullResync: boolean,
): Promise<string | undefined> {
  if (!pending) return undefined;
  let error = pending.error;
  if (error === undefined) {
    const columns = await parquetColumns(conn, pending.file);
    if (typeof columns !== 'string' && columns.has(SNAPSHOT_KEY)) return pending.file;
    error = new SynclineError(
      'DiffStoreCorrupt',
      `the pending keys ${store.url}${manifest.pending?.file} of run ${manifest.pending?.runId} cannot be read: request a full resync`,
    );
  }
  // A full resync sends every row anyway; only keys added and removed by the crashed run are lost.
  if (fullResync) return undefined;
  throw error;
}

/** The newest snapshot that DuckDB reads, as a previous snapshot of unknown shape (every row resends). */
async function recoverKeys(
  conn: DuckDBConnection,
  store: SnapshotStore,
  options: { primaryKey: string; destinationType: string; dir: string; log: Logger },
): Promise<PreviousSnapshot | undefined> {
  const candidates = await store.listSnapshots();
  for (const [i, candidate] of candidates.entries()) {
    const file = join(options.dir, `recovered-${i}.parquet`);
    if (!(await store.downloadRelative(candidate.path, file))) continue;
    const columns = await parquetColumns(conn, file);
    const version = typeof columns === 'string' ? undefined : readableAs(columns);
    if (version === undefined) continue;
    const counted = await queryOne(conn, `SELECT count(*) AS n FROM read_parquet(${literal(file)})`);
    options.log.warn(
      { snapshot: candidate.url },
      'recovered the keys of the last readable snapshot: rows that left the model since are still deleted',
    );
    const manifest: Manifest = {
      version,
      runId: 'recovered',
      snapshot: candidate.path,
      committedAt: candidate.updatedAt,
      primaryKey: options.primaryKey,
      columns: [],
      modelFingerprint: '',
      comparedColumns: [],
      rowCount: toCount(counted['n']),
      destinationType: options.destinationType,
    };
    return { file, manifest };
  }
  options.log.warn(
    {},
    'no snapshot of the Sync can be read: records sent before that left the model are not deleted',
  );
  return undefined;
}
