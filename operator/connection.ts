import type { V1Job } from '@kubernetes/client-node';
import type { Destination, DestinationType, Source, SourceStatus, Sync } from '../crds/index.ts';
import { findCondition, READY, type ConditionSet } from './conditions.ts';
import type { ReconcileContext } from './context.ts';
import {
  buildCheckJob,
  CHECK_HASH_ANNOTATION,
  CHECK_KIND_LABEL,
  CHECK_TARGET_LABEL,
  checkHashOf,
  checkJobName,
  COMPONENT_LABEL,
} from './jobs.ts';
import { buildCheckPlan } from './run-plan.ts';
import { checkDiffStore } from './runner-policy.ts';
import { checkResultFromOutcome, jobOutcome, type CheckResult } from './results.ts';
import type { ReconcileResult } from './runtime/controller.ts';
import { shortHash } from './schedule.ts';
import { writeStatus } from './status-writer.ts';
import { describeError } from '../core/errors.ts';

type Target = Source | Destination;
type ConnectionStatus = SourceStatus;

/** Reasons of a Ready condition that came from the check pod rather than from the runner. */
const POD_REASONS = new Set([
  'SecretNotFound',
  'ImagePullFailed',
  'InvalidImageName',
  'ContainerConfigError',
  'ContainerStartFailed',
]);

export interface CheckDue {
  due: boolean;
  /** Names the check Job: new per spec (hash, generation) and per previous check time. */
  key: string;
  /** When the next check is due, if none is due now. */
  nextAt?: Date;
}

/** Whether a connection needs checking now: a new or changed spec, or the recheck/retry interval passed. */
export function checkDue(
  target: Target,
  now: Date,
  intervals: { recheckIntervalMs: number; retryIntervalMs: number },
  objects: readonly string[] = [],
): CheckDue {
  const status = target.status ?? {};
  const hash = checkHashOf(target, objects);
  const generation = target.metadata.generation ?? 0;
  if (status.checkedHash !== hash || !status.lastCheckedAt) {
    return { due: true, key: shortHash(`${hash}|${generation}|first`, 8) };
  }
  const key = shortHash(`${hash}|${generation}|${status.lastCheckedAt}`, 8);
  const ready = findCondition(status.conditions, READY)?.status === 'True';
  const nextAt = new Date(
    new Date(status.lastCheckedAt).getTime() +
      (ready ? intervals.recheckIntervalMs : intervals.retryIntervalMs),
  );
  return nextAt.getTime() <= now.getTime() ? { due: true, key } : { due: false, key, nextAt };
}

/** What watching a connection's check Job found out. */
interface CheckObservation {
  /** Ready/Reconciling/Stalled to write; undefined keeps the conditions. */
  set?: ConditionSet;
  /** A check that ended (with a result, or given up): when, and on which spec. */
  checked?: { at: string; hash: string };
  /** The check's result, when it finished or was given up. */
  result?: CheckResult;
  requeueAfterMs?: number;
}

/** The check to run or watch for this reconcile: its Job's name and the checks already there. */
interface CheckContext {
  target: Target;
  namespace: string;
  now: Date;
  hash: string;
  due: CheckDue;
  jobName: string;
  jobs: V1Job[];
  /** A Destination's: the objects its Syncs target, sorted (discovered by the check). */
  objects: string[];
}

/**
 * The objects the Syncs of a Destination target (`target.object` and each association's object), sorted
 * and without repeats: what its connection check discovers the fields of.
 */
/**
 * Whether the Destination's connector discovers objects and fields (capabilities.discovers): only then do
 * its Syncs' objects go into its check (and its check hash). An unknown type discovers nothing.
 */
async function discovers(ctx: ReconcileContext, target: Target): Promise<boolean> {
  const type = (target.spec as { type?: string }).type;
  if (!type) return false;
  try {
    return (await ctx.capabilities(type as DestinationType)).discovers === true;
  } catch (error) {
    ctx.log.debug({ type, err: describeError(error).message }, 'no capabilities: nothing to discover');
    return false;
  }
}

export function targetedObjects(syncs: readonly Sync[]): string[] {
  const names = new Set<string>();
  for (const sync of syncs) {
    const target = sync.spec.target;
    if (target?.object) names.add(target.object);
    for (const association of target?.associations ?? []) names.add(association.object);
  }
  return [...names].sort();
}

/** Starts the check Job when one is due and none exists; a plan that cannot be built stalls the check. */
async function startCheck(
  ctx: ReconcileContext,
  check: CheckContext,
): Promise<{ job?: V1Job; failed?: CheckObservation }> {
  const { target, jobName, hash } = check;
  const existing = check.jobs.find((j) => j.metadata?.name === jobName);
  if (!check.due.due || existing) return existing ? { job: existing } : {};
  try {
    const plan = buildCheckPlan(
      target,
      target.kind === 'Destination'
        ? { objects: check.objects, diffStore: checkDiffStore(ctx.config) }
        : undefined,
    );
    const created = await ctx.cluster.createJob(
      buildCheckJob({ target, plan, name: jobName, checkHash: hash, config: ctx.config }),
    );
    if (created.created) ctx.log.info({ job: jobName }, 'started a connection check');
    return { job: created.job };
  } catch (error) {
    const { reason, message } = describeError(error, 'CheckNotStarted');
    if (reason.startsWith('KubeApi')) throw error;
    return {
      failed: {
        set: { ready: { status: 'False', reason, message }, stalled: { reason, message } },
        checked: { at: check.now.toISOString(), hash },
      },
    };
  }
}

