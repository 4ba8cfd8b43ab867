// A Sync's snapshot kept in the Source's own Snowflake database (Sync.spec.snapshot.location: warehouse):
// the SnapshotStore of core/diffstore/snapshot-store.ts over the tables of snapshot-tables.ts, so that the
// narrowed staging (narrow.ts) can diff the model against it in Snowflake SQL. Its own session, opened for
// the run; the model is still read on the source's sessions.
import type {
  SnapshotRejection,
  WarehouseSnapshot,
  WarehouseSnapshotRequest,
} from '../../core/connectors.ts';
import {
  manifestSchema,
  type Manifest,
  type RepairRead,
  type StoredManifest,
} from '../../core/diffstore/index.ts';
import { isSynclineError, SynclineError } from '../../core/errors.ts';
import type { SourceSpec } from '../../crds/index.ts';
import { SnowflakeClient } from './client.ts';
import { commitState } from './snapshot-commit.ts';
import {
  parquetOf,
  pendingFields,
  rowsIntoDuck,
  snapshotFields,
  uploadPendingRows,
  uploadSnapshotRows,
} from './snapshot-files.ts';
import {
  grantMissing,
  prepareTables,
  schemaExists,
  sessionOf,
  snapshotTables,
  type Session,
  type SnapshotTables,
} from './snapshot-tables.ts';
import { connect, destroy, snowflakeError } from './source.ts';

type Settings = NonNullable<SourceSpec['snowflake']>;

const SNAPSHOTS = 'snapshots/';
const PENDING = 'pending/';
/** listSnapshots' name of the table itself (a full resync over a broken state recovers its keys). */
const CURRENT = `${SNAPSHOTS}current`;
/** Snowflake's "does not exist or not authorized": the table is gone. */
const MISSING = '002003';

export class SnowflakeWarehouseSnapshot implements WarehouseSnapshot {
  readonly takesDeltas = true;
  readonly url: string;
  readonly namespace: string;
  readonly sync: string;
  readonly tables: SnapshotTables;
  /** The account and database the snapshot is in (a narrowed staging must read the same). */
  readonly database: { account: string; database: string };
  readonly client: SnowflakeClient;
  private readonly req: WarehouseSnapshotRequest;
  private readonly settings: Settings;
  private session: Session | undefined;
  /** Runs whose rows this store uploaded, by the path a manifest names their snapshot by. */
  private readonly uploads = new Map<string, { runId: string; delta: boolean }>();

  private constructor(req: WarehouseSnapshotRequest, settings: Settings, client: SnowflakeClient) {
    this.req = req;
    this.settings = settings;
    this.client = client;
    this.namespace = req.namespace;
    this.sync = req.sync;
    this.tables = snapshotTables(req.schema, req.namespace, req.sync);
    this.database = { account: settings.account, database: settings.database.toUpperCase() };
    this.url = `snowflake://${settings.account}/${settings.database}/${this.tables.schema}.${this.tables.snapshotName}/`;
  }

  static async open(req: WarehouseSnapshotRequest, settings: Settings): Promise<SnowflakeWarehouseSnapshot> {
    const tag = JSON.stringify({ app: 'syncline', namespace: req.namespace, sync: req.sync, snapshot: true });
    const connection = await connect(settings, req.secrets, tag);
    const store = new SnowflakeWarehouseSnapshot(req, settings, new SnowflakeClient(connection, tag));
    try {
      await store.prepare();
      return store;
    } catch (error) {
      await store.close();
      throw store.failed(error, 'opening the warehouse snapshot');
    }
  }

  private async prepare(): Promise<void> {
    this.session = await sessionOf(this.client);
    if (!this.req.readOnly) return prepareTables(this.client, this.tables, this.session);
    if (!(await schemaExists(this.client, this.tables))) return;
    await this.stateRow();
  }

  failed(error: unknown, what: string): SynclineError {
    if (isSynclineError(error)) return error;
    if (String((error as { code?: unknown }).code) === '003001') {
      const role = this.session?.role ?? this.settings.role ?? 'PUBLIC';
      return grantMissing(
        role,
        `the privileges of ${what} in ${this.url}`,
        String((error as Error).message),
        error,
      );
    }
    return snowflakeError(error, this.settings, `${what} in ${this.url}`);
  }

