// The commit of a warehouse snapshot: one transaction that locks the Sync's state row, refuses unless its
// generation is the one the run read (compare-and-swap), applies the snapshot the manifest names (a whole
// snapshot replaces the table; a delta replaces the rows of the keys it names), folds a run's pending keys
// into the table (stale), and writes the manifest with the next generation and the table's row count,
// stale rows and checksum (kept from what was removed and added, so a commit never scans the table).
import type pg from 'pg';
import type { Manifest } from '../../core/diffstore/index.ts';
import { SynclineError } from '../../core/errors.ts';
import { copyCsvIn, type CsvSnapshot } from './snapshot-files.ts';
import { checksumTerm, pgKeyType, SNAPSHOT_DDL, type SnapshotTables } from './snapshot-tables.ts';

/** What the table holds besides its rows: what the narrowed staging's checksum compares with. */
export interface SnapshotCounts {
  rows: number;
  stale: number;
  /** The XOR of every row's checksumTerm, as a signed 64-bit integer. */
  checksum: bigint;
}

export interface CommitInput {
  namespace: string;
  sync: string;
  manifest: Manifest;
  /** The generation the run read (undefined: no state row yet). */
  expected: string | undefined;
  /** The snapshot the manifest names, when this run uploaded it (else it names the current one). */
  upload: { csv: CsvSnapshot; delta: boolean } | undefined;
  /** What to say when another run committed first. */
  concurrent: () => SynclineError;
}

const UPLOAD = 'pg_temp.syncline_upload';

function counted(row: { n: string; s: string; x: string } | undefined): SnapshotCounts {
  return { rows: Number(row?.n ?? 0), stale: Number(row?.s ?? 0), checksum: BigInt(row?.x ?? 0) };
}

/** Row count, stale rows and checksum of the rows of `from` (alias s) that `where` selects. */
async function countsOf(
  client: pg.Client,
  from: string,
  keyType: string,
  where = 'TRUE',
): Promise<SnapshotCounts> {
  const found = await client.query<{ n: string; s: string; x: string }>(
    `SELECT count(*) AS n, count(*) FILTER (WHERE s.stale) AS s,
            coalesce(bit_xor(${checksumTerm('s', keyType)}), 0) AS x FROM ${from} s WHERE ${where}`,
  );
  return counted(found.rows[0]);
}

/** The type of the snapshot table's typed key, or undefined when there is no table. */
export async function snapshotKeyType(client: pg.Client, t: SnapshotTables): Promise<string | undefined> {
  const found = await client.query<{ type: string }>(
    `SELECT format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.attname = 'key' AND NOT a.attisdropped`,
    [t.snapshot],
  );
  const type = found.rows[0]?.type;
  return type === undefined ? undefined : (NORMAL_TYPES[type] ?? type);
}

/** format_type's names of the key types snapshot tables use, as pgKeyType spells them. */
const NORMAL_TYPES: Record<string, string> = { smallint: 'int2', integer: 'int4', bigint: 'int8' };

/** Replace the table with a whole snapshot. */
async function replaceAll(client: pg.Client, t: SnapshotTables, csv: CsvSnapshot): Promise<SnapshotCounts> {
  const keyType = pgKeyType(csv.keyType ?? 'VARCHAR');
  await client.query(`DROP TABLE IF EXISTS ${t.snapshot}`);
  await client.query(SNAPSHOT_DDL(t, keyType));
  await copyCsvIn(
    client,
    `COPY ${t.snapshot} (key_text, stale, key, hash, record_id) FROM STDIN WITH (FORMAT csv)`,
    csv.file,
  );
  await client.query(`ALTER TABLE ${t.snapshot} ADD PRIMARY KEY (key_text)`);
  return countsOf(client, t.snapshot, keyType);
}

/**
 * Replace the rows of the keys in UPLOAD (key_text, stale, key, hash, record_id, deleted) by its rows that
 * are not deleted; returns the counts after, from `before` and what was removed and added.
 */
async function applyUpload(
  client: pg.Client,
  t: SnapshotTables,
  keyType: string,
  before: SnapshotCounts,
): Promise<SnapshotCounts> {
  const touched = `s.key_text IN (SELECT key_text FROM ${UPLOAD})`;
  const removed = await countsOf(client, t.snapshot, keyType, touched);
  await client.query(`DELETE FROM ${t.snapshot} s WHERE ${touched}`);
  await client.query(
    `INSERT INTO ${t.snapshot} (key_text, stale, key, hash, record_id)
     SELECT key_text, stale, key, hash, record_id FROM ${UPLOAD} WHERE NOT deleted`,
  );
  const added = await countsOf(client, UPLOAD, keyType, 'NOT s.deleted');
  return {
    rows: before.rows - removed.rows + added.rows,
    stale: before.stale - removed.stale + added.stale,
    checksum: BigInt.asIntN(64, before.checksum ^ removed.checksum ^ added.checksum),
  };
}

