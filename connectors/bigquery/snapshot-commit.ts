// The commit of a BigQuery warehouse snapshot, copy-on-write: the rows the manifest names are written to a
// new table (a whole snapshot was streamed into one at upload; a delta is merged with the current table,
// DELETE+INSERT in one CREATE TABLE ... AS SELECT; a run's pending keys folded in as stale), and one DML
// statement on the state row swaps it in, guarded by the generation:
//   UPDATE syncline_state SET generation = g + 1, ... WHERE namespace = .. AND sync = .. AND generation = g
// BigQuery serialises mutating DML on a table, so of two runs that read g only one changes the row; which
// one is read from numDmlAffectedRows, or, where a server does not report it (the emulator), from the
// token the statement wrote. Until the swap no reader sees the new table, so a run killed anywhere
// leaves the previous generation whole, and no multi-statement transaction is needed.
import type { Manifest } from '../../core/diffstore/index.ts';
import { SynclineError } from '../../core/errors.ts';
import { randomBytes } from 'node:crypto';
import type { Jobs } from './snapshot-io.ts';
import { freshTable, STATE_TABLE, tableSql, type BqSnapshotNames } from './snapshot-tables.ts';

/** The state row as a run reads it. */
export interface StateRow {
  generation: number;
  manifest: string | null;
  snapshotTable: string | null;
  /** The DuckDB type of the snapshot's typed key. */
  keyType: string | null;
}

export interface Upload {
  table: string;
  delta: boolean;
  /** The DuckDB type of the typed key (undefined: keys recovered without one). */
  keyType: string | undefined;
}

export interface CommitInput {
  namespace: string;
  sync: string;
  runId: string;
  manifest: Manifest;
  expected: string | undefined;
  upload: Upload | undefined;
  /** The state as read just before. */
  state: StateRow | undefined;
  /** The table of the pending keys the manifest names (parsed from manifest.pending.file). */
  pendingTable: string | undefined;
  /** The pending table the current manifest names, dropped once no manifest does. */
  previousPendingTable: string | undefined;
  concurrent: () => SynclineError;
}

const UPDATE = { permission: 'bigquery.tables.updateData', what: 'committing the snapshot state' };
const CREATE = { permission: 'bigquery.tables.create', what: 'writing the new snapshot table' };
const READ = { permission: 'bigquery.tables.getData', what: 'counting the new snapshot' };

function keyCast(keyType: string | null | undefined): 'INT64' | 'STRING' {
  return keyType === 'BIGINT' || keyType === 'INTEGER' || keyType === 'SMALLINT' ? 'INT64' : 'STRING';
}

/** The current table minus the keys of the delta, plus the delta's rows that are not tombstones. */
async function applyDelta(
  jobs: Jobs,
  names: BqSnapshotNames,
  current: string,
  delta: string,
): Promise<string> {
  const next = freshTable(names, 'snapshot');
  const d = tableSql(names.dataset, delta);
  await jobs.exec(
    `CREATE TABLE ${tableSql(names.dataset, next)} AS
     SELECT key_text, stale, key, row_hash, record_id FROM ${tableSql(names.dataset, current)}
      WHERE key_text NOT IN (SELECT key_text FROM ${d})
     UNION ALL
     SELECT key_text, stale, key, row_hash, record_id FROM ${d} WHERE NOT deleted`,
    CREATE,
  );
  return next;
}

/**
 * Every key of a run's pending keys stale from now on: a pending add the table lacks is there, stale,
 * with no hash, so every later read sees it as to be sent again.
 */
async function foldPending(
  jobs: Jobs,
  names: BqSnapshotNames,
  current: string,
  pending: string,
  keyType: 'INT64' | 'STRING',
): Promise<string> {
  const next = freshTable(names, 'snapshot');
  const s = tableSql(names.dataset, current);
  const p = tableSql(names.dataset, pending);
  await jobs.exec(
    `CREATE TABLE ${tableSql(names.dataset, next)} AS
     SELECT s.key_text, s.stale OR pp.key_text IS NOT NULL AS stale, s.key, s.row_hash, s.record_id
       FROM ${s} s LEFT JOIN (SELECT DISTINCT key_text FROM ${p}) pp ON pp.key_text = s.key_text
     UNION ALL
     SELECT pp.key_text, TRUE AS stale, CAST(pp.key AS ${keyType}) AS key, CAST(NULL AS INT64) AS row_hash,
            CAST(NULL AS STRING) AS record_id
       FROM (SELECT key_text, ANY_VALUE(key) AS key FROM ${p} GROUP BY key_text) pp
      WHERE pp.key_text NOT IN (SELECT key_text FROM ${s})`,
    CREATE,
  );
  return next;
}