  private async guarded<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.failed(error, what);
    }
  }

  /** The state row; undefined when there is none (or, in a dry run, no schema or table yet). */
  private async stateRow(): Promise<{ generation: string; manifest: string } | undefined> {
    return this.guarded('reading the snapshot state', async () => {
      try {
        const [row] = await this.client.rows(
          `SELECT CAST(GENERATION AS VARCHAR) AS G, MANIFEST AS M FROM ${this.tables.state} WHERE NAMESPACE = ? AND SYNC = ?`,
          [this.namespace, this.sync],
        );
        return row?.G && row.M ? { generation: row.G, manifest: row.M } : undefined;
      } catch (error) {
        if (this.req.readOnly && String((error as { code?: unknown }).code) === MISSING) return undefined;
        throw error;
      }
    });
  }

  private parse(text: string): Manifest {
    const corrupt = (why: string) =>
      new SynclineError(
        'DiffStoreCorrupt',
        `the manifest of ${this.namespace}/${this.sync} in ${this.tables.state} (${this.url}) is not one this runner can read ` +
          `(${why}): request a full resync`,
      );
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw corrupt(`not JSON: ${(error as Error).message}`);
    }
    const parsed = manifestSchema.safeParse(json);
    if (!parsed.success) throw corrupt(parsed.error.issues[0]?.message ?? 'invalid');
    return parsed.data;
  }

  async readManifest(): Promise<StoredManifest | undefined> {
    const row = await this.stateRow();
    return row ? { manifest: this.parse(row.manifest), etag: row.generation } : undefined;
  }

  async readManifestForRepair(): Promise<RepairRead> {
    const row = await this.stateRow();
    if (!row) return undefined;
    try {
      return { manifest: this.parse(row.manifest), etag: row.generation };
    } catch (error) {
      if (isSynclineError(error))
        return { manifest: undefined, etag: row.generation, problem: error.message };
      throw error;
    }
  }

  async downloadSnapshot(manifest: Manifest, localFile: string): Promise<void> {
    const keyType = manifest.columns.find((c) => c.name === manifest.primaryKey)?.type ?? 'VARCHAR';
    await this.download(localFile, manifest.primaryKey, keyType).catch((error: unknown) => {
      if (String((error as { cause?: { code?: unknown } }).cause?.code) !== MISSING) throw error;
      throw new SynclineError(
        'SnapshotMissing',
        `the snapshot table ${this.tables.schema}.${this.tables.snapshotName} of run ${manifest.runId} is missing: request a full resync`,
      );
    });
  }

  private async download(file: string, keyName: string | undefined, keyType: string): Promise<void> {
    await this.guarded('reading the snapshot', async () =>
      rowsIntoDuck({
        rows: await this.client.stream(
          `SELECT KEY_TEXT, STALE, KEY, CAST(HASH AS VARCHAR), RECORD_ID FROM ${this.tables.snapshot}`,
        ),
        duck: this.req.duck,
        dir: this.req.tmpDir,
        signal: this.req.signal,
        fields: snapshotFields(keyName, keyType),
        load: parquetOf(file),
      }),
    );
  }

  async downloadPending(manifest: Manifest, localFile: string): Promise<void> {
    const runId = manifest.pending?.runId ?? '';
    await this.guarded(`reading the pending keys of run ${runId}`, async () =>
      rowsIntoDuck({
        rows: await this.client.stream(
          `SELECT KEY_TEXT, KEY, OP, CAST(HASH AS VARCHAR), EPOCH FROM ${this.tables.pending} WHERE RUN_ID = ?`,
          [runId],
        ),
        duck: this.req.duck,
        dir: this.req.tmpDir,
        signal: this.req.signal,
        fields: pendingFields(manifest.primaryKey),
        load: parquetOf(localFile),
      }),
    );
  }

  /** The rows go into the upload table at once (tagged with the run): only a commit naming them applies them. */
  async uploadSnapshot(runId: string, localFile: string, options: { delta?: boolean } = {}): Promise<string> {
    const delta = options.delta === true;
    const relative = `${SNAPSHOTS}${runId}`;
    await this.guarded(`uploading the snapshot of run ${runId}`, async () => {
      await this.client.run(`DELETE FROM ${this.tables.upload} WHERE RUN_ID = ?`, [runId]);
      await uploadSnapshotRows({
        client: this.client,
        duck: this.req.duck,
        parquet: localFile,
        table: this.tables.upload,
        runId,
        delta,
      });
    });
    this.uploads.set(relative, { runId, delta });
    return relative;
  }

  async uploadPending(runId: string, localFile: string): Promise<string> {
    await this.guarded(`writing the pending keys of run ${runId}`, async () => {
      await this.client.run(`DELETE FROM ${this.tables.pending} WHERE RUN_ID = ?`, [runId]);
      await uploadPendingRows({
        client: this.client,
        duck: this.req.duck,
        parquet: localFile,
        table: this.tables.pending,
        runId,
      });
    });
    return `${PENDING}${runId}`;
  }

  async commit(manifest: Manifest, expectedEtag: string | undefined): Promise<void> {
    const upload = this.uploads.get(manifest.snapshot);
    // Without rows of its own, a commit may only rename the snapshot the state already names.
    const current = upload || expectedEtag === undefined ? undefined : await this.readManifestForRepair();
    if (!upload && current?.manifest?.snapshot !== manifest.snapshot) {
      throw new SynclineError(
        'SnapshotMissing',
        `cannot commit run ${manifest.runId}: its snapshot ${this.url}${manifest.snapshot} was not uploaded`,
      );
    }
    await this.guarded(`committing run ${manifest.runId}`, () =>
      commitState(
        this.client,
        this.tables,
        {
          namespace: this.namespace,
          sync: this.sync,
          manifest,
          expected: expectedEtag,
          upload,
          concurrent: () =>
            new SynclineError(
              'ConcurrentCommit',
              `another run of ${this.namespace}/${this.sync} committed first (the generation of ${this.tables.state} moved), ` +
                `so run ${manifest.runId} was not recorded; the next run diffs against the other run's snapshot and re-sends what differs`,
            ),
        },
        this.req.log,
      ),
    );
    this.uploads.delete(manifest.snapshot);
  }

  async recordRejections(rejections: SnapshotRejection[]): Promise<void> {
    await this.guarded('recording the rejected rows', async () => {
      await this.client.run('BEGIN');
      try {
        await this.client.run(`DELETE FROM ${this.tables.rejections}`);
        const rows = rejections.map((r) => [r.key, r.reason, r.message.slice(0, 1000), r.runId]);
        for (let i = 0; i < rows.length; i += 10_000) {
          await this.client.insertRows(
            `INSERT INTO ${this.tables.rejections} (KEY, REASON, MESSAGE, RUN_ID, REJECTED_AT) VALUES (?, ?, ?, ?, ?)`,
            rows
              .slice(i, i + 10_000)
              .map((row) => [...row, new Date().toISOString().replace('T', ' ').replace('Z', '')]),
          );
        }
        await this.client.run('COMMIT');
      } catch (error) {
        await this.client.rollback(this.req.log);
        throw error;
      }
    });
  }

  async dropAll(): Promise<number> {
    const t = this.tables;
    let dropped = 0;
    await this.guarded('dropping the snapshot tables', async () => {
      await this.client.run(`DELETE FROM ${t.state} WHERE NAMESPACE = ? AND SYNC = ?`, [
        this.namespace,
        this.sync,
      ]);
      for (const table of [t.snapshot, t.pending, t.upload, t.rejections]) {
        const [found] = await this.client.rows(
          'SELECT COUNT(*) AS N FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
          [t.schema, table.split('.')[1]!.slice(1, -1).replaceAll('""', '"')],
        );
        if (Number(found?.N ?? 0) === 0) continue;
        await this.client.run(`DROP TABLE IF EXISTS ${table}`);
        dropped++;
      }
    });
    return dropped;
  }

  /** Nothing to delete: a checkpoint's rows were applied to the table, and no file was kept. */
  async deleteRelative(): Promise<void> {}

  async listSnapshots(): Promise<{ path: string; url: string; updatedAt: string }[]> {
    return [{ path: CURRENT, url: `${this.url}${CURRENT}`, updatedAt: new Date().toISOString() }];
  }

  /** The table's rows without their typed key (whose type a broken state no longer says). */
  async downloadRelative(relative: string, localFile: string): Promise<boolean> {
    if (relative !== CURRENT) return false;
    await this.download(localFile, undefined, 'VARCHAR');
    return true;
  }

  async close(): Promise<void> {
    await destroy(this.client.connection, this.req);
  }
}
