// Deleting a Sync with snapshotPolicy delete whose snapshot is in the warehouse: a runner Job drops its
// tables (the operator never connects to the warehouse), then the diff-store folder goes, then the Sync.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DiffStore } from '../core/diffstore/index.ts';
import { openBlobStore } from '../core/storage/index.ts';
import { fakeContext } from './fake-cluster.ts';
import { completeJob, NS, onlyJob, putReferences, putSync, runnerSummary } from './fake-fixtures.ts';
import { finalizeSync, SNAPSHOT_FINALIZER } from './finalizer.ts';
import { snapshotDropJobName } from './jobs.ts';

function deleting(snapshot?: { location: 'warehouse' | 'diffStore'; schema?: string }) {
  const root = mkdtempSync(join(tmpdir(), 'syncline-op-drop-'));
  const ctx = fakeContext({ config: { diffStore: { url: `file://${root}` } } });
  putReferences(ctx.cluster);
  putSync(ctx.cluster, 'to-crm', { snapshotPolicy: 'delete', ...(snapshot ? { snapshot } : {}) });
  const stored = ctx.cluster.objects.get(`syncs/${NS}/to-crm`)!;
  stored.metadata.finalizers = [SNAPSHOT_FINALIZER];
  (stored.metadata as { deletionTimestamp?: string }).deletionTimestamp = ctx.now().toISOString();
  const store = new DiffStore(openBlobStore(`file://${root}`, { secrets: () => '' }), NS, 'to-crm');
  const pass = () => finalizeSync(ctx, ctx.store.sync(NS, 'to-crm')!);
  const finalizers = () => ctx.store.sync(NS, 'to-crm')?.metadata.finalizers;
  return { ctx, root, store, pass, finalizers };
}

describe('deleting a Sync whose snapshot is in the warehouse', () => {
  it('drops its tables through a runner Job before the folder and the Sync go', async () => {
    const d = deleting({ location: 'warehouse', schema: 'owned' });
    await d.store.writeRunSummary('r1', runnerSummary('r1'));
    expect(await d.pass()).toEqual({ requeueAfterMs: expect.any(Number) });
    const job = onlyJob(d.ctx.cluster);
    expect(job.metadata?.name).toBe(snapshotDropJobName(d.ctx.store.sync(NS, 'to-crm')!));
    const container = job.spec?.template.spec?.containers[0];
    expect(container?.args?.at(-1)).toBe('drop-snapshot');
    const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e]));
    expect(JSON.parse(env['SYNCLINE_DROP_PLAN']?.value ?? '{}')).toMatchObject({
      kind: 'SnapshotDropPlan',
      namespace: NS,
      sync: 'to-crm',
      source: { name: 'warehouse', spec: { type: 'postgres' } },
      schema: 'owned',
    });
    // Only the Source's secret, by reference.
    expect(Object.values(env).filter((e) => e.valueFrom)).toEqual([
      expect.objectContaining({
        valueFrom: { secretKeyRef: { name: 'pg', key: 'password', optional: false } },
      }),
    ]);
    expect(job.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Sync', name: 'to-crm' });
    // While it runs: nothing else is deleted, and the Sync stays.
    expect(await d.pass()).toEqual({ requeueAfterMs: expect.any(Number) });
    expect(d.ctx.cluster.jobs.size).toBe(1);
    expect(existsSync(join(d.root, NS, 'to-crm', 'runs', 'r1.json'))).toBe(true);
    expect(d.finalizers()).toEqual([SNAPSHOT_FINALIZER]);
    completeJob(d.ctx.cluster, job.metadata!.name!, {
      ok: true,
      reason: 'WarehouseSnapshotDropped',
      message: 'dropped 3 table(s) of Sync team/to-crm in schema owned of Source warehouse',
    } as never);
    expect(await d.pass()).toBeUndefined();
    expect(d.ctx.events.recorded).toContainEqual(
      expect.objectContaining({
        reason: 'WarehouseSnapshotDropped',
        message: expect.stringContaining('dropped 3 table(s)'),
      }),
    );
    expect(existsSync(join(d.root, NS, 'to-crm', 'runs', 'r1.json'))).toBe(false);
    expect(d.finalizers()).toEqual([]);
  });

  it('retries a drop Job that failed, saying why, and never drops for a Sync kept in the diff store', async () => {
    const d = deleting({ location: 'warehouse' });
    await d.pass();
    const name = onlyJob(d.ctx.cluster).metadata!.name!;
    const job = d.ctx.cluster.jobs.get(`${NS}/${name}`)!;
    job.status = {
      conditions: [{ type: 'Failed', status: 'True', lastTransitionTime: new Date() as never }],
    };
    d.ctx.cluster.pods.push({
      metadata: { name: `${name}-x`, namespace: NS, labels: { 'batch.kubernetes.io/job-name': name } },
      status: {
        containerStatuses: [
          {
            name: 'runner',
            ready: false,
            restartCount: 0,
            image: 'i',
            imageID: '',
            state: {
              terminated: {
                exitCode: 1,
                message: JSON.stringify({
                  ok: false,
                  reason: 'SourceUnreachable',
                  message: 'connection refused',
                }),
              },
            },
          },
        ],
      },
    } as never);
    expect(await d.pass()).toEqual({ requeueAfterMs: expect.any(Number) });
    expect(d.ctx.events.recorded).toContainEqual(
      expect.objectContaining({
        reason: 'SnapshotCleanupFailed',
        message: expect.stringContaining('SourceUnreachable: connection refused'),
      }),
    );
    expect(d.ctx.cluster.jobs.size).toBe(0);
    expect(d.finalizers()).toEqual([SNAPSHOT_FINALIZER]);

    const kept = deleting({ location: 'diffStore' });
    expect(await kept.pass()).toBeUndefined();
    expect(kept.ctx.cluster.jobs.size).toBe(0);
    expect(kept.finalizers()).toEqual([]);
  });

  it("follows the Source's default, and lets the Sync go with a Warning when the Source is gone", async () => {
    const d = deleting();
    const source = d.ctx.cluster.objects.get(`sources/${NS}/warehouse`)!;
    (source.spec as { snapshot?: object }).snapshot = { location: 'warehouse' };
    await d.pass();
    expect(onlyJob(d.ctx.cluster).spec?.template.spec?.containers[0]?.args?.at(-1)).toBe('drop-snapshot');

    const orphan = deleting({ location: 'warehouse' });
    orphan.ctx.cluster.objects.delete(`sources/${NS}/warehouse`);
    expect(await orphan.pass()).toBeUndefined();
    expect(orphan.ctx.events.recorded).toContainEqual(
      expect.objectContaining({
        reason: 'SnapshotCleanupAbandoned',
        message: expect.stringContaining('drop them by hand'),
      }),
    );
    expect(orphan.finalizers()).toEqual([]);
  });
});
