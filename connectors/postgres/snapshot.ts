// A Sync's snapshot kept in the Source's own PostgreSQL database (Sync.spec.snapshot.location: warehouse):
// the SnapshotStore of core/diffstore/snapshot-store.ts over the tables of snapshot-tables.ts, so that the
// narrowed staging (narrow.ts) can diff the model against it in SQL. Its own read-write connection, opened
// for the run; the model is still read on the source's read-only ones.
import type pg from 'pg';
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
import { connectPg, describePgError, type PgConnectionSettings } from '../shared/pg.ts';
import { quoteIdent, quoteLiteral } from '../shared/sql.ts';
import { commitState } from './snapshot-commit.ts';
import {
  pendingCsv,
  pendingToParquet,
  scratch,
  snapshotCsv,
  snapshotRowsToParquet,
  copyCsvIn,
  type CsvSnapshot,
} from './snapshot-files.ts';
import {
  checkGrants,
  PENDING_DDL,
  REJECTIONS_DDL,
  snapshotTables,
  STATE_DDL,
  type SnapshotTables,
} from './snapshot-tables.ts';

const MIN_SERVER_VERSION = 140000;
const SNAPSHOTS = 'snapshots/';
const PENDING = 'pending/';
/** listSnapshots' name of the table itself (a full resync over a broken state recovers its keys). */
const CURRENT = `${SNAPSHOTS}current`;
/** Rejected rows written per INSERT. */
const REJECTIONS_BATCH = 5_000;

export class PgWarehouseSnapshot implements WarehouseSnapshot {
  readonly takesDeltas = true;
  readonly url: string;
  readonly namespace: string;
  readonly sync: string;
  readonly tables: SnapshotTables;
  /** The server and database the snapshot is in (a narrowed staging must read the same). */
  readonly database: { host: string; port: number; database: string };
  private readonly client: pg.Client;
  private readonly req: WarehouseSnapshotRequest;
  /** Snapshots uploaded by this run, by the path a manifest names them by: applied when committed. */
  private readonly uploads = new Map<string, { csv: CsvSnapshot; delta: boolean }>();

  private constructor(req: WarehouseSnapshotRequest, settings: PgConnectionSettings, client: pg.Client) {
    this.req = req;
    this.client = client;
    this.namespace = req.namespace;
    this.sync = req.sync;
    this.tables = snapshotTables(req.schema, req.namespace, req.sync);
    const port = settings.port ?? 5432;
    this.database = { host: settings.host, port, database: settings.database };
    this.url = `postgres://${settings.host}:${port}/${settings.database}/${req.schema}.${this.tables.snapshotName}/`;
  }

  /** Connect, check the server and the grants, and create the schema and tables that are missing. */
  static async open(
    req: WarehouseSnapshotRequest,
    settings: PgConnectionSettings,
  ): Promise<PgWarehouseSnapshot> {
    const client = await connectPg(settings, req.secrets, req.log, 'Source', {
      application_name: `syncline snapshot ${req.namespace}/${req.sync}`.slice(0, 63),
    });
    const store = new PgWarehouseSnapshot(req, settings, client);
    try {
      await store.prepare();
      return store;
    } catch (error) {
      await store.close();
      throw error;
    }
  }

