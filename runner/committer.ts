// The commits of one run, in order: the intent (the keys about to be touched, before anything is sent),
// checkpoints of delivered progress while delivering, and the final commit. Each switches the manifest
// with a compare-and-swap on the etag the previous one left, so a run that lost the race stops.
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import {
  collectUndelivered,
  committedHashSql,
  UNDELIVERED_NOW,
  writeBaseSnapshot,
  writeSnapshot,
  type SnapshotHash,
} from './commit.ts';
import type { LoadedPrevious } from './diff.ts';
import type { Manifest, SnapshotStore } from '../core/diffstore/index.ts';
import { SynclineError } from '../core/errors.ts';
import { writePending } from './pending.ts';
import type { RunShape } from './snapshot-match.ts';

export interface CommitterOptions {
  store: SnapshotStore;
  conn: DuckDBConnection;
  dir: string;
  runId: string;
  primaryKey: string;
  keyType: string;
  previous: LoadedPrevious;
  hash: SnapshotHash;
  /** The manifest this run started from (undefined: none, or unreadable and being repaired). */
  current: Manifest | undefined;
  /** The etag of the object at manifest.json when the run read it (also a broken one being replaced). */
  etag: string | undefined;
  shape: RunShape;
  /**
   * `prev` and the current rows hold only the keys that may differ (a narrowed warehouse snapshot): each
   * commit uploads a delta of the keys the run touched instead of a whole snapshot.
   */
  delta?: boolean;
}

export class RunCommitter {
  private etag: string | undefined;
  private pending: Manifest['pending'];
  private checkpoints = 0;
  private lastCheckpointSnapshot: string | undefined;

  private readonly options: CommitterOptions;

  constructor(options: CommitterOptions) {
    this.options = options;
    this.etag = options.etag;
  }

  /**
   * Before the first request: this run's pending keys, committed beside the snapshot the run started
   * from (or, with none readable, beside the keys as loaded). Returns how many keys are pending.
   */
  async intent(): Promise<number> {
    const o = this.options;
    const file = join(o.dir, 'pending.parquet');
    const keys = await writePending(o.conn, {
      primaryKey: o.primaryKey,
      hashSql: committedHashSql(o.hash),
      runId: o.runId,
      file,
    });
    const pendingFile = await o.store.uploadPending(o.runId, file);
    this.pending = { file: pendingFile, runId: o.runId, folded: false };
    let base: Manifest;
    if (o.current) {
      base = { ...o.current, committedAt: new Date().toISOString(), pending: this.pending };
    } else {
      const baseFile = join(o.dir, 'base.parquet');
      const rowCount = await writeBaseSnapshot(o.conn, {
        primaryKey: o.primaryKey,
        keyType: o.keyType,
        previous: o.previous,
        file: baseFile,
        recordIds: o.hash.recordIds === true,
      });
      const snapshot = await o.store.uploadSnapshot(`${o.runId}.base`, baseFile);
      base = {
        ...o.shape,
        // The keys as loaded carry no hash this run could compare with.
        comparedColumns: [],
        comparedSources: {},
        version: 2,
        runId: `${o.runId}.base`,
        snapshot,
        committedAt: new Date().toISOString(),
        rowCount,
        pending: this.pending,
      };
    }
    await this.switchTo(base);
    return keys;
  }

  /** A checkpoint while delivering: what the destination confirmed so far becomes the snapshot. */
  async checkpoint(conn: DuckDBConnection): Promise<void> {
    await collectUndelivered(conn);
    const id = `${this.options.runId}.checkpoint-${++this.checkpoints}`;
    const superseded = this.lastCheckpointSnapshot;
    this.lastCheckpointSnapshot = await this.commitSnapshot(conn, id, UNDELIVERED_NOW, true);
    // A checkpoint is current only until the next one: the previous can go at once.
    if (superseded) await this.options.store.deleteRelative(superseded);
  }

  /**
   * The final commit: `undelivered` holds the keys without a confirmed delivery (`failed`, or, for a
   * stopped run, what collectUndelivered finds). Returns the snapshot's path.
   */
  async final(conn: DuckDBConnection, stopped: boolean, anyUndelivered: boolean): Promise<string> {
    if (stopped) await collectUndelivered(conn);
    const snapshot = await this.commitSnapshot(
      conn,
      this.options.runId,
      stopped ? UNDELIVERED_NOW : 'failed',
      stopped || anyUndelivered,
    );
    if (this.lastCheckpointSnapshot) await this.options.store.deleteRelative(this.lastCheckpointSnapshot);
    return snapshot;
  }

  private async commitSnapshot(
    conn: DuckDBConnection,
    id: string,
    undelivered: string,
    keepEpochs: boolean,
  ): Promise<string> {
    const o = this.options;
    const file = join(o.dir, `${id}.parquet`);
    const delta = o.delta === true;
    const rowCount = await writeSnapshot(conn, {
      ...o.hash,
      primaryKey: o.primaryKey,
      keyType: o.keyType,
      previous: o.previous,
      file,
      undelivered,
      delta,
    });
    const snapshot = await o.store.uploadSnapshot(id, file, { delta });
    await this.switchTo({
      ...o.shape,
      version: 2,
      runId: id,
      snapshot,
      committedAt: new Date().toISOString(),
      // A delta's rows are not the snapshot's: the store that applies it counts them.
      rowCount: delta ? (o.current?.rowCount ?? 0) : rowCount,
      // The keys still stale keep the epochs of their pending changes.
      ...(this.pending && keepEpochs ? { pending: { ...this.pending, folded: true } } : {}),
    });
    return snapshot;
  }

  private async switchTo(manifest: Manifest): Promise<void> {
    const o = this.options;
    await o.store.commit(manifest, this.etag);
    const now = await o.store.readManifest();
    if (now?.manifest.runId !== manifest.runId) {
      throw new SynclineError(
        'ConcurrentCommit',
        `another run of ${o.store.namespace}/${o.store.sync} committed while this one was running`,
      );
    }
    this.etag = now.etag;
  }
}
