// The tables of a warehouse snapshot in BigQuery, in the dataset Syncline owns (Sync.spec.snapshot.schema):
//   syncline_state                 one row per Sync: generation, manifest, the current snapshot table, key type
//   <base>_snapshot_<nonce>        the snapshot, copy-on-write: a commit writes a new table and the state
//                                  row's compare-and-swap makes it current (key text, stale, typed key,
//                                  row hash, record id); never changed by DML
//   <base>_pending_<nonce>         the keys a run is about to touch: their operations, hashes, epochs
//   <base>_delta_<nonce>           a run's delta, read by the commit and dropped after it
//   <base>_rejections              the rows the destination refused, kept pending; users may query it
// <base> is the Sync's name folded to what BigQuery takes unquoted, and a digest of namespace and name.
import { createHash, randomBytes } from 'node:crypto';

export const STATE_TABLE = 'syncline_state';

export interface BqSnapshotNames {
  dataset: string;
  /** Prefix of every table of this Sync (with the trailing _). */
  prefix: string;
  rejections: string;
}

export function snapshotNames(dataset: string, namespace: string, sync: string): BqSnapshotNames {
  const digest = createHash('sha256').update(`${namespace}/${sync}`).digest('hex').slice(0, 8);
  const base = `${sync
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 60)}_${digest}`;
  return { dataset, prefix: `${base}_`, rejections: `${base}_rejections` };
}

/** A new table name of this Sync: `<base>_<kind>_<nonce>`. */
export function freshTable(
  names: BqSnapshotNames,
  kind: 'snapshot' | 'pending' | 'delta' | 'upload',
): string {
  return `${names.prefix}${kind}_${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}

type Field = { name: string; type: string; mode?: string };

export const STATE_FIELDS: Field[] = [
  { name: 'namespace', type: 'STRING', mode: 'REQUIRED' },
  { name: 'sync', type: 'STRING', mode: 'REQUIRED' },
  { name: 'generation', type: 'INT64', mode: 'REQUIRED' },
  { name: 'manifest', type: 'STRING' },
  { name: 'snapshot_table', type: 'STRING' },
  { name: 'key_type', type: 'STRING' },
  { name: 'row_count', type: 'INT64' },
  { name: 'committed_by', type: 'STRING' },
  { name: 'committed_at', type: 'TIMESTAMP' },
];

/** The BigQuery type of a snapshot's typed key, by the key's DuckDB type; any other key is kept as text. */
export function bqKeyType(duckType: string | undefined): 'INT64' | 'STRING' {
  return duckType === 'BIGINT' || duckType === 'INTEGER' || duckType === 'SMALLINT' ? 'INT64' : 'STRING';
}

/** Key types BigQuery compares exactly as the engine does: a narrowed staging joins on them. */
export const NARROWABLE_KEYS = new Set(['BIGINT', 'VARCHAR']);

export function snapshotFields(keyType: 'INT64' | 'STRING'): Field[] {
  return [
    { name: 'key_text', type: 'STRING', mode: 'REQUIRED' },
    { name: 'stale', type: 'BOOL', mode: 'REQUIRED' },
    { name: 'key', type: keyType },
    { name: 'row_hash', type: 'INT64' },
    { name: 'record_id', type: 'STRING' },
  ];
}

export function deltaFields(keyType: 'INT64' | 'STRING'): Field[] {
  return [...snapshotFields(keyType), { name: 'deleted', type: 'BOOL', mode: 'REQUIRED' }];
}

export const PENDING_FIELDS: Field[] = [
  { name: 'key_text', type: 'STRING', mode: 'REQUIRED' },
  { name: 'key', type: 'STRING' },
  { name: 'op', type: 'STRING', mode: 'REQUIRED' },
  { name: 'row_hash', type: 'INT64' },
  { name: 'epoch', type: 'STRING', mode: 'REQUIRED' },
];

export const REJECTION_FIELDS: Field[] = [
  { name: 'key', type: 'STRING', mode: 'REQUIRED' },
  { name: 'reason', type: 'STRING', mode: 'REQUIRED' },
  { name: 'message', type: 'STRING' },
  { name: 'run_id', type: 'STRING', mode: 'REQUIRED' },
  { name: 'rejected_at', type: 'TIMESTAMP', mode: 'REQUIRED' },
];

/** `dataset.table` as BigQuery SQL names it. */
export function tableSql(dataset: string, table: string): string {
  return `\`${dataset}.${table}\``;
}
