// The warehouse half of a Sync's deletion with snapshotPolicy delete: when the Sync (or its Source) keeps
// its snapshot in the warehouse, a runner Job drops its tables there (the operator never connects to a
// warehouse). Asked on each pass of the finalizer until the Job has finished.
import { API_VERSION, type Sync } from '../crds/index.ts';
import { snapshotDropPlan, type SnapshotDropPlan } from '../core/plan.ts';
import { resolveSnapshot } from '../core/settings.ts';
import type { ReconcileContext } from './context.ts';
import { buildSnapshotDropJob, COMPONENT_LABEL, snapshotDropJobName, SYNC_LABEL } from './jobs.ts';
import { jobOutcome } from './results.ts';

export type WarehouseDrop =
  /** Nothing kept in the warehouse, or its tables are dropped. */
  | { done: true; message?: string }
  /** The Job is running (or was just created): look again later. */
  | { done: false }
  /** The tables cannot be dropped (why), e.g. the Source is gone; the caller decides whether to go on. */
  | { done: true; problem: string }
  /** The Job failed (its reason and message); the caller retries until its deadline. */
  | { done: false; failed: string };

/** The plan to drop the Sync's warehouse tables; undefined when it keeps its snapshot in the diff store. */
export function dropPlanOf(
  ctx: ReconcileContext,
  sync: Sync,
): SnapshotDropPlan | { problem: string } | undefined {
  const namespace = sync.metadata.namespace ?? 'default';
  const model = ctx.store.model(namespace, sync.spec.modelRef.name);
  const source = model ? ctx.store.source(namespace, model.spec.sourceRef.name) : undefined;
  if (!source) {
    if (sync.spec.snapshot?.location !== 'warehouse') return undefined;
    return {
      problem: `its Model or Source is gone, so the tables of its warehouse snapshot cannot be reached`,
    };
  }
  const placement = resolveSnapshot(sync.spec, source.spec);
  if (placement.location !== 'warehouse') return undefined;
  return snapshotDropPlan.parse({
    apiVersion: API_VERSION,
    kind: 'SnapshotDropPlan',
    namespace,
    sync: sync.metadata.name,
    source: { name: source.metadata.name, spec: source.spec },
    schema: placement.schema,
  });
}

/** One pass: create the drop Job, or read how it ended (deleting a failed one, so the next pass retries). */
export async function dropWarehouseSnapshot(ctx: ReconcileContext, sync: Sync): Promise<WarehouseDrop> {
  const plan = dropPlanOf(ctx, sync);
  if (!plan) return { done: true };
  if ('problem' in plan) return { done: true, problem: plan.problem };
  const name = snapshotDropJobName(sync);
  const job = ctx.store
    .jobs(plan.namespace, { [COMPONENT_LABEL]: 'drop-snapshot', [SYNC_LABEL]: sync.metadata.name })
    .find((j) => j.metadata?.name === name);
  if (!job) {
    await ctx.cluster.createJob(buildSnapshotDropJob(sync, plan, ctx.config));
    return { done: false };
  }
  const outcome = jobOutcome(job, ctx.store.podsOfJob(plan.namespace, name));
  if (outcome.state === 'active') return { done: false };
  const said = parseResult(outcome.terminationMessage);
  if (outcome.succeeded && said?.ok !== false) {
    return { done: true, message: said?.message ?? `dropped the tables of schema ${plan.schema}` };
  }
  await ctx.cluster.deleteJob(plan.namespace, name);
  return {
    done: false,
    failed: said ? `${said.reason}: ${said.message}` : (outcome.message ?? 'the drop Job failed'),
  };
}

function parseResult(text: string | undefined): { ok: boolean; reason: string; message: string } | undefined {
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as { ok?: unknown; reason?: unknown; message?: unknown };
    if (typeof parsed.ok !== 'boolean') return undefined;
    return { ok: parsed.ok, reason: String(parsed.reason ?? ''), message: String(parsed.message ?? '') };
  } catch (error) {
    // FallbackToLogsOnError: the log tail, not our JSON; the outcome's own message stands.
    return { ok: false, reason: 'SnapshotCleanupFailed', message: `${String(error)}: ${text.slice(0, 512)}` };
  }
}
