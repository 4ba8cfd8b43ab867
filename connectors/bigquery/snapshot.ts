// A Sync's snapshot kept in BigQuery (Sync.spec.snapshot.location: warehouse): the SnapshotStore of
// core/diffstore/snapshot-store.ts over the tables of snapshot-tables.ts in a dataset Syncline owns, so that
// the narrowed staging (narrow.ts) can diff the model against it in BigQuery SQL. Rows go in with
// tabledata.insertAll into tables made for them (never into a table DML later changes: BigQuery refuses
// DML on rows still in the streaming buffer), and commits are copy-on-write (snapshot-commit.ts).
import type { BigQuery } from '@google-cloud/bigquery';
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
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { commitState, type StateRow, type Upload } from './snapshot-commit.ts';
import { pendingJson, pendingRowsToParquet, snapshotJson, snapshotRowsToParquet } from './snapshot-files.ts';
import { isNotFound, Jobs, snapshotError, type DatasetRef } from './snapshot-io.ts';
import {
  bqKeyType,
  deltaFields,
  freshTable,
  PENDING_FIELDS,
  REJECTION_FIELDS,
  snapshotFields,
  snapshotNames,
  STATE_FIELDS,
  STATE_TABLE,
  tableSql,
  type BqSnapshotNames,
} from './snapshot-tables.ts';

const SNAPSHOTS = 'snapshots/';
const PENDING = 'pending/';
/** listSnapshots' name of the current table (a full resync over a broken state recovers its keys). */
const CURRENT = `${SNAPSHOTS}current`;
const READ_STATE = { permission: 'bigquery.tables.getData', what: 'reading the snapshot state' };
const READ_ROWS = { permission: 'bigquery.tables.getData', what: 'reading the snapshot' };

export class BqWarehouseSnapshot implements WarehouseSnapshot {
  readonly takesDeltas = true;
  readonly url: string;
  readonly namespace: string;
  readonly sync: string;
  readonly names: BqSnapshotNames;
  readonly ref: DatasetRef;
  readonly jobs: Jobs;
  private readonly req: WarehouseSnapshotRequest;
  private readonly uploads = new Map<string, Upload>();
  /** Pending tables this run wrote, by the path a manifest names them by. */
  private readonly pendingUploads = new Set<string>();
  private files = 0;

  private constructor(req: WarehouseSnapshotRequest, bq: BigQuery, ref: DatasetRef) {
    this.req = req;
    this.namespace = req.namespace;
    this.sync = req.sync;
    this.ref = ref;
    this.jobs = new Jobs(bq, ref);
    this.names = snapshotNames(ref.dataset, req.namespace, req.sync);
    this.url = `bigquery://${ref.project}/${ref.dataset}/${this.names.prefix.slice(0, -1)}/`;
  }

  /** Create what is missing: the dataset, the state table, the Sync's state row (generation 0). */
  static async open(
    req: WarehouseSnapshotRequest,
    bq: BigQuery,
    ref: DatasetRef,
  ): Promise<BqWarehouseSnapshot> {
    const store = new BqWarehouseSnapshot(req, bq, ref);
    if (!req.readOnly) await store.prepare();
    return store;
  }

  private async prepare(): Promise<void> {
    const dataset = this.jobs.bq.dataset(this.ref.dataset);
    let exists: boolean;
    try {
      [exists] = await dataset.exists();
    } catch (error) {
      throw snapshotError(error, this.ref, {
        permission: 'bigquery.datasets.get',
        what: 'reading the dataset',
      });
    }
    if (!exists) {
      try {
        await this.jobs.bq.createDataset(
          this.ref.dataset,
          this.ref.location ? { location: this.ref.location } : {},
        );
      } catch (error) {
        if (!/already (exists|created)/i.test(String((error as Error).message)))
          throw snapshotError(error, this.ref, {
            permission: 'bigquery.datasets.create',
            what: `creating dataset ${this.ref.dataset}`,
            on: 'project',
          });
      }
    }
    const [stateExists] = await dataset
      .table(STATE_TABLE)
      .exists()
      .catch((error: unknown) => {
        throw snapshotError(error, this.ref, READ_STATE);
      });
    if (!stateExists) {
      await this.jobs.createTable(STATE_TABLE, STATE_FIELDS).catch((error: unknown) => {
        if (!/already (exists|created)|duplicate/i.test(String((error as Error).message))) throw error;
      });
    }
    await this.jobs.exec(
      `INSERT INTO ${this.state()} (namespace, sync, generation, manifest, snapshot_table, key_type, row_count,
         committed_by, committed_at)
       SELECT n, s, 0, CAST(NULL AS STRING), CAST(NULL AS STRING), CAST(NULL AS STRING), CAST(NULL AS INT64),
              CAST(NULL AS STRING), CAST(NULL AS TIMESTAMP)
         FROM (SELECT CAST(@namespace AS STRING) AS n, CAST(@sync AS STRING) AS s)
        WHERE NOT EXISTS (SELECT 1 FROM ${this.state()} WHERE namespace = @namespace AND sync = @sync)`,
      { permission: 'bigquery.tables.updateData', what: 'creating the state row of the Sync' },
      this.keyParams(),
    );
  }

