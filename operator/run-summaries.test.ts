import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DiffStore } from '../core/diffstore/index.ts';
import { openBlobStore } from '../core/storage/index.ts';
import { fakeContext } from './fake-cluster.ts';
import { NS, putReferences, putSync, runnerSummary } from './fake-fixtures.ts';
import { finalizeSync, SNAPSHOT_FINALIZER } from './finalizer.ts';
import { readFullRunSummary } from './run-summaries.ts';

function storeContext() {
  const root = mkdtempSync(join(tmpdir(), 'syncline-op-store-'));
  const ctx = fakeContext({ config: { diffStore: { url: `file://${root}` } } });
  putReferences(ctx.cluster);
  const blob = openBlobStore(`file://${root}`, { secrets: () => '' });
  return { ctx, root, store: (sync: string) => new DiffStore(blob, NS, sync) };
}

describe('the diff store, as the operator reads it (core/diffstore)', () => {
  it('reads the full run summary the runner wrote', async () => {
    const { ctx, store } = storeContext();
    const sync = putSync(ctx.cluster);
    await store('to-crm').writeRunSummary('r1', {
      ...runnerSummary('r1'),
      columns: [{ name: 'id', type: 'INTEGER' }],
    });
    expect(await readFullRunSummary(ctx, sync, 'r1')).toMatchObject({
      runId: 'r1',
      columns: [{ name: 'id' }],
    });
    expect(await readFullRunSummary(ctx, sync, 'r2')).toBeUndefined();
  });

  it("never reads outside the Sync's folder, whatever run id a termination message names", async () => {
    const { ctx, store } = storeContext();
    const sync = putSync(ctx.cluster);
    await store('other').writeRunSummary('r1', runnerSummary('r1'));
    // The diff store refuses a run id that is not one (InvalidRunId) before any path is built.
    expect(await readFullRunSummary(ctx, sync, '../../other/runs/r1')).toBeUndefined();
  });

  it("deletes the Sync's folder on deletion with snapshotPolicy delete, and nothing of another Sync's", async () => {
    const { ctx, root, store } = storeContext();
    putSync(ctx.cluster, 'to-crm', { snapshotPolicy: 'delete' });
    await store('to-crm').writeRunSummary('r1', runnerSummary('r1'));
    await store('to-crm-2').writeRunSummary('r1', runnerSummary('r1'));
    const stored = ctx.cluster.objects.get(`syncs/${NS}/to-crm`)!;
    stored.metadata.finalizers = [SNAPSHOT_FINALIZER];
    (stored.metadata as { deletionTimestamp?: string }).deletionTimestamp = ctx.now().toISOString();
    await finalizeSync(ctx, ctx.store.sync(NS, 'to-crm')!);
    expect(existsSync(join(root, NS, 'to-crm', 'runs', 'r1.json'))).toBe(false);
    expect(existsSync(join(root, NS, 'to-crm-2', 'runs', 'r1.json'))).toBe(true);
    expect(ctx.store.sync(NS, 'to-crm')!.metadata.finalizers).toEqual([]);
    expect(ctx.events.recorded).toEqual([expect.objectContaining({ reason: 'SnapshotsDeleted' })]);
  });
});