/** The state of a due check's Job: running (maybe with a pod problem), given up on, or finished. */
export function observeCheck(
  ctx: Pick<ReconcileContext, 'store' | 'config'>,
  check: CheckContext,
  job: V1Job,
): CheckObservation {
  const { target, namespace, now, hash, jobName } = check;
  const status: ConnectionStatus = target.status ?? {};
  const readyNow = findCondition(status.conditions, READY);
  const lastProblem = readyNow && POD_REASONS.has(readyNow.reason) ? readyNow : undefined;
  const outcome = jobOutcome(job, ctx.store.podsOfJob(namespace, jobName), lastProblem);
  const age =
    now.getTime() - new Date(String(job.metadata?.creationTimestamp ?? now.toISOString())).getTime();
  const checkedHash = job.metadata?.annotations?.[CHECK_HASH_ANNOTATION] ?? hash;
  if (outcome.state === 'active' && outcome.problem?.stuck && age >= ctx.config.podStartTimeoutMs) {
    // Give up on a pod that cannot start; the retry interval brings a fresh check. The Job goes with
    // the other finished ones, once the result is in status.
    const result = { ok: false, reason: outcome.problem.reason, message: outcome.problem.message };
    return { result, checked: { at: now.toISOString(), hash: checkedHash } };
  }
  if (outcome.state === 'active') {
    if (outcome.problem) {
      const { reason, message } = outcome.problem;
      return {
        set: { ready: { status: 'False', reason, message } },
        requeueAfterMs: ctx.config.podStartTimeoutMs - age,
      };
    }
    if (status.checkedHash === hash) return {};
    const progress = { reason: 'Checking', message: `connection check Job ${jobName} is running` };
    return { set: { ready: { status: 'Unknown', ...progress }, reconciling: progress } };
  }
  return { result: checkResultFromOutcome(outcome), checked: { at: outcome.finishedAt, hash: checkedHash } };
}

/** Ready from a check's result, and when to check again. */
export function resultConditions(
  result: CheckResult,
  intervals: { recheckIntervalMs: number; retryIntervalMs: number },
): { set: ConditionSet; requeueAfterMs: number } {
  const set: ConditionSet = result.ok
    ? {
        ready: {
          status: 'True',
          reason: result.reason || 'ConnectionSucceeded',
          message: result.message || 'the connection check passed',
        },
      }
    : { ready: { status: 'False', reason: result.reason, message: result.message } };
  return { set, requeueAfterMs: result.ok ? intervals.recheckIntervalMs : intervals.retryIntervalMs };
}

/**
 * Finished checks other than the current one are history only (the TTL controller would remove them
 * too, but not before a day); the current one goes too when it was given up on.
 */
async function deleteFinishedChecks(
  ctx: ReconcileContext,
  check: CheckContext,
  observed: CheckObservation,
): Promise<void> {
  for (const old of check.jobs) {
    const name = old.metadata?.name;
    const gaveUp = name === check.jobName && observed.checked !== undefined && observed.result !== undefined;
    if (name && ((name !== check.jobName && jobOutcome(old, []).state === 'finished') || gaveUp)) {
      await ctx.cluster.deleteJob(check.namespace, name);
    }
  }
}

/**
 * Reconciles a Source or a Destination: a new or changed spec (or a due recheck) starts a short check Job;
 * its result sets Ready with the runner's reason (wrong password, unreachable host, ...) or the pod's
 * (a missing Secret key).
 */
export async function reconcileConnection(ctx: ReconcileContext, target: Target): Promise<ReconcileResult> {
  const { metadata } = target;
  const namespace = metadata.namespace ?? 'default';
  const now = ctx.now();
  const objects =
    target.kind === 'Destination' && (await discovers(ctx, target))
      ? targetedObjects(ctx.store.syncsOfDestination(namespace, metadata.name))
      : [];
  const due = checkDue(target, now, ctx.config.check, objects);
  const check: CheckContext = {
    target,
    namespace,
    now,
    objects,
    hash: checkHashOf(target, objects),
    due,
    jobName: checkJobName(target.kind as 'Source' | 'Destination', metadata.name, due.key),
    jobs: ctx.store.jobs(namespace, {
      [COMPONENT_LABEL]: 'check',
      [CHECK_KIND_LABEL]: target.kind.toLowerCase(),
      [CHECK_TARGET_LABEL]: metadata.name,
    }),
  };
  const started = await startCheck(ctx, check);
  let observed: CheckObservation = started.failed ?? {
    ...(due.nextAt ? { requeueAfterMs: due.nextAt.getTime() - now.getTime() } : {}),
  };
  if (started.job && due.due) observed = { ...observed, ...observeCheck(ctx, check, started.job) };
  if (observed.result) observed = { ...observed, ...resultConditions(observed.result, ctx.config.check) };

  const status: ConnectionStatus = target.status ?? {};
  const after: ConnectionStatus = { ...status };
  if (observed.checked) {
    after.lastCheckedAt = observed.checked.at;
    after.checkedHash = observed.checked.hash;
  }
  await writeStatus(ctx, {
    plural: target.kind === 'Source' ? 'sources' : 'destinations',
    object: target,
    before: status,
    after,
    ...(observed.set ? { set: observed.set } : {}),
  });
  await deleteFinishedChecks(ctx, check, observed);
  const requeueAfterMs = observed.requeueAfterMs;
  return requeueAfterMs !== undefined ? { requeueAfterMs: Math.max(1000, requeueAfterMs) } : undefined;
}