async function createUpload(client: pg.Client, keyType: string): Promise<void> {
  await client.query(
    `CREATE TEMP TABLE syncline_upload (key_text text, stale boolean, key ${keyType}, hash bigint,
       record_id text, deleted boolean) ON COMMIT DROP`,
  );
}

/** Apply a delta: the rows of the keys it names. */
async function applyDelta(
  client: pg.Client,
  t: SnapshotTables,
  csv: CsvSnapshot,
  before: SnapshotCounts,
): Promise<SnapshotCounts> {
  const keyType = await snapshotKeyType(client, t);
  if (keyType === undefined) {
    throw new SynclineError(
      'SnapshotMissing',
      `the snapshot table ${t.schema}.${t.snapshotName} is missing, so the changes of this run cannot be applied to it: request a full resync`,
    );
  }
  await createUpload(client, keyType);
  await copyCsvIn(
    client,
    `COPY ${UPLOAD} (key_text, stale, key, hash, record_id, deleted) FROM STDIN WITH (FORMAT csv)`,
    csv.file,
  );
  const after = await applyUpload(client, t, keyType, before);
  await client.query(`DROP TABLE ${UPLOAD}`);
  return after;
}

/**
 * Fold a run's pending keys into the table: each is stale from now on (a pending add the table lacks is
 * there, stale, with no hash), so every later read sees them as to be sent again.
 */
async function foldPending(
  client: pg.Client,
  t: SnapshotTables,
  runId: string,
  before: SnapshotCounts,
): Promise<SnapshotCounts> {
  const keyType = await snapshotKeyType(client, t);
  if (keyType === undefined) throw new Error(`no snapshot table ${t.snapshotName} to fold pending keys into`);
  await createUpload(client, keyType);
  await client.query(
    `INSERT INTO ${UPLOAD}
     SELECT pp.key_text, TRUE, coalesce(s.key, CAST(pp.key AS ${keyType})), s.hash, s.record_id, FALSE
       FROM ${t.pending} pp LEFT JOIN ${t.snapshot} s ON s.key_text = pp.key_text
      WHERE pp.run_id = $1`,
    [runId],
  );
  const after = await applyUpload(client, t, keyType, before);
  await client.query(`DROP TABLE ${UPLOAD}`);
  return after;
}

/** The state row, locked, checked against the generation the run read. */
async function lockState(client: pg.Client, t: SnapshotTables, input: CommitInput): Promise<SnapshotCounts> {
  const found = await client.query<{ generation: string; n: string; s: string; x: string }>(
    `SELECT generation, row_count AS n, stale_count AS s, checksum AS x FROM ${t.state}
      WHERE namespace = $1 AND sync = $2 FOR UPDATE`,
    [input.namespace, input.sync],
  );
  const row = found.rows[0];
  if (input.expected === undefined ? row !== undefined : row?.generation !== input.expected)
    throw input.concurrent();
  return counted(row);
}

/** The whole commit, in one transaction; the caller's client is not in a transaction. */
export async function commitState(client: pg.Client, t: SnapshotTables, input: CommitInput): Promise<void> {
  await client.query('BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE');
  try {
    let counts = await lockState(client, t, input);
    if (input.upload) {
      counts = input.upload.delta
        ? await applyDelta(client, t, input.upload.csv, counts)
        : await replaceAll(client, t, input.upload.csv);
    }
    let manifest = input.manifest;
    if (manifest.pending && !manifest.pending.folded) {
      counts = await foldPending(client, t, manifest.pending.runId, counts);
      manifest = { ...manifest, pending: { ...manifest.pending, folded: true } };
    }
    // Only the pending keys the manifest names are still needed (for the epochs of keys still stale).
    await client.query(`DELETE FROM ${t.pending} WHERE run_id IS DISTINCT FROM $1`, [
      manifest.pending?.runId ?? null,
    ]);
    manifest = { ...manifest, rowCount: counts.rows };
    await client.query(
      `INSERT INTO ${t.state} AS st (namespace, sync, generation, manifest, snapshot_table, row_count,
         stale_count, checksum, committed_at)
       VALUES ($1, $2, 1, $3, $4, $5, $6, $7, now())
       ON CONFLICT (namespace, sync) DO UPDATE SET generation = st.generation + 1, manifest = EXCLUDED.manifest,
         snapshot_table = EXCLUDED.snapshot_table, row_count = EXCLUDED.row_count,
         stale_count = EXCLUDED.stale_count, checksum = EXCLUDED.checksum, committed_at = now()`,
      [
        input.namespace,
        input.sync,
        JSON.stringify(manifest),
        t.snapshotName,
        counts.rows,
        counts.stale,
        counts.checksum.toString(),
      ],
    );
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
