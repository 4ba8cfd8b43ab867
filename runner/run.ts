// One run of one Sync, as a pipeline of stages (runner/stages/): open → query → validate → diff → fetch →
// guard → intent → deliver → commit, then the report. Each stage is a function over the run's context
// returning its result; the resources they open are released by one AsyncDisposableStack.
import { describeError } from '../core/errors.ts';
import type { DiffStore } from '../core/diffstore/index.ts';
import type { RunPlan } from '../core/plan.ts';
import type { RunSummary } from '../core/summary.ts';
import { sampleOperations } from './deliver.ts';
import { Pipeline } from './pipeline.ts';
import { commitRun } from './stages/commit.ts';
import { recordingSecrets, type RunContext, type RunDeps } from './stages/context.ts';
import { deliverChanges } from './stages/delivery.ts';
import { diffModel } from './stages/diff.ts';
import { fetchChangedModelRows } from './stages/fetch.ts';
import { checkSafetyRail } from './stages/guard.ts';
import { commitIntent } from './stages/intent.ts';
import { openDiffStore, openRun } from './stages/open.ts';
import { queryModel } from './stages/query.ts';
import {
  buildSummary,
  dryRunEnding,
  endingOf,
  withNotice,
  type RunEnding,
  type RunResults,
} from './stages/report.ts';
import { validateModel } from './stages/validate.ts';

export type { RunDeps, RunPhase, RunProgress } from './stages/context.ts';
export { DEFAULT_CHECKPOINT_SECONDS } from './stages/delivery.ts';

/** The current snapshot and the one before: a full resync over a broken current one recovers its keys. */
const KEPT_SNAPSHOTS = 2;
const SAMPLE_ROWS = 5;

/**
 * One run of one Sync. Never throws: every failure ends in a Failed summary with a reason, a message and
 * the stage it failed in. The summary is also written to the diff store (except for dry runs, which
 * change nothing anywhere).
 */
export async function executeRun(plan: RunPlan, deps: RunDeps): Promise<RunSummary> {
  const pipeline = new Pipeline((phase) => deps.onProgress?.({ phase }));
  const secrets = recordingSecrets(deps.secrets);
  const results: RunResults = {};
  let store: DiffStore | undefined;
  let ending: RunEnding;
  // Released when the run ends, after its summary is written: request log, DuckDB, the lease last.
  await using resources = new AsyncDisposableStack();
  try {
    store = openDiffStore(plan, secrets);
    const opened = store;
    const ctx = await pipeline.stage('open', () => openRun(plan, deps, opened, secrets, resources));
    ending = await runStages(ctx, pipeline, results);
  } catch (error) {
    ending = failure(error, deps.signal, pipeline.current);
    deps.log.error(
      { ...labelsOf(plan), reason: ending.reason, stage: ending.stage, err: ending.message },
      'run failed',
    );
  }
  const summary = buildSummary(plan, pipeline.finish(), results, ending);
  if (store && !plan.dryRun) await keepSummary(store, plan, summary, deps);
  deps.log.info(
    { ...labelsOf(plan), result: summary.result, reason: summary.reason, counts: summary.counts },
    summary.message,
  );
  return summary;
}

async function runStages(ctx: RunContext, pipeline: Pipeline, results: RunResults): Promise<RunEnding> {
  results.fullResync = ctx.plan.fullResync;
  if (ctx.notice) results.notice = ctx.notice;
  return withNotice(await runPipeline(ctx, pipeline, results), ctx.notice);
}

async function runPipeline(ctx: RunContext, pipeline: Pipeline, results: RunResults): Promise<RunEnding> {
  const queried = (results.queried = await pipeline.stage('query', () => queryModel(ctx)));
  const validated = (results.validated = await pipeline.stage('validate', () => validateModel(ctx, queried)));
  const diffed = (results.diffed = await pipeline.stage('diff', () => diffModel(ctx, queried, validated)));
  const fetched = (results.fetched = await pipeline.stage('fetch', () =>
    fetchChangedModelRows(ctx, queried, validated, diffed),
  ));
  if (ctx.plan.dryRun) {
    results.samples = await pipeline.stage('fetch', () =>
      sampleOperations(ctx.conn, {
        shape: validated.shape,
        primaryKey: ctx.primaryKey,
        syncId: `${ctx.plan.namespace}/${ctx.plan.sync.name}`,
        runId: ctx.plan.runId,
        perOperation: SAMPLE_ROWS,
        operations: Object.keys(diffed.diff.operations),
      }),
    );
  }
  await pipeline.stage('guard', () => checkSafetyRail(ctx.spec.safety, diffed.diff));
  if (ctx.plan.dryRun) return dryRunEnding(diffed);
  const committer = await pipeline.stage('intent', () => commitIntent(ctx, diffed, fetched));
  const delivered = (results.delivered = await pipeline.stage('deliver', () =>
    deliverChanges(ctx, { queried, validated, diffed, fetched, committer }),
  ));
  results.committed = await pipeline.stage('commit', () => commitRun(ctx, diffed, delivered, committer));
  return endingOf(results);
}

function failure(error: unknown, signal: AbortSignal, stage: string | undefined): RunEnding {
  const described = signal.aborted
    ? { reason: 'Aborted', message: 'the run was stopped before it finished; nothing was committed' }
    : describeError(error, 'InternalError');
  return { result: 'Failed', reason: described.reason, message: described.message, stage };
}

async function keepSummary(
  store: DiffStore,
  plan: RunPlan,
  summary: RunSummary,
  deps: RunDeps,
): Promise<void> {
  try {
    await store.writeRunSummary(plan.runId, summary);
    await store.prune({ requestLogDays: plan.runner.debuggerRetentionDays, keepSnapshots: KEPT_SNAPSHOTS });
  } catch (error) {
    deps.log.warn(
      { ...labelsOf(plan), err: describeError(error).message },
      'could not write the run summary to the diff store',
    );
  }
}

function labelsOf(plan: RunPlan): { namespace: string; sync: string; runId: string } {
  return { namespace: plan.namespace, sync: plan.sync.name, runId: plan.runId };
}
