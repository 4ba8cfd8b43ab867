import { API_VERSION, type Destination, type Model, type Source, type Sync } from '../crds/index.ts';
import { SynclineError } from '../core/errors.ts';
import { checkPlan, runPlan, type CheckPlan, type DiffStoreSettings, type RunPlan } from '../core/plan.ts';
import type { RunStart } from './schedule.ts';

export interface RunPlanInput {
  runId: string;
  sync: Sync;
  model: Model;
  source: Source;
  /** The BI tool Source a Model's question is read from (spec.metabase / spec.looker sourceRef). */
  biSource?: Source;
  destination: Destination;
  start: Pick<RunStart, 'trigger' | 'fullResync'>;
  /** The runner's diff store for this Sync, its URL and credentials resolved (runner-policy.ts runnerDiffStore). */
  diffStore: DiffStoreSettings;
  memoryLimit?: string;
}

const named = (object: Sync | Model | Source | Destination) => ({
  name: object.metadata.name,
  ...(object.metadata.uid ? { uid: object.metadata.uid } : {}),
  ...(object.metadata.generation !== undefined ? { generation: object.metadata.generation } : {}),
  spec: object.spec,
});

/**
 * Resolves a Sync and the objects it references into the run plan the Job carries. The plan is parsed
 * with the runner's own schema, so whatever the runner would reject is rejected here, with a reason.
 */
export function buildRunPlan(input: RunPlanInput): RunPlan {
  const { sync } = input;
  const memoryLimit = sync.spec.runner?.memoryLimit ?? input.memoryLimit;
  const candidate = {
    apiVersion: API_VERSION,
    kind: 'RunPlan',
    runId: input.runId,
    namespace: sync.metadata.namespace ?? 'default',
    trigger: input.start.trigger,
    fullResync: input.start.fullResync,
    dryRun: false,
    sync: named(sync),
    model: named(input.model),
    source: named(input.source),
    ...(input.biSource ? { biSource: named(input.biSource) } : {}),
    destination: named(input.destination),
    diffStore: input.diffStore,
    runner: { ...(memoryLimit ? { memoryLimit } : {}), tmpDir: '/tmp', debuggerRetentionDays: 7 },
  };
  const parsed = runPlan.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SynclineError(
      'InvalidRunPlan',
      `the run plan is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'unknown error'}`,
    );
  }
  return parsed.data;
}

/**
 * The plan of a connection check. A Destination's names the objects its Syncs target (whose fields the
 * check discovers, when its connector can) and the diff store the discovery is written to.
 */
export function buildCheckPlan(
  target: Source | Destination,
  discovery: { objects: string[]; diffStore: DiffStoreSettings } | undefined = undefined,
): CheckPlan {
  const candidate = {
    apiVersion: API_VERSION,
    kind: 'CheckPlan',
    namespace: target.metadata.namespace ?? 'default',
    target: { kind: target.kind, name: target.metadata.name, spec: target.spec },
    ...(discovery && discovery.objects.length > 0
      ? { objects: discovery.objects, diffStore: discovery.diffStore }
      : {}),
  };
  const parsed = checkPlan.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SynclineError(
      'InvalidSpec',
      `spec is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'unknown error'}`,
    );
  }
  return parsed.data;
}
