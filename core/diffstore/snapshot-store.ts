// Where a Sync's snapshot lives: the interface the run pipeline reads and commits the snapshot through.
// Two implementations: the diff store (a bucket: manifest.json, Parquet snapshots, pending-key files;
// core/diffstore/index.ts) and a warehouse snapshot (tables of a schema Syncline owns in the Source's own
// database, so that the diff runs there; connectors/postgres/snapshot.ts). Run summaries, request logs and
// the run lease stay in the diff store whichever keeps the snapshot.
import type { Manifest } from './index.ts';

// The columns of a snapshot (manifest version 2), as a local Parquet file of either store holds them: one
// row per key the destination holds.
/** The key as text. */
export const SNAPSHOT_KEY = '__syncline_key';
/** The row must be sent again (rejected, pending, or its key held by duplicates). */
export const SNAPSHOT_STALE = '__syncline_stale';
/** The hash of the compared columns as last delivered (UBIGINT). */
export const SNAPSHOT_HASH = '__syncline_hash';
/** The destination's id of the record (destinations with capabilities.recordIds): no look-up to address it. */
export const SNAPSHOT_RECORD_ID = '__syncline_record_id';
/**
 * In a delta (uploadSnapshot with `delta`): the key left the snapshot. A delta holds, for every key it
 * touches, either its new row or this tombstone; keys it does not name keep their rows.
 */
export const SNAPSHOT_DELETED = '__syncline_deleted';
// A pending-keys file: SNAPSHOT_KEY, the typed key (named as the primary key), PENDING_OP, SNAPSHOT_HASH
// (the hash the run will commit) and PENDING_EPOCH (the run that first planned the change).
export const PENDING_OP = '__syncline_op';
export const PENDING_EPOCH = '__syncline_epoch';

export interface StoredManifest {
  manifest: Manifest;
  /** The version a compare-and-swap commit expects (an object's etag, a state row's generation). */
  etag: string;
}

export type RepairRead = StoredManifest | { manifest: undefined; etag: string; problem: string } | undefined;

export interface SnapshotStore {
  /** Where the Sync's state lives, for messages (never a credential). */
  readonly url: string;
  readonly namespace: string;
  readonly sync: string;
  /** Whether uploadSnapshot takes a delta (the rows of the keys a run touched) besides a whole snapshot. */
  readonly takesDeltas: boolean;
  readManifest(): Promise<StoredManifest | undefined>;
  /** The manifest, or the version of a broken one (to replace it with a compare-and-swap) and why it is broken. */
  readManifestForRepair(): Promise<RepairRead>;
  /** The current snapshot as a local Parquet file (SnapshotMissing when it is gone). */
  downloadSnapshot(manifest: Manifest, localFile: string): Promise<void>;
  /** The pending keys the manifest names, as a local Parquet file (DiffStoreCorrupt when missing). */
  downloadPending(manifest: Manifest, localFile: string): Promise<void>;
  /**
   * Upload a snapshot under a new name; only a commit naming it makes it current. Returns the path the
   * manifest names it by. With `delta`, the file holds only the keys the run touched (SNAPSHOT_DELETED).
   */
  uploadSnapshot(runId: string, localFile: string, options?: { delta?: boolean }): Promise<string>;
  /** Upload a run's pending keys; returns the path the manifest names them by. */
  uploadPending(runId: string, localFile: string): Promise<string>;
  /**
   * Make `manifest` current if the stored one is still the version `expectedEtag` (undefined: none yet);
   * otherwise ConcurrentCommit, and nothing changes.
   */
  commit(manifest: Manifest, expectedEtag: string | undefined): Promise<void>;
  /** Delete an object this run uploaded and no manifest names any more (a superseded checkpoint). */
  deleteRelative(relative: string): Promise<void>;
  /** Snapshots that may still be read, newest first (a full resync over broken state recovers their keys). */
  listSnapshots(): Promise<{ path: string; url: string; updatedAt: string }[]>;
  /** Download one of listSnapshots; false when it is gone. */
  downloadRelative(relative: string, localFile: string): Promise<boolean>;
}