/** The compare-and-swap of the state row; true when this statement made the change. */
async function swap(
  jobs: Jobs,
  names: BqSnapshotNames,
  input: CommitInput,
  fields: { manifest: string; table: string; keyType: string; rows: number },
): Promise<boolean> {
  const generation = input.state?.generation ?? 0;
  const token = `${input.runId}:${randomBytes(8).toString('hex')}`;
  const state = tableSql(names.dataset, STATE_TABLE);
  const affected = await jobs.exec(
    `UPDATE ${state} SET generation = generation + 1, manifest = CAST(@manifest AS STRING),
       snapshot_table = CAST(@table AS STRING), key_type = CAST(@key_type AS STRING), row_count = CAST(@rows AS INT64),
       committed_by = CAST(@token AS STRING), committed_at = CURRENT_TIMESTAMP()
     WHERE namespace = @namespace AND sync = @sync AND generation = CAST(@generation AS INT64)`,
    UPDATE,
    {
      manifest: fields.manifest,
      table: fields.table,
      key_type: fields.keyType,
      rows: String(fields.rows),
      token,
      namespace: input.namespace,
      sync: input.sync,
      generation: String(generation),
    },
  );
  if (affected !== undefined) return affected > 0;
  const found = await jobs.few(
    {
      query: `SELECT committed_by, CAST(generation AS STRING) FROM ${state} WHERE namespace = @namespace AND sync = @sync`,
      params: { namespace: input.namespace, sync: input.sync },
    },
    { permission: 'bigquery.tables.getData', what: 'reading the snapshot state' },
  );
  return found.some((row) => row[0]?.v === token && row[1]?.v === String(generation + 1));
}

/** The whole commit; returns the tables no manifest names any more (the caller drops them). */
export async function commitState(jobs: Jobs, names: BqSnapshotNames, input: CommitInput): Promise<string[]> {
  const { state, upload } = input;
  const current = state?.generation ?? 0;
  if (input.expected === undefined ? current !== 0 : String(current) !== input.expected)
    throw input.concurrent();
  const created: string[] = [];
  let table = state?.snapshotTable ?? undefined;
  let keyType = state?.keyType ?? undefined;
  try {
    if (upload && !upload.delta) {
      table = upload.table;
      keyType = upload.keyType ?? 'VARCHAR';
    } else if (upload) {
      if (!table) throw missingTable(names);
      table = await applyDelta(jobs, names, table, upload.table);
      created.push(table);
    }
    if (!table) throw missingTable(names);
    let manifest = input.manifest;
    if (manifest.pending && !manifest.pending.folded && input.pendingTable) {
      table = await foldPending(jobs, names, table, input.pendingTable, keyCast(keyType));
      created.push(table);
      manifest = { ...manifest, pending: { ...manifest.pending, folded: true } };
    }
    const counted = await jobs.few(
      { query: `SELECT CAST(COUNT(*) AS STRING) FROM ${tableSql(names.dataset, table)}` },
      READ,
    );
    const rows = Number(counted[0]?.[0]?.v ?? 0);
    manifest = { ...manifest, rowCount: rows };
    const won = await swap(jobs, names, input, {
      manifest: JSON.stringify(manifest),
      table,
      keyType: keyType ?? 'VARCHAR',
      rows,
    });
    if (!won) throw input.concurrent();
  } catch (error) {
    for (const t of created) await jobs.dropTable(t).catch(() => false);
    throw error;
  }
  const stale = created.filter((t) => t !== table);
  if (state?.snapshotTable && state.snapshotTable !== table) stale.push(state.snapshotTable);
  if (upload && upload.delta) stale.push(upload.table);
  if (input.previousPendingTable && input.previousPendingTable !== input.pendingTable)
    stale.push(input.previousPendingTable);
  return stale;
}

function missingTable(names: BqSnapshotNames): SynclineError {
  return new SynclineError(
    'SnapshotMissing',
    `the snapshot table of ${names.prefix.slice(0, -1)} in dataset ${names.dataset} is missing, so the changes of this run cannot be applied to it: request a full resync`,
  );
}
