import { z } from 'zod';
import { SynclineError, isSynclineError } from '../errors.ts';
import type { BlobStore, ReadOptions } from '../storage/index.ts';
import type { RepairRead, SnapshotStore, StoredManifest } from './snapshot-store.ts';

export type { RepairRead, SnapshotStore, StoredManifest } from './snapshot-store.ts';

export const manifestSchema = z.object({
  /**
   * 1: the snapshot keeps every compared value as a column. 2: it keeps one hash of the compared columns
   * per row (comparedColumns, in that order), and the compared constants live here. Version 1 snapshots
   * are still read: their values are hashed when loaded.
   */
  version: z.union([z.literal(1), z.literal(2)]),
  runId: z.string().min(1),
  /** Path of the snapshot relative to the sync's folder, e.g. snapshots/<runId>.parquet. */
  snapshot: z.string().min(1),
  committedAt: z.string(),
  primaryKey: z.string(),
  columns: z.array(z.object({ name: z.string(), type: z.string() })),
  modelFingerprint: z.string(),
  comparedColumns: z.array(z.string()),
  /** Version 2: the model column of each compared item whose name is not the column's (a field=column pair). */
  comparedSources: z.record(z.string(), z.string()).optional(),
  /** Version 2: static values and template texts of the mappings, by compared item name. */
  comparedConstants: z.record(z.string(), z.string()).optional(),
  /** Version 2: the row hash of fixed sample values, to notice a hash function that changed. */
  hashProbe: z.string().optional(),
  /**
   * Version 2: the function that made the hashes: "duckdb" (the engine's hash(); also when absent) or a
   * source's own (e.g. "postgres"), whose probe hashProbe is then.
   */
  hashFunction: z.string().optional(),
  rowCount: z.number().int().min(0),
  destinationType: z.string(),
  /**
   * Where the destination's records live (a digest of the connector's identity: server, table, URL), so
   * that a Sync pointed somewhere else sends every row there. Absent in manifests of older runners.
   */
  destinationIdentity: z.string().optional(),
  /**
   * The keys a run was about to touch, committed before it sent anything (pending/<runId>.parquet: key,
   * typed key, operation, row hash, idempotency epoch). Until `folded`, each is taken as stale: a run
   * killed mid-delivery sends them again whatever the model says next. Folded once a checkpoint or the
   * final commit wrote their staleness into the snapshot; kept for the epochs of keys still stale.
   */
  pending: z.object({ file: z.string().min(1), runId: z.string().min(1), folded: z.boolean() }).optional(),
  /**
   * The Sync's snapshot moved to the other place it may be kept (Sync.spec.snapshot.location): this
   * manifest is no current state. Until `confirmed` (the other place committed it), what it names is still
   * the Sync's state and a move that stopped is finished from it; once confirmed, it names the last
   * snapshot kept here, whose keys a resync recovers should the other place lose the state.
   */
  movedTo: z
    .object({
      location: z.enum(['diffStore', 'warehouse']),
      url: z.string(),
      schema: z.string().optional(),
      confirmed: z.boolean(),
    })
    .optional(),
});
export type Manifest = z.infer<typeof manifestSchema>;

/** A field of a destination object as the connection check discovered it (core/connectors.ts DestinationField). */
const destinationField = z.object({
  name: z.string().min(1),
  label: z.string().optional(),
  type: z.enum([
    'string',
    'number',
    'boolean',
    'date',
    'datetime',
    'enumeration',
    'reference',
    'id',
    'other',
  ]),
  required: z.boolean().optional(),
  unique: z.boolean().optional(),
  readOnly: z.boolean().optional(),
  options: z.array(z.string()).optional(),
});

/**
 * What a Destination's connection check discovered (`<namespace>/_destinations/<name>/objects.json`):
 * the objects and fields of the objects the Syncs target, and when they were read. `requested` are the
 * objects asked for: one of them missing from `objects` does not exist in the destination.
 */
export const destinationObjectsSchema = z.object({
  version: z.literal(1),
  destination: z.string(),
  discoveredAt: z.string(),
  requested: z.array(z.string()),
  objects: z.array(
    z.object({ name: z.string().min(1), label: z.string().optional(), fields: z.array(destinationField) }),
  ),
});
export type DestinationObjects = z.infer<typeof destinationObjectsSchema>;

/** The folder of a namespace's Destinations; `_` is never the start of a Kubernetes name, so no Sync's folder. */
const DESTINATIONS = '_destinations/';

