import type { V1Job } from '@kubernetes/client-node';
import type { Destination, Source, SourceStatus } from '../crds/index.ts';
import { applyConditionSet, findCondition, readyTransition, READY, type ConditionSet } from './conditions.ts';
import { statusPatch } from './cluster.ts';
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
import { checkResultFromOutcome, jobOutcome, type CheckResult } from './results.ts';
import type { ReconcileResult } from './runtime/controller.ts';
import { shortHash } from './schedule.ts';
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
): CheckDue {
  const status = target.status ?? {};
  const hash = checkHashOf(target);
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

/**
 * Reconciles a Source or a Destination: a new or changed spec (or a due recheck) starts a short check Job;
 * its result sets Ready with the runner's reason (wrong password, unreachable host, ...) or the pod's
 * (a missing Secret key).
 */
export async function reconcileConnection(ctx: ReconcileContext, target: Target): Promise<ReconcileResult> {
  const { metadata } = target;
  const namespace = metadata.namespace ?? 'default';
  const plural = target.kind === 'Source' ? 'sources' : 'destinations';
  const now = ctx.now();
  const status: ConnectionStatus = target.status ?? {};
  const generation = metadata.generation;
  const hash = checkHashOf(target);
  const due = checkDue(target, now, ctx.config.check);
  const jobName = checkJobName(target.kind as 'Source' | 'Destination', metadata.name, due.key);
  const jobs = ctx.store.jobs(namespace, {
    [COMPONENT_LABEL]: 'check',
    [CHECK_KIND_LABEL]: target.kind.toLowerCase(),
    [CHECK_TARGET_LABEL]: metadata.name,
  });

  let set: ConditionSet | undefined;
  let checked: { at: string; hash: string } | undefined;
  let result: CheckResult | undefined;
  let requeueAfterMs: number | undefined = due.nextAt ? due.nextAt.getTime() - now.getTime() : undefined;

  let job: V1Job | undefined = jobs.find((j) => j.metadata?.name === jobName);
  if (due.due && !job) {
    try {
      const plan = buildCheckPlan(target);
      const created = await ctx.cluster.createJob(
        buildCheckJob({ target, plan, name: jobName, checkHash: hash, config: ctx.config }),
      );
      job = created.job;
      if (created.created) ctx.log.info({ job: jobName }, 'started a connection check');
    } catch (error) {
      const { reason, message } = describeError(error, 'CheckNotStarted');
      if (reason.startsWith('KubeApi')) throw error;
      set = { ready: { status: 'False', reason, message }, stalled: { reason, message } };
      checked = { at: now.toISOString(), hash };
    }
  }

  if (job && due.due) {
    const readyNow = findCondition(status.conditions, READY);
    const lastProblem = readyNow && POD_REASONS.has(readyNow.reason) ? readyNow : undefined;
    const outcome = jobOutcome(job, ctx.store.podsOfJob(namespace, jobName), lastProblem);
    const age =
      now.getTime() - new Date(String(job.metadata?.creationTimestamp ?? now.toISOString())).getTime();
    if (outcome.state === 'active' && outcome.problem?.stuck && age >= ctx.config.podStartTimeoutMs) {
      // Give up on a pod that cannot start; the retry interval brings a fresh check. The Job goes with
      // the other finished ones below, once the result is in status.
      result = { ok: false, reason: outcome.problem.reason, message: outcome.problem.message };
      checked = { at: now.toISOString(), hash: job.metadata?.annotations?.[CHECK_HASH_ANNOTATION] ?? hash };
    } else if (outcome.state === 'active') {
      const first = status.checkedHash !== hash;
      if (outcome.problem) {
        set = {
          ready: { status: 'False', reason: outcome.problem.reason, message: outcome.problem.message },
        };
        requeueAfterMs = ctx.config.podStartTimeoutMs - age;
      } else if (first) {
        set = {
          ready: {
            status: 'Unknown',
            reason: 'Checking',
            message: `connection check Job ${jobName} is running`,
          },
          reconciling: { reason: 'Checking', message: `connection check Job ${jobName} is running` },
        };
      }
    } else {
      result = checkResultFromOutcome(outcome);
      checked = { at: outcome.finishedAt, hash: job.metadata?.annotations?.[CHECK_HASH_ANNOTATION] ?? hash };
    }
  }

  if (result) {
    set = result.ok
      ? {
          ready: {
            status: 'True',
            reason: result.reason || 'ConnectionSucceeded',
            message: result.message || 'the connection check passed',
          },
        }
      : { ready: { status: 'False', reason: result.reason, message: result.message } };
    requeueAfterMs = result.ok ? ctx.config.check.recheckIntervalMs : ctx.config.check.retryIntervalMs;
  }

  const next: ConnectionStatus = { ...status, observedGeneration: generation };
  if (set) next.conditions = applyConditionSet(status.conditions, set, generation, now);
  else if (status.conditions) {
    // Nothing new to say: keep the conditions but mark them as observed at this generation.
    next.conditions = status.conditions.map((c) => ({
      ...c,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    }));
  }
  if (checked) {
    next.lastCheckedAt = checked.at;
    next.checkedHash = checked.hash;
  }
  const patch = statusPatch(status as Record<string, unknown>, next as Record<string, unknown>);
  if (patch) {
    await ctx.cluster.patchStatus(plural, namespace, metadata.name, patch, metadata.resourceVersion);
    const transition = readyTransition(status.conditions, next.conditions);
    if (transition && transition.status !== 'Unknown') {
      if (transition.status === 'True') ctx.events.normal(target, transition.reason, transition.message);
      else ctx.events.warning(target, transition.reason, transition.message);
    }
  }

  // Finished checks other than the current one are history only; the TTL controller would remove them
  // too, but not before a day.
  for (const old of jobs) {
    const name = old.metadata?.name;
    const gaveUp = name === jobName && checked !== undefined && result !== undefined;
    if (name && ((name !== jobName && jobOutcome(old, []).state === 'finished') || gaveUp)) {
      await ctx.cluster.deleteJob(namespace, name);
    }
  }
  return requeueAfterMs !== undefined ? { requeueAfterMs: Math.max(1000, requeueAfterMs) } : undefined;
}
