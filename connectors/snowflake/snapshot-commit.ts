// The commit of a warehouse snapshot in Snowflake, in one transaction: first the compare-and-swap on the
// Sync's state row (an UPDATE guarded by the generation the run read, or a MERGE that inserts it where none
// may exist yet; Snowflake locks the table an UPDATE or MERGE writes until COMMIT, so a second commit waits, then finds the
// generation moved and changes nothing), then the rows the run uploaded (a whole snapshot replaces the
// table's rows; a delta replaces the rows of the keys it names), the run's
// pending keys MERGEd in as stale, and the table's row count, stale rows and HASH_AGG checksum written
// with the manifest. The rows were uploaded before the transaction, so it moves no data.
import type { Logger } from '../../core/connectors.ts';
import type { Manifest } from '../../core/diffstore/index.ts';
import type { SynclineError } from '../../core/errors.ts';
import type { SnowflakeClient } from './client.ts';
import type { SnapshotTables } from './snapshot-tables.ts';

export interface CommitInput {
  namespace: string;
  sync: string;
  manifest: Manifest;
  /** The generation the run read (undefined: no state row yet). */
  expected: string | undefined;
  /** The rows this run uploaded for the snapshot the manifest names (else it names the current one). */
  upload: { runId: string; delta: boolean } | undefined;
  concurrent: () => SynclineError;
}

/** SQL of the checksum over snapshot rows (alias `s`): order-independent, 0 for none. */
export function checksumSql(alias: string): string {
  return `HASH_AGG(${alias}.KEY_TEXT, ${alias}.HASH)`;
}

async function swap(client: SnowflakeClient, t: SnapshotTables, input: CommitInput): Promise<void> {
  const manifest = JSON.stringify(input.manifest);
  const changed =
    input.expected === undefined
      ? // A MERGE, not an INSERT: Snowflake's INSERTs do not wait for each other, its MERGEs do.
        await client.run(
          `MERGE INTO ${t.state} st USING (SELECT ? AS NAMESPACE, ? AS SYNC, ? AS MANIFEST) n
             ON st.NAMESPACE = n.NAMESPACE AND st.SYNC = n.SYNC
           WHEN NOT MATCHED THEN INSERT (NAMESPACE, SYNC, GENERATION, MANIFEST, SNAPSHOT_TABLE, ROW_COUNT, STALE_COUNT, CHECKSUM, COMMITTED_AT)
             VALUES (n.NAMESPACE, n.SYNC, 1, n.MANIFEST, ?, 0, 0, 0, CURRENT_TIMESTAMP)`,
          [input.namespace, input.sync, manifest, t.snapshotName],
        )
      : await client.run(
          `UPDATE ${t.state} SET GENERATION = GENERATION + 1, MANIFEST = ?, COMMITTED_AT = CURRENT_TIMESTAMP
            WHERE NAMESPACE = ? AND SYNC = ? AND GENERATION = ?`,
          [manifest, input.namespace, input.sync, input.expected],
        );
  if (changed !== 1) throw input.concurrent();
}

/**
 * The rows the run uploaded. A delta names each key it touches once or twice (its new row, and a tombstone
 * for the row it replaces), so it is applied as DELETE of every key it names and INSERT of its live rows:
 * a MERGE would meet some keys twice, which Snowflake refuses as nondeterministic.
 */
async function apply(client: SnowflakeClient, t: SnapshotTables, upload: CommitInput['upload']) {
  if (!upload) return;
  await client.run(
    upload.delta
      ? `DELETE FROM ${t.snapshot} WHERE KEY_TEXT IN (SELECT KEY_TEXT FROM ${t.upload} WHERE RUN_ID = ?)`
      : `DELETE FROM ${t.snapshot}`,
    upload.delta ? [upload.runId] : undefined,
  );
  await client.run(
    `INSERT INTO ${t.snapshot} (KEY_TEXT, STALE, KEY, HASH, RECORD_ID)
     SELECT KEY_TEXT, STALE, KEY, HASH, RECORD_ID FROM ${t.upload} WHERE RUN_ID = ? AND NOT DELETED`,
    [upload.runId],
  );
}

/** A run's pending keys are stale from now on (a pending add the table lacks is there, stale, with no hash). */
async function foldPending(client: SnowflakeClient, t: SnapshotTables, runId: string): Promise<void> {
  await client.run(
    `MERGE INTO ${t.snapshot} s USING (SELECT KEY_TEXT, KEY FROM ${t.pending} WHERE RUN_ID = ?) pp
       ON s.KEY_TEXT = pp.KEY_TEXT
     WHEN MATCHED THEN UPDATE SET STALE = TRUE
     WHEN NOT MATCHED THEN INSERT (KEY_TEXT, STALE, KEY, HASH, RECORD_ID) VALUES (pp.KEY_TEXT, TRUE, pp.KEY, NULL, NULL)`,
    [runId],
  );
}

/** The whole commit, in one transaction. */
export async function commitState(
  client: SnowflakeClient,
  t: SnapshotTables,
  input: CommitInput,
  log: Logger,
): Promise<void> {
  await client.run('BEGIN');
  try {
    await swap(client, t, input);
    await apply(client, t, input.upload);
    let manifest = input.manifest;
    if (manifest.pending && !manifest.pending.folded) {
      await foldPending(client, t, manifest.pending.runId);
      manifest = { ...manifest, pending: { ...manifest.pending, folded: true } };
    }
    // Only the pending keys the manifest names are still needed (for the epochs of keys still stale).
    await client.run(`DELETE FROM ${t.pending} WHERE RUN_ID IS DISTINCT FROM ?`, [
      manifest.pending?.runId ?? null,
    ]);
    // Every upload is spent: rows of a run that read an older generation can never be committed (its
    // compare-and-swap fails), and a run that reads this one uploads after this commit.
    await client.run(`DELETE FROM ${t.upload}`);
    const [counts] = await client.rows(
      `SELECT COUNT(*) AS N, COUNT_IF(s.STALE) AS S, CAST(${checksumSql('s')} AS VARCHAR) AS X FROM ${t.snapshot} s`,
    );
    const rowCount = Number(counts?.N ?? 0);
    manifest = { ...manifest, rowCount };
    await client.run(
      `UPDATE ${t.state} SET MANIFEST = ?, ROW_COUNT = ?, STALE_COUNT = ?, CHECKSUM = ? WHERE NAMESPACE = ? AND SYNC = ?`,
      [
        JSON.stringify(manifest),
        String(rowCount),
        counts?.S ?? '0',
        counts?.X ?? '0',
        input.namespace,
        input.sync,
      ],
    );
    await client.run('COMMIT');
  } catch (error) {
    await client.rollback(log);
    throw error;
  }
}