  private async prepare(): Promise<void> {
    const version = await this.client.query<{ v: string }>(
      "SELECT current_setting('server_version_num') AS v",
    );
    if (Number(version.rows[0]?.v ?? 0) < MIN_SERVER_VERSION) {
      throw new SynclineError(
        'WarehouseSnapshotUnsupported',
        `the warehouse snapshot of Sync ${this.namespace}/${this.sync} needs PostgreSQL 14 or later (hash_record_extended, bit_xor); ` +
          `${this.database.host} runs ${version.rows[0]?.v ?? 'an unknown version'}: set spec.snapshot.location: diffStore`,
      );
    }
    const t = this.tables;
    const { schemaExists } = await checkGrants(this.client, t, { readOnly: this.req.readOnly });
    if (this.req.readOnly) return;
    await this.ddl(async () => {
      if (!schemaExists) await this.client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(t.schema)}`);
      await this.client.query(STATE_DDL(t));
      await this.client.query(PENDING_DDL(t));
      await this.client.query(REJECTIONS_DDL(t));
    });
  }

  /** DDL that another run (of another Sync) may race: CREATE ... IF NOT EXISTS can still collide once. */
  private async ddl(run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== '23505' && code !== '42P06' && code !== '42P07')
        throw this.failed(error, 'creating the snapshot tables');
      await run();
    }
  }

  private failed(error: unknown, what: string): SynclineError {
    if (isSynclineError(error)) return error;
    const code = (error as { code?: string }).code;
    if (code === '42501') {
      return new SynclineError(
        'WarehouseSnapshotGrantMissing',
        `${what} in ${this.url} failed: ${describePgError(error)}; grant the user what the message names (or set spec.snapshot.location: diffStore)`,
        { cause: error },
      );
    }
    return new SynclineError(
      'SourceQueryFailed',
      `${what} in ${this.url} failed: ${describePgError(error)}`,
      {
        cause: error,
      },
    );
  }

  private async query<R extends pg.QueryResultRow>(what: string, text: string, values: unknown[] = []) {
    try {
      return await this.client.query<R>(text, values);
    } catch (error) {
      throw this.failed(error, what);
    }
  }

  /** The state row; undefined when there is none (or, in a dry run, no schema or table yet). */
  private async stateRow(): Promise<{ generation: string; manifest: unknown } | undefined> {
    const exists = await this.query<{ t: string | null }>(
      'reading the snapshot state',
      'SELECT to_regclass($1) AS t',
      [this.tables.state],
    );
    if (exists.rows[0]?.t == null) return undefined;
    const found = await this.query<{ generation: string; manifest: unknown }>(
      'reading the snapshot state',
      `SELECT generation::text AS generation, manifest FROM ${this.tables.state} WHERE namespace = $1 AND sync = $2`,
      [this.namespace, this.sync],
    );
    return found.rows[0];
  }

  private parse(manifest: unknown): Manifest {
    const parsed = manifestSchema.safeParse(manifest);
    if (!parsed.success) {
      throw new SynclineError(
        'DiffStoreCorrupt',
        `the manifest of ${this.namespace}/${this.sync} in ${this.tables.state} (${this.url}) is not one this runner can read ` +
          `(${parsed.error.issues[0]?.message ?? 'invalid'}): request a full resync`,
      );
    }
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

  /** Whether the snapshot table exists. */
  private async hasTable(): Promise<boolean> {
    const found = await this.query<{ t: string | null }>(
      'reading the snapshot',
      'SELECT to_regclass($1) AS t',
      [this.tables.snapshot],
    );
    return found.rows[0]?.t != null;
  }

  async downloadSnapshot(manifest: Manifest, localFile: string): Promise<void> {
    if (!(await this.hasTable())) {
      throw new SynclineError(
        'SnapshotMissing',
        `the snapshot table ${this.tables.schema}.${this.tables.snapshotName} of run ${manifest.runId} is missing: request a full resync`,
      );
    }
    const keyType = manifest.columns.find((c) => c.name === manifest.primaryKey)?.type ?? 'VARCHAR';
    await this.download(localFile, manifest.primaryKey, keyType);
  }

  private async download(file: string, keyName: string | undefined, keyType: string): Promise<number> {
    try {
      return await snapshotRowsToParquet({
        client: this.client,
        selectSql: `SELECT key_text, stale, key::text, hash, record_id FROM ${this.tables.snapshot}`,
        duck: this.req.duck,
        file,
        keyName,
        keyType,
        dir: this.req.tmpDir,
        signal: this.req.signal,
        log: this.req.log,
      });
    } catch (error) {
      throw this.failed(error, 'reading the snapshot');
    }
  }

  async downloadPending(manifest: Manifest, localFile: string): Promise<void> {
    const runId = manifest.pending?.runId ?? '';
    try {
      await pendingToParquet({
        client: this.client,
        selectSql: `SELECT key_text, key, op, hash, epoch FROM ${this.tables.pending} WHERE run_id = ${quoteLiteral(runId)}`,
        duck: this.req.duck,
        file: localFile,
        keyName: manifest.primaryKey,
        dir: this.req.tmpDir,
        signal: this.req.signal,
        log: this.req.log,
      });
    } catch (error) {
      throw this.failed(error, `reading the pending keys of run ${runId}`);
    }
  }

  async uploadSnapshot(runId: string, localFile: string, options: { delta?: boolean } = {}): Promise<string> {
    const delta = options.delta === true;
    const csv = await snapshotCsv(this.req.duck, localFile, scratch(this.req.tmpDir, `${runId}.csv`), delta);
    const relative = `${SNAPSHOTS}${runId}`;
    this.uploads.set(relative, { csv, delta });
    return relative;
  }

  /** A run's pending keys go into the pending table at once (they name nothing until a commit does). */
  async uploadPending(runId: string, localFile: string): Promise<string> {
    const csv = scratch(this.req.tmpDir, `${runId}.pending.csv`);
    await pendingCsv(this.req.duck, localFile, csv, runId);
    try {
      await this.client.query('BEGIN');
      await this.client.query(`DELETE FROM ${this.tables.pending} WHERE run_id = $1`, [runId]);
      await copyCsvIn(
        this.client,
        `COPY ${this.tables.pending} (run_id, key_text, key, op, hash, epoch) FROM STDIN WITH (FORMAT csv)`,
        csv,
      );
      await this.client.query('COMMIT');
    } catch (error) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw this.failed(error, `writing the pending keys of run ${runId}`);
    }
    return `${PENDING}${runId}`;
  }

  async commit(manifest: Manifest, expectedEtag: string | undefined): Promise<void> {
    const upload = this.uploads.get(manifest.snapshot);
    const current = expectedEtag === undefined ? undefined : await this.readManifest().catch(() => undefined);
    if (!upload && current?.manifest.snapshot !== manifest.snapshot) {
      throw new SynclineError(
        'SnapshotMissing',
        `cannot commit run ${manifest.runId}: its snapshot ${this.url}${manifest.snapshot} was not uploaded`,
      );
    }
    try {
      await commitState(this.client, this.tables, {
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
      });
    } catch (error) {
      throw this.failed(error, `committing run ${manifest.runId}`);
    }
    this.uploads.delete(manifest.snapshot);
  }

  /** Nothing to delete: a checkpoint's rows were applied to the table, and no file was kept. */
  async deleteRelative(): Promise<void> {}

  async listSnapshots(): Promise<{ path: string; url: string; updatedAt: string }[]> {
    if (!(await this.hasTable())) return [];
    return [{ path: CURRENT, url: `${this.url}${CURRENT}`, updatedAt: new Date().toISOString() }];
  }

  /** The table's rows without their typed key (whose type a broken state no longer says). */
  async downloadRelative(relative: string, localFile: string): Promise<boolean> {
    if (relative !== CURRENT || !(await this.hasTable())) return false;
    await this.download(localFile, undefined, 'VARCHAR');
    return true;
  }

  async recordRejections(rejections: SnapshotRejection[]): Promise<void> {
    const t = this.tables;
    try {
      await this.client.query('BEGIN');
      await this.client.query(`DELETE FROM ${t.rejections}`);
      for (let at = 0; at < rejections.length; at += REJECTIONS_BATCH) {
        const batch = rejections.slice(at, at + REJECTIONS_BATCH);
        await this.client.query(
          `INSERT INTO ${t.rejections} (key, reason, message, run_id)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) ON CONFLICT (key) DO NOTHING`,
          [
            batch.map((r) => r.key),
            batch.map((r) => r.reason),
            batch.map((r) => r.message),
            batch.map((r) => r.runId),
          ],
        );
      }
      await this.client.query('COMMIT');
    } catch (error) {
      await this.rollback();
      throw this.failed(error, `recording the rejected rows in ${t.schema}.${t.rejectionsName}`);
    }
  }

  async dropAll(): Promise<number> {
    const t = this.tables;
    let dropped = 0;
    try {
      await this.client.query('BEGIN');
      for (const [table, name] of [
        [t.snapshot, t.snapshotName],
        [t.pending, t.pendingName],
        [t.rejections, t.rejectionsName],
      ] as const) {
        const found = await this.client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [table]);
        if (found.rows[0]?.t == null) continue;
        await this.client.query(`DROP TABLE ${table}`);
        this.req.log.info({ table: `${t.schema}.${name}` }, 'dropped a warehouse snapshot table');
        dropped++;
      }
      const state = await this.client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [t.state]);
      if (state.rows[0]?.t != null)
        await this.client.query(`DELETE FROM ${t.state} WHERE namespace = $1 AND sync = $2`, [
          this.namespace,
          this.sync,
        ]);
      await this.client.query('COMMIT');
    } catch (error) {
      await this.rollback();
      throw this.failed(error, `dropping the snapshot tables of ${this.namespace}/${this.sync}`);
    }
    return dropped;
  }

  private async rollback(): Promise<void> {
    await this.client
      .query('ROLLBACK')
      .catch((error: unknown) => this.req.log.debug({ err: String(error) }, 'rolling back'));
  }

  async close(): Promise<void> {
    await this.client
      .end()
      .catch((error: unknown) =>
        this.req.log.debug({ err: String(error) }, 'closing the snapshot connection'),
      );
  }
}