  private state(): string {
    return tableSql(this.ref.dataset, STATE_TABLE);
  }

  private keyParams(): Record<string, string> {
    return { namespace: this.namespace, sync: this.sync };
  }

  /** The state row; undefined when there is none (or, in a dry run, no dataset or table yet). */
  async stateRow(): Promise<StateRow | undefined> {
    let rows;
    try {
      rows = await this.jobs.few(
        {
          query: `SELECT CAST(generation AS STRING), manifest, snapshot_table, key_type FROM ${this.state()}
                   WHERE namespace = @namespace AND sync = @sync ORDER BY generation DESC LIMIT 1`,
          params: this.keyParams(),
        },
        READ_STATE,
      );
    } catch (error) {
      if (isNotFound(error) || isNotFound((error as { cause?: unknown }).cause)) return undefined;
      throw error;
    }
    const row = rows[0];
    if (!row) return undefined;
    const text = (i: number) => (row[i]?.v === null || row[i]?.v === undefined ? null : String(row[i]?.v));
    return { generation: Number(text(0)), manifest: text(1), snapshotTable: text(2), keyType: text(3) };
  }

  private parse(text: string): Manifest {
    let parsed;
    try {
      parsed = manifestSchema.safeParse(JSON.parse(text));
    } catch (error) {
      parsed = { success: false as const, error: { issues: [{ message: (error as Error).message }] } };
    }
    if (!parsed.success) {
      throw new SynclineError(
        'DiffStoreCorrupt',
        `the manifest of ${this.namespace}/${this.sync} in ${this.ref.dataset}.${STATE_TABLE} (${this.url}) is not one this runner can read ` +
          `(${parsed.error.issues[0]?.message ?? 'invalid'}): request a full resync`,
      );
    }
    return parsed.data;
  }

  async readManifest(): Promise<StoredManifest | undefined> {
    const row = await this.stateRow();
    if (!row?.manifest) return undefined;
    return { manifest: this.parse(row.manifest), etag: String(row.generation) };
  }

  async readManifestForRepair(): Promise<RepairRead> {
    const row = await this.stateRow();
    if (!row?.manifest) return undefined;
    try {
      return { manifest: this.parse(row.manifest), etag: String(row.generation) };
    } catch (error) {
      if (isSynclineError(error))
        return { manifest: undefined, etag: String(row.generation), problem: error.message };
      throw error;
    }
  }

  private scratch(name: string): string {
    this.files++;
    return join(this.req.tmpDir, `bq-snapshot-${name}-${process.pid}-${this.files}`);
  }

  async downloadSnapshot(manifest: Manifest, localFile: string): Promise<void> {
    const row = await this.stateRow();
    const keyType = manifest.columns.find((c) => c.name === manifest.primaryKey)?.type ?? 'VARCHAR';
    if (
      !row?.snapshotTable ||
      !(await this.download(row.snapshotTable, localFile, manifest.primaryKey, keyType))
    ) {
      throw new SynclineError(
        'SnapshotMissing',
        `the snapshot table of run ${manifest.runId} in ${this.url} is missing: request a full resync`,
      );
    }
  }

