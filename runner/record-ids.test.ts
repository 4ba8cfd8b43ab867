// Record ids (capabilities.recordIds): the id a destination returns for a row is kept beside its key in
// the snapshot, and the next run's changes and deletes of that key carry it — through the engine's own
// diff, delivery and snapshot code, on an embedded DuckDB.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationWriter, RowChange } from '../core/connectors.ts';
import type { Manifest } from '../core/diffstore/index.ts';
import { CURRENT_ROWS, writeSnapshot } from './commit.ts';
import { deliver } from './deliver.ts';
import { computeDiff, hashProbe, type PreviousSnapshot } from './diff.ts';
import { queryAll } from './duck.ts';
import { resolveShape, SNAPSHOT_RECORD_ID } from './mappings.ts';
import { noEpochs } from './pending.ts';
import { checkPrimaryKey } from './validate.ts';

const dir = mkdtempSync(join(tmpdir(), 'syncline-record-ids-'));
// Each run has a DuckDB of its own, as in the engine.
let instance: DuckDBInstance;
let conn: DuckDBConnection;
async function freshDuck(): Promise<void> {
  conn?.closeSync();
  instance?.closeSync();
  instance = await DuckDBInstance.create(':memory:');
  conn = await instance.connect();
}
beforeAll(freshDuck);
afterAll(() => {
  conn.closeSync();
  instance.closeSync();
  rmSync(dir, { recursive: true, force: true });
});

const columns = [
  { name: 'id', type: 'INTEGER' },
  { name: 'email', type: 'VARCHAR' },
];
const shape = resolveShape({ mappings: undefined, columns, primaryKey: 'id', comparesAllColumns: false });

/** A writer that answers each change with a record id of its own (or fails `failing`) and remembers what it got. */
function recordingWriter(received: RowChange[], failing: Set<string>): DestinationWriter {
  return {
    async write(batch) {
      received.push(...batch);
      return batch.map((c) =>
        failing.has(c.key)
          ? { ok: false as const, reason: 'lost answer', retryable: false }
          : { ok: true as const, recordId: `rec-${c.key}` },
      );
    },
    async close() {},
  };
}

/** One run over `rows`: diff against `previous`, deliver, write the next snapshot. */
async function runOnce(
  rows: string,
  previous: PreviousSnapshot | undefined,
  file: string,
  failing = new Set<string>(),
): Promise<RowChange[]> {
  await freshDuck();
  await conn.run(`CREATE OR REPLACE TABLE model_rows AS SELECT * FROM (VALUES ${rows}) t(id, email)`);
  const keys = await checkPrimaryKey(conn, 'model_rows', 'id', 'fail');
  const diff = await computeDiff(conn, {
    shape,
    columns,
    primaryKey: 'id',
    mode: 'upsert',
    deleteBehavior: 'delete',
    archiveBehavior: 'archive',
    previous,
    resendAll: false,
    hashProbe: await hashProbe(conn),
    duplicateKeys: keys.duplicateKeys,
    recordIds: true,
  });
  await conn.run(`CREATE OR REPLACE VIEW ${CURRENT_ROWS} AS SELECT * FROM valid_rows`);
  await noEpochs(conn);
  const received: RowChange[] = [];
  const reader = await instance.connect();
  const progress = await instance.connect();
  await deliver({
    reader,
    recorder: conn,
    progress,
    writer: recordingWriter(received, failing),
    recordIds: true,
    shape,
    primaryKey: 'id',
    syncId: 'ns/s',
    runId: file,
    total: diff.totalOperations,
    batchSize: 10,
    concurrency: 1,
    maxRetries: 0,
    backoff: { baseMs: 1, capMs: 1 },
    signal: new AbortController().signal,
  });
  reader.closeSync();
  progress.closeSync();
  await writeSnapshot(conn, {
    shape,
    store: { name: 'duckdb', probe: await hashProbe(conn) },
    recordIds: true,
    primaryKey: 'id',
    keyType: 'INTEGER',
    previous: diff.previous,
    file,
    undelivered: 'failed',
  });
  return received;
}

function snapshotOf(file: string, probe: string): PreviousSnapshot {
  const manifest = {
    version: 2,
    runId: 'r',
    snapshot: file,
    committedAt: 'now',
    rowCount: 0,
    primaryKey: 'id',
    columns,
    modelFingerprint: '',
    comparedColumns: shape.compared.map((c) => c.name),
    destinationType: 'test',
    hashProbe: probe,
    hashFunction: 'duckdb',
  } as Manifest;
  return { file, manifest };
}

describe('record ids', () => {
  it('are kept in the snapshot and carried by the next run’s updates and deletes', async () => {
    const first = join(dir, 'first.parquet');
    const sent = await runOnce(`(1, 'a@x.org'), (2, 'b@x.org'), (3, 'c@x.org')`, undefined, first);
    expect(sent.map((c) => [c.key, c.recordId])).toEqual([
      ['1', undefined],
      ['2', undefined],
      ['3', undefined],
    ]);
    const kept = await queryAll(
      conn,
      `SELECT __syncline_key AS k, ${SNAPSHOT_RECORD_ID} AS id FROM read_parquet('${first}') ORDER BY 1`,
    );
    expect(kept).toEqual([
      { k: '1', id: 'rec-1' },
      { k: '2', id: 'rec-2' },
      { k: '3', id: 'rec-3' },
    ]);

    const probe = await hashProbe(conn);
    const second = join(dir, 'second.parquet');
    const changes = await runOnce(
      `(1, 'a@x.org'), (2, 'new@x.org'), (4, 'd@x.org')`,
      snapshotOf(first, probe),
      second,
    );
    const byKey = Object.fromEntries(changes.map((c) => [c.key, [c.operation, c.recordId]]));
    expect(byKey).toEqual({ '2': ['upsert', 'rec-2'], '3': ['delete', 'rec-3'], '4': ['upsert', undefined] });
    const after = await queryAll(
      conn,
      `SELECT __syncline_key AS k, ${SNAPSHOT_RECORD_ID} AS id FROM read_parquet('${second}') ORDER BY 1`,
    );
    // The unchanged key keeps its id, the new one gets its own, the deleted one is gone.
    expect(after).toEqual([
      { k: '1', id: 'rec-1' },
      { k: '2', id: 'rec-2' },
      { k: '4', id: 'rec-4' },
    ]);
  });

  it('a key whose last delivery is not known (stale) carries no record id: it may name another record now', async () => {
    const probe = await hashProbe(conn);
    const first = join(dir, 'stale-1.parquet');
    await runOnce(`(1, 'a@x.org'), (2, 'b@x.org')`, undefined, first);
    // Key 2's change is not confirmed (its answer lost): it stays stale, with the id it had.
    const second = join(dir, 'stale-2.parquet');
    await runOnce(`(1, 'a@x.org'), (2, 'changed@x.org')`, snapshotOf(first, probe), second, new Set(['2']));
    const stale = await queryAll(
      conn,
      `SELECT __syncline_stale AS s, ${SNAPSHOT_RECORD_ID} AS id FROM read_parquet('${second}') WHERE __syncline_key = '2'`,
    );
    expect(stale).toEqual([{ s: true, id: 'rec-2' }]);
    const third = join(dir, 'stale-3.parquet');
    const changes = await runOnce(`(1, 'a@x.org')`, snapshotOf(second, probe), third);
    expect(changes.map((c) => [c.key, c.operation, c.recordId])).toEqual([['2', 'delete', undefined]]);
  });
});