const KUBE_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function checkName(what: string, name: string): string {
  if (!KUBE_NAME.test(name) || name.length > 253 || name.includes('..')) {
    throw new SynclineError(
      'InvalidDiffStorePath',
      `${what} "${name}" is not a valid Kubernetes name, so it cannot name a diff store folder`,
    );
  }
  return name;
}

const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SNAPSHOTS = 'snapshots/';
/** The mark of a snapshot kept elsewhere (readElsewhere). */
const ELSEWHERE = 'elsewhere.json';
const PENDING = 'pending/';
const RUNS = 'runs/';
const REQUEST_LOG_SUFFIX = '.requests.jsonl.gz';
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The state of one Sync under the store's base URL:
 *   <namespace>/<sync>/manifest.json              the commit point: which snapshot is current
 *   <namespace>/<sync>/snapshots/<runId>.parquet  what the destination holds, as of that run
 *   <namespace>/<sync>/runs/<runId>.json          run summaries
 *   <namespace>/<sync>/runs/<runId>.requests.jsonl.gz   the live debugger's request log
 *   <namespace>/_destinations/<destination>/objects.json  a Destination's discovered objects and fields
 * A snapshot is uploaded under a new name and only the manifest switch (a compare-and-swap) makes it
 * current, so a run killed anywhere leaves the previous snapshot current.
 */
export class DiffStore implements SnapshotStore {
  readonly blob: BlobStore;
  /** A bucket keeps whole snapshots: each commit names a new file. */
  readonly takesDeltas = false;
  readonly namespace: string;
  readonly sync: string;
  private readonly folder: string;

  constructor(blob: BlobStore, namespace: string, sync: string) {
    checkName('namespace', namespace);
    checkName('sync', sync);
    this.blob = blob;
    this.namespace = namespace;
    this.sync = sync;
    this.folder = `${namespace}/${sync}/`;
  }

  /** Where a Destination's discovered objects live under the store's base URL. */
  static destinationObjectsPath(namespace: string, destination: string): string {
    return `${checkName('namespace', namespace)}/${DESTINATIONS}${checkName('destination', destination)}/objects.json`;
  }

  /**
   * Records what a Destination's connection check discovered, beside the namespace's Syncs (compact JSON:
   * the operator reads it for every Sync of the Destination). Replaces the previous discovery.
   */
  static async writeDestinationObjects(
    blob: BlobStore,
    namespace: string,
    document: DestinationObjects,
  ): Promise<void> {
    const checked = destinationObjectsSchema.parse(document);
    const path = DiffStore.destinationObjectsPath(namespace, checked.destination);
    await storage(() => blob.put(path, JSON.stringify(checked)));
  }