  /** The rows of a snapshot table into a local Parquet file; false when the table is gone. */
  private async download(
    table: string,
    file: string,
    keyName: string | undefined,
    keyType: string,
  ): Promise<boolean> {
    try {
      const { rows } = await this.jobs.rows(
        {
          query: `SELECT key_text, stale, CAST(key AS STRING), CAST(row_hash AS STRING), record_id FROM ${tableSql(this.ref.dataset, table)}`,
        },
        READ_ROWS,
      );
      await snapshotRowsToParquet({
        duck: this.req.duck,
        dir: this.req.tmpDir,
        rows,
        file,
        keyName,
        keyType,
      });
      return true;
    } catch (error) {
      if (isNotFound(error) || isNotFound((error as { cause?: unknown }).cause)) return false;
      throw error;
    }
  }

  async downloadPending(manifest: Manifest, localFile: string): Promise<void> {
    const table = this.pendingTableOf(manifest);
    try {
      const { rows } = await this.jobs.rows(
        {
          query: `SELECT key_text, key, op, CAST(row_hash AS STRING), epoch FROM ${tableSql(this.ref.dataset, table ?? '')}`,
        },
        { permission: 'bigquery.tables.getData', what: 'reading the pending keys' },
      );
      await pendingRowsToParquet({
        duck: this.req.duck,
        dir: this.req.tmpDir,
        rows,
        file: localFile,
        keyName: manifest.primaryKey,
      });
    } catch (error) {
      if (!table || isNotFound(error) || isNotFound((error as { cause?: unknown }).cause)) {
        throw new SynclineError(
          'DiffStoreCorrupt',
          `the pending keys ${this.url}${manifest.pending?.file ?? ''} of run ${manifest.pending?.runId} are missing, so the keys that run may have sent are unknown: request a full resync`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  /** The pending table a manifest names (pending/<table>), if it names one of this Sync. */
  private pendingTableOf(manifest: Manifest | undefined): string | undefined {
    const file = manifest?.pending?.file;
    if (!file?.startsWith(PENDING)) return undefined;
    const table = file.slice(PENDING.length);
    return table.startsWith(this.names.prefix) ? table : undefined;
  }

  /** Stream a local file's rows into a new table of `fields`. */
  private async insertInto(
    kind: 'snapshot' | 'pending' | 'delta' | 'upload',
    fields: Parameters<Jobs['createTable']>[1],
    json: string,
  ): Promise<string> {
    const table = freshTable(this.names, kind);
    await this.jobs.createTable(table, fields);
    try {
      await this.jobs.insertFile(table, json);
    } catch (error) {
      await this.jobs.dropTable(table).catch(() => false);
      throw error;
    }
    return table;
  }

  async uploadSnapshot(runId: string, localFile: string, options: { delta?: boolean } = {}): Promise<string> {
    const delta = options.delta === true;
    const json = this.scratch(`${runId}.json`);
    const { keyType } = await snapshotJson(this.req.duck, localFile, json, delta);
    const key = bqKeyType(keyType);
    const table = await this.insertInto(
      delta ? 'delta' : 'snapshot',
      delta ? deltaFields(key) : snapshotFields(key),
      json,
    );
    const relative = `${SNAPSHOTS}${runId}/${table}`;
    this.uploads.set(relative, { table, delta, keyType });
    return relative;
  }

  /** A run's pending keys go into a table of their own at once (they name nothing until a commit does). */
  async uploadPending(runId: string, localFile: string): Promise<string> {
    const json = this.scratch(`${runId}.pending.json`);
    await pendingJson(this.req.duck, localFile, json);
    const table = await this.insertInto('pending', PENDING_FIELDS, json);
    const relative = `${PENDING}${table}`;
    this.pendingUploads.add(relative);
    return relative;
  }

  async commit(manifest: Manifest, expectedEtag: string | undefined): Promise<void> {
    const upload = this.uploads.get(manifest.snapshot);
    const state = await this.stateRow();
    const current = state?.manifest ? this.parse(state.manifest) : undefined;
    if (!upload && current?.snapshot !== manifest.snapshot) {
      throw new SynclineError(
        'SnapshotMissing',
        `cannot commit run ${manifest.runId}: its snapshot ${this.url}${manifest.snapshot} was not uploaded`,
      );
    }
    const stale = await this.commitOrDiscard(upload, {
      namespace: this.namespace,
      sync: this.sync,
      runId: manifest.runId,
      manifest,
      expected: expectedEtag,
      upload,
      state,
      pendingTable: this.pendingTableOf(manifest),
      previousPendingTable: this.pendingTableOf(current),
      concurrent: () =>
        new SynclineError(
          'ConcurrentCommit',
          `another run of ${this.namespace}/${this.sync} committed first (the generation of ${this.ref.dataset}.${STATE_TABLE} moved), ` +
            `so run ${manifest.runId} was not recorded; the next run diffs against the other run's snapshot and re-sends what differs`,
        ),
    });
    this.uploads.delete(manifest.snapshot);
    await this.dropTables(stale, manifest.pending?.file);
  }

  /** Commit; when another run committed first, this run's upload can never be committed: drop it. */
  private async commitOrDiscard(upload: Upload | undefined, input: Parameters<typeof commitState>[2]) {
    try {
      return await commitState(this.jobs, this.names, input);
    } catch (error) {
      if (upload && isSynclineError(error) && error.reason === 'ConcurrentCommit') {
        await this.jobs.dropTable(upload.table).catch(() => false);
        this.uploads.delete(input.manifest.snapshot);
      }
      throw error;
    }
  }

  /** Drop the tables no manifest names any more, and this run's pending tables but the one named. */
  private async dropTables(stale: string[], named: string | undefined): Promise<void> {
    for (const path of this.pendingUploads) {
      if (path !== named) stale.push(path.slice(PENDING.length));
    }
    this.pendingUploads.clear();
    if (named) this.pendingUploads.add(named);
    for (const table of new Set(stale)) {
      await this.jobs
        .dropTable(table)
        .catch((error: unknown) =>
          this.req.log.warn({ table, err: String(error) }, 'dropping a snapshot table no manifest names'),
        );
    }
  }

  /** Nothing to delete: a superseded checkpoint's table was dropped when the next commit replaced it. */
  async deleteRelative(): Promise<void> {}

  async listSnapshots(): Promise<{ path: string; url: string; updatedAt: string }[]> {
    const row = await this.stateRow();
    if (!row?.snapshotTable) return [];
    return [{ path: CURRENT, url: `${this.url}${CURRENT}`, updatedAt: new Date().toISOString() }];
  }

  /** The current table's rows without their typed key (whose type a broken state no longer says). */
  async downloadRelative(relative: string, localFile: string): Promise<boolean> {
    const row = await this.stateRow();
    if (relative !== CURRENT || !row?.snapshotTable) return false;
    return this.download(row.snapshotTable, localFile, undefined, 'VARCHAR');
  }

  async recordRejections(rejections: SnapshotRejection[]): Promise<void> {
    if (rejections.length === 0) {
      await this.jobs.dropTable(this.names.rejections);
      await this.jobs.createTable(this.names.rejections, REJECTION_FIELDS);
      return;
    }
    const json = this.scratch('rejections.json');
    writeFileSync(
      json,
      rejections
        .map((r) =>
          JSON.stringify({
            key: r.key,
            reason: r.reason,
            message: r.message.slice(0, 1000),
            run_id: r.runId,
            rejected_at: new Date().toISOString(),
          }),
        )
        .join('\n'),
    );
    const upload = await this.insertInto('upload', REJECTION_FIELDS, json);
    try {
      await this.jobs.dropTable(this.names.rejections);
      await this.jobs.exec(
        `CREATE TABLE ${tableSql(this.ref.dataset, this.names.rejections)} AS SELECT key, reason, message, run_id, rejected_at FROM ${tableSql(this.ref.dataset, upload)}`,
        { permission: 'bigquery.tables.create', what: 'writing the rejections table' },
      );
    } finally {
      await this.jobs.dropTable(upload).catch(() => false);
    }
  }

  async dropAll(): Promise<number> {
    const tables = await this.jobs.tablesStartingWith(this.names.prefix).catch((error: unknown) => {
      if (isNotFound(error) || isNotFound((error as { cause?: unknown }).cause)) return [];
      throw error;
    });
    let dropped = 0;
    for (const table of tables) if (await this.jobs.dropTable(table)) dropped++;
    if ((await this.stateRow()) !== undefined) {
      await this.jobs.exec(
        `DELETE FROM ${this.state()} WHERE namespace = @namespace AND sync = @sync`,
        { permission: 'bigquery.tables.updateData', what: 'deleting the state row of the Sync' },
        this.keyParams(),
      );
    }
    return dropped;
  }

  async close(): Promise<void> {}
}