  /** What the last check of a Destination discovered; undefined when nothing was (no `discover`, no check yet). */
  static async readDestinationObjects(
    blob: BlobStore,
    namespace: string,
    destination: string,
    options: ReadOptions = {},
  ): Promise<DestinationObjects | undefined> {
    const path = DiffStore.destinationObjectsPath(namespace, destination);
    const found = await storage(() => blob.get(path, options));
    if (!found) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(found.body.toString('utf8'));
    } catch (error) {
      throw new SynclineError(
        'DiffStoreCorrupt',
        `${blob.url}/${path} is not valid JSON (${(error as Error).message}): the next connection check of Destination ${destination} replaces it`,
      );
    }
    const parsed = destinationObjectsSchema.safeParse(json);
    if (!parsed.success) {
      throw new SynclineError(
        'DiffStoreCorrupt',
        `${blob.url}/${path} is not a discovery this operator can read (${parsed.error.issues[0]?.message ?? 'invalid'}): the next connection check of Destination ${destination} replaces it`,
      );
    }
    return parsed.data;
  }

  /** The folder of this Sync's objects under the store's base URL (`<namespace>/<sync>/`). */
  get syncFolder(): string {
    return this.folder;
  }

  /** Where this sync's state lives, for messages. */
  get url(): string {
    return `${this.blob.url}/${this.folder}`;
  }

  async readManifest(): Promise<StoredManifest | undefined> {
    const found = await this.readManifestObject();
    if (!found) return undefined;
    return { manifest: this.parseManifest(found.body), etag: found.etag };
  }

  /**
   * The manifest for a full resync, which must recover from any unreadable state: the manifest when it
   * reads, else the etag of the broken object (to replace it with a compare-and-swap) and why it is broken.
   */
  async readManifestForRepair(): Promise<RepairRead> {
    const found = await this.readManifestObject();
    if (!found) return undefined;
    try {
      return { manifest: this.parseManifest(found.body), etag: found.etag };
    } catch (error) {
      if (isSynclineError(error) && error.reason === 'DiffStoreCorrupt')
        return { manifest: undefined, etag: found.etag, problem: error.message };
      throw error;
    }
  }

  /** Snapshot files of this Sync, newest first (to recover the keys of the last readable one). */
  async listSnapshots(): Promise<{ path: string; url: string; updatedAt: string }[]> {
    const entries = await this.storage(() => this.blob.list(this.folder + SNAPSHOTS));
    return entries
      .filter((e) => e.path.endsWith('.parquet'))
      .sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : 0))
      .map((e) => ({
        path: e.path.slice(this.folder.length),
        url: `${this.blob.url}/${e.path}`,
        updatedAt: e.updatedAt,
      }));
  }

  /** Download a snapshot by its path relative to the Sync's folder; false when it is gone. */
  async downloadRelative(relative: string, localFile: string): Promise<boolean> {
    const path = this.snapshotPath(relative);
    return this.storage(() => this.blob.getToFile(path, localFile));
  }

  private async readManifestObject(): Promise<{ body: Buffer; etag: string } | undefined> {
    return this.storage(() => this.blob.get(this.folder + 'manifest.json'));
  }

  private parseManifest(body: Buffer): Manifest {
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (error) {
      throw new SynclineError(
        'DiffStoreCorrupt',
        `${this.url}manifest.json is not valid JSON (${(error as Error).message}): request a full resync`,
      );
    }
    const parsed = manifestSchema.safeParse(json);
    if (!parsed.success) {
      throw new SynclineError(
        'DiffStoreCorrupt',
        `${this.url}manifest.json is not a manifest this runner can read (${parsed.error.issues[0]?.message ?? 'invalid'}): request a full resync`,
      );
    }
    return parsed.data;
  }

  async downloadSnapshot(manifest: Manifest, localFile: string): Promise<void> {
    const path = this.snapshotPath(manifest.snapshot);
    const found = await this.storage(() => this.blob.getToFile(path, localFile));
    if (!found) {
      throw new SynclineError(
        'SnapshotMissing',
        `the current snapshot ${this.url}${manifest.snapshot} (run ${manifest.runId}) is missing: request a full resync`,
      );
    }
  }

  /** Upload under a new name; refuses to overwrite the snapshot the manifest points at. Returns the relative path. */
  async uploadSnapshot(runId: string, localFile: string, options: { delta?: boolean } = {}): Promise<string> {
    if (options.delta) throw new Error('the diff store keeps whole snapshots, not deltas');
    const relative = `${SNAPSHOTS}${this.checkRunId(runId)}.parquet`;
    const current = await this.readManifest().catch((error: unknown) => {
      if (isSynclineError(error) && error.reason === 'DiffStoreCorrupt') return undefined; // a resync replaces it
      throw error;
    });
    if (current?.manifest.snapshot === relative) {
      throw new SynclineError(
        'SnapshotInUse',
        `run ${runId} already committed ${this.url}${relative}: a new run needs a new run id`,
      );
    }
    await this.storage(() => this.blob.putFile(this.folder + relative, localFile));
    return relative;
  }

  /** Upload a run's pending keys (see Manifest.pending); returns the relative path. */
  async uploadPending(runId: string, localFile: string): Promise<string> {
    const relative = `${PENDING}${this.checkRunId(runId)}.parquet`;
    await this.storage(() => this.blob.putFile(this.folder + relative, localFile));
    return relative;
  }

  async downloadPending(manifest: Manifest, localFile: string): Promise<void> {
    const relative = manifest.pending?.file ?? '';
    if (
      !relative.startsWith(PENDING) ||
      relative.includes('..') ||
      relative.slice(PENDING.length).includes('/')
    )
      throw new SynclineError(
        'DiffStoreCorrupt',
        `pending keys path "${relative}" in ${this.url}manifest.json is not under ${PENDING}: request a full resync`,
      );
    const found = await this.storage(() => this.blob.getToFile(this.folder + relative, localFile));
    if (!found) {
      throw new SynclineError(
        'DiffStoreCorrupt',
        `the pending keys ${this.url}${relative} of run ${manifest.pending?.runId} are missing, so the keys that run may have sent are unknown: request a full resync`,
      );
    }
  }

  /** Delete an object this run wrote and no manifest names any more (a superseded checkpoint). */
  async deleteRelative(relative: string): Promise<void> {
    await this.storage(() => this.blob.delete(this.folder + relative));
  }

  async commit(manifest: Manifest, expectedEtag: string | undefined): Promise<void> {
    const checked = manifestSchema.parse(manifest);
    const snapshot = this.snapshotPath(checked.snapshot);
    const uploaded = await this.storage(() => this.blob.list(snapshot));
    if (!uploaded.some((entry) => entry.path === snapshot)) {
      // Another run that committed meanwhile may have pruned it: that is the conflict to report.
      if ((await this.readManifest())?.etag !== expectedEtag) throw this.concurrentCommit(checked);
      throw new SynclineError(
        'SnapshotMissing',
        `cannot commit run ${checked.runId}: its snapshot ${this.url}${checked.snapshot} was not uploaded`,
      );
    }
    const body = JSON.stringify(checked, null, 2) + '\n';
    const cond = expectedEtag === undefined ? ({ ifNoneMatch: '*' } as const) : { ifMatch: expectedEtag };
    try {
      await this.storage(() => this.blob.put(this.folder + 'manifest.json', body, cond));
    } catch (error) {
      if (isSynclineError(error) && error.reason === 'PreconditionFailed') {
        // A retried request whose first attempt did land fails its own precondition: that is our commit.
        if (await this.manifestIs(checked)) return;
        throw this.concurrentCommit(checked);
      }
      throw error;
    }
  }

  /**
   * Where the Sync's snapshot lives when it is not here (a warehouse snapshot's URL), so that a state
   * lost there is told from a Sync that never had one; undefined when nothing was marked.
   */
  async readElsewhere(): Promise<string | undefined> {
    const found = await this.storage(() => this.blob.get(this.folder + ELSEWHERE));
    if (!found) return undefined;
    let body: unknown;
    try {
      body = JSON.parse(found.body.toString('utf8'));
    } catch (error) {
      return `an unreadable mark (${this.url}${ELSEWHERE}: ${String(error)})`;
    }
    const parsed = z.object({ url: z.string() }).safeParse(body);
    return parsed.success ? parsed.data.url : `an unreadable mark (${this.url}${ELSEWHERE})`;
  }

  async markElsewhere(url: string): Promise<void> {
    await this.storage(() => this.blob.put(this.folder + ELSEWHERE, JSON.stringify({ url }) + '\n'));
  }

  async writeRunSummary(runId: string, summary: unknown): Promise<void> {
    const path = `${this.folder}${RUNS}${this.checkRunId(runId)}.json`;
    await this.storage(() => this.blob.put(path, JSON.stringify(summary, null, 2) + '\n'));
  }

  /** The run summary as stored (undefined when absent); `signal` gives up on a slow read. */
  async readRunSummary(runId: string, options: ReadOptions = {}): Promise<unknown | undefined> {
    const path = `${this.folder}${RUNS}${this.checkRunId(runId)}.json`;
    const found = await this.storage(() => this.blob.get(path, options));
    if (!found) return undefined;
    try {
      return JSON.parse(found.body.toString('utf8')) as unknown;
    } catch (error) {
      throw new SynclineError(
        'DiffStoreCorrupt',
        `run summary ${this.url}${RUNS}${runId}.json is not valid JSON: ${(error as Error).message}`,
      );
    }
  }

  /** Runs with a summary, newest first. */
  async listRuns(): Promise<{ runId: string; updatedAt: string }[]> {
    const entries = await this.storage(() => this.blob.list(this.folder + RUNS));
    return entries
      .map((entry) => ({
        name: entry.path.slice(this.folder.length + RUNS.length),
        updatedAt: entry.updatedAt,
      }))
      .filter(({ name }) => name.endsWith('.json') && !name.includes('/'))
      .map(({ name, updatedAt }) => ({ runId: name.slice(0, -'.json'.length), updatedAt }))
      .sort((a, b) =>
        a.updatedAt !== b.updatedAt ? (a.updatedAt < b.updatedAt ? 1 : -1) : a.runId < b.runId ? 1 : -1,
      );
  }

  async writeRequestLog(runId: string, localGzFile: string): Promise<void> {
    const path = `${this.folder}${RUNS}${this.checkRunId(runId)}${REQUEST_LOG_SUFFIX}`;
    await this.storage(() => this.blob.putFile(path, localGzFile));
  }

  /** The gzip'd JSONL request log of a run, or undefined when none was kept (or it was pruned). */
  async readRequestLog(runId: string): Promise<Buffer | undefined> {
    const path = `${this.folder}${RUNS}${this.checkRunId(runId)}${REQUEST_LOG_SUFFIX}`;
    return (await this.storage(() => this.blob.get(path)))?.body;
  }

  /**
   * Delete request logs older than `requestLogDays`, and snapshots the manifest does not point at
   * beyond the `keepSnapshots` newest (default 1: only the current one). A snapshot uploaded after the
   * current one is never deleted: it may belong to a run that is about to commit.
   */
  async prune(options: { requestLogDays: number; keepSnapshots?: number }): Promise<void> {
    const now = Date.now();
    const logs = await this.storage(() => this.blob.list(this.folder + RUNS));
    for (const entry of logs) {
      if (
        entry.path.endsWith(REQUEST_LOG_SUFFIX) &&
        now - Date.parse(entry.updatedAt) > options.requestLogDays * DAY_MS
      ) {
        await this.storage(() => this.blob.delete(entry.path));
      }
    }
    const current = await this.readManifest();
    if (!current) return; // without a commit nothing is known to be unneeded
    await this.prunePending(current.manifest);
    const currentPath = this.snapshotPath(current.manifest.snapshot);
    const snapshots = (await this.storage(() => this.blob.list(this.folder + SNAPSHOTS))).sort((a, b) =>
      a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : 0,
    );
    const currentEntry = snapshots.find((entry) => entry.path === currentPath);
    if (!currentEntry) return;
    const keep = Math.max(1, options.keepSnapshots ?? 1);
    const older = snapshots.filter(
      (entry) => entry.path !== currentPath && entry.updatedAt < currentEntry.updatedAt,
    );
    for (const entry of older.slice(keep - 1)) await this.storage(() => this.blob.delete(entry.path));
  }

  /** Pending-key files older than the one the manifest names (a newer one may be about to commit). */
  private async prunePending(manifest: Manifest): Promise<void> {
    const files = await this.storage(() => this.blob.list(this.folder + PENDING));
    const named = manifest.pending ? this.folder + manifest.pending.file : undefined;
    const namedAt = files.find((f) => f.path === named)?.updatedAt ?? manifest.committedAt;
    for (const file of files) {
      if (file.path !== named && file.updatedAt < namedAt)
        await this.storage(() => this.blob.delete(file.path));
    }
  }

  /** Delete everything this sync stored (snapshotPolicy: delete); returns how many objects. */
  async deleteAll(): Promise<number> {
    return this.storage(() => this.blob.deletePrefix(this.folder));
  }

  private concurrentCommit(manifest: Manifest): SynclineError {
    return new SynclineError(
      'ConcurrentCommit',
      `another run of ${this.namespace}/${this.sync} committed first, so run ${manifest.runId} was not recorded; the next run diffs against the other run's snapshot and re-sends what differs`,
    );
  }

  /** Whether the current manifest is exactly `manifest`; false when it cannot be read (then the caller's error stands). */
  private async manifestIs(manifest: Manifest): Promise<boolean> {
    try {
      const now = await this.readManifest();
      return now !== undefined && JSON.stringify(now.manifest) === JSON.stringify(manifest);
    } catch (error) {
      if (isSynclineError(error)) return false;
      throw error;
    }
  }

  private snapshotPath(relative: string): string {
    if (
      !relative.startsWith(SNAPSHOTS) ||
      relative.includes('..') ||
      relative.slice(SNAPSHOTS.length).includes('/')
    ) {
      throw new SynclineError(
        'DiffStoreCorrupt',
        `snapshot path "${relative}" in ${this.url}manifest.json is not under ${SNAPSHOTS}: request a full resync`,
      );
    }
    return this.folder + relative;
  }

  private checkRunId(runId: string): string {
    if (!RUN_ID.test(runId) || runId.includes('..')) {
      throw new SynclineError(
        'InvalidRunId',
        `run id "${runId}" may only hold letters, digits, '.', '_' and '-' (up to 128)`,
      );
    }
    return runId;
  }

  private storage<T>(fn: () => Promise<T>): Promise<T> {
    return storage(fn);
  }
}

/** The diff store's own name for a missing bucket, so a Sync's condition says which store is meant. */
async function storage<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (isSynclineError(error) && error.reason === 'StorageBucketNotFound') {
      throw new SynclineError(
        'DiffStoreBucketNotFound',
        `the diff store bucket does not exist: ${error.message}`,
      );
    }
    throw error;
  }
}
