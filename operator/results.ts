import { clip } from '../core/text.ts';
import type { V1ContainerStatus, V1Job, V1Pod } from '@kubernetes/client-node';
import type { RunCounts, RunRecord } from '../crds/index.ts';
import { runSummary, type RunSummary } from '../core/summary.ts';
import { RUNNER_CONTAINER } from './jobs.ts';

/** Why a pod never got its runner going, as seen in its status. */
export interface PodProblem {
  reason: string;
  message: string;
  /** Not something waiting fixes by itself soon: fail the run after the pod start timeout. */
  stuck: boolean;
}

export type JobOutcome =
  | { state: 'active'; startedAt?: string; problem?: PodProblem }
  | {
      state: 'finished';
      succeeded: boolean;
      finishedAt: string;
      startedAt?: string;
      /** Reason and message for a failure, from the runner or from Kubernetes. */
      reason?: string;
      message?: string;
      /** The container's termination message, if it wrote one. */
      terminationMessage?: string;
      exitCode?: number;
    };

function runnerStatus(pod: V1Pod): V1ContainerStatus | undefined {
  return (
    pod.status?.containerStatuses?.find((c) => c.name === RUNNER_CONTAINER) ??
    pod.status?.containerStatuses?.[0]
  );
}

function toIso(value: Date | string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return value instanceof Date ? value.toISOString() : new Date(value).toISOString();
}

/** The newest pod of a Job (backoffLimit 0 means there is one, unless it was replaced after eviction). */
export function newestPod(pods: V1Pod[]): V1Pod | undefined {
  return [...pods].sort((a, b) =>
    String(toIso(b.metadata?.creationTimestamp) ?? '').localeCompare(
      String(toIso(a.metadata?.creationTimestamp) ?? ''),
    ),
  )[0];
}

/** Translates a waiting or unschedulable pod into the cause a person can act on. */
export function podProblem(pod: V1Pod | undefined): PodProblem | undefined {
  if (!pod) return undefined;
  const waiting = runnerStatus(pod)?.state?.waiting;
  const text = waiting?.message ?? '';
  switch (waiting?.reason) {
    case 'CreateContainerConfigError': {
      const secret = /secret "?([^"\s]+)"? not found/i.exec(text);
      const key = /couldn't find key (\S+) in Secret (\S+)/i.exec(text);
      if (key) {
        return {
          reason: 'SecretNotFound',
          message: `Secret ${key[2]} has no key "${key[1]}": add the key, or fix the secretKeyRef that names it`,
          stuck: true,
        };
      }
      if (secret) {
        return {
          reason: 'SecretNotFound',
          message: `Secret "${secret[1]}" does not exist in the namespace: create it, or fix the secretKeyRef that names it`,
          stuck: true,
        };
      }
      return {
        reason: 'ContainerConfigError',
        message: `the runner container cannot be created: ${text}`,
        stuck: true,
      };
    }
    case 'ErrImagePull':
    case 'ImagePullBackOff':
      return {
        reason: 'ImagePullFailed',
        message: `the runner image cannot be pulled (${waiting.reason}): ${text || 'check the image name and pull secrets'}`,
        stuck: true,
      };
    case 'InvalidImageName':
      return {
        reason: 'InvalidImageName',
        message: `the runner image name is invalid: ${text}`,
        stuck: true,
      };
    case 'CreateContainerError':
    case 'RunContainerError':
      return {
        reason: 'ContainerStartFailed',
        message: `the runner container cannot start: ${text}`,
        stuck: true,
      };
  }
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    return {
      reason: 'Unschedulable',
      message: `no node can run the runner pod: ${scheduled.message ?? ''}; lower spec.runner.resources or add capacity`,
      stuck: false,
    };
  }
  return undefined;
}

function jobCondition(job: V1Job, type: string) {
  return job.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

/** An evicted runner pod: most often its /tmp (an emptyDir as large as its ephemeral-storage limit) filled up. */
function evicted(pod: V1Pod): { reason: string; message: string } {
  const said = pod.status?.message?.trim() || 'no message';
  const disk = /ephemeral|emptydir|storage/i.test(said)
    ? ': raise spec.runner.resources.limits.ephemeral-storage (the /tmp scratch volume is as large as it), ' +
      'within the maximum the operator allows, or make the model smaller'
    : '';
  return { reason: 'Evicted', message: `the runner pod was evicted (${said})${disk}` };
}

/** Reads a Job and its pods: still active, or finished with what the runner (or Kubernetes) said. */
export function jobOutcome(
  job: V1Job,
  pods: V1Pod[],
  lastProblem?: { reason?: string; message?: string },
): JobOutcome {
  const pod = newestPod(pods);
  const container = pod ? runnerStatus(pod) : undefined;
  const terminated = container?.state?.terminated ?? container?.lastState?.terminated;
  const startedAt = toIso(job.status?.startTime) ?? toIso(job.metadata?.creationTimestamp);
  const complete = jobCondition(job, 'Complete') ?? jobCondition(job, 'SuccessCriteriaMet');
  const failed = jobCondition(job, 'Failed') ?? jobCondition(job, 'FailureTarget');
  if (!complete && !failed) {
    const problem = podProblem(pod);
    return { state: 'active', ...(startedAt ? { startedAt } : {}), ...(problem ? { problem } : {}) };
  }
  const finishedAt =
    toIso(job.status?.completionTime) ??
    toIso((complete ?? failed)?.lastTransitionTime) ??
    toIso(terminated?.finishedAt) ??
    new Date().toISOString();
  const terminationMessage = terminated?.message?.trim() || undefined;
  const base = {
    state: 'finished' as const,
    finishedAt,
    ...(startedAt ? { startedAt } : {}),
    ...(terminationMessage ? { terminationMessage } : {}),
    ...(terminated?.exitCode !== undefined ? { exitCode: terminated.exitCode } : {}),
  };
  if (complete) return { ...base, succeeded: true };
  if (pod?.status?.reason === 'Evicted') return { ...base, succeeded: false, ...evicted(pod) };
  if (terminated?.reason === 'OOMKilled') {
    return {
      ...base,
      succeeded: false,
      reason: 'OOMKilled',
      message:
        'the runner ran out of memory and was killed: raise spec.runner.resources.limits.memory, ' +
        'or lower spec.runner.memoryLimit so that DuckDB spills to disk earlier',
    };
  }
  const jobReason = failed?.reason;
  if (jobReason === 'DeadlineExceeded' && !terminated) {
    // The pod never ran the runner: its waiting reason (seen while it was active) is the real cause.
    if (lastProblem?.reason)
      return { ...base, succeeded: false, reason: lastProblem.reason, message: lastProblem.message };
  }
  if (jobReason === 'DeadlineExceeded') {
    return {
      ...base,
      succeeded: false,
      reason: 'DeadlineExceeded',
      message: `the run took longer than its activeDeadlineSeconds (${job.spec?.activeDeadlineSeconds ?? '?'} s) and was stopped: raise spec.runner.activeDeadlineSeconds, or make the model cheaper`,
    };
  }
  if (!terminated && lastProblem?.reason) {
    return { ...base, succeeded: false, reason: lastProblem.reason, message: lastProblem.message };
  }
  return {
    ...base,
    succeeded: false,
    reason: terminated ? 'RunnerFailed' : (jobReason ?? 'JobFailed'),
    message: terminated
      ? `the runner exited with code ${terminated.exitCode}${terminated.reason ? ` (${terminated.reason})` : ''}`
      : (failed?.message ?? 'the Job failed before the runner started'),
  };
}

/** Parses the runner's compact summary from a termination message; undefined if it is not one. */
export function parseRunSummary(message: string | undefined): RunSummary | undefined {
  if (!message) return undefined;
  try {
    const parsed = runSummary.safeParse(JSON.parse(message));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

const ZERO_COUNTS: RunCounts = {
  queried: 0,
  added: 0,
  changed: 0,
  removed: 0,
  delivered: 0,
  failed: 0,
  skipped: 0,
};

/** The finished run's record for status.lastRun and status.history. */
export function runRecordFromOutcome(
  active: RunRecord,
  outcome: Extract<JobOutcome, { state: 'finished' }>,
): { record: RunRecord; summary?: RunSummary } {
  const summary = parseRunSummary(outcome.terminationMessage);
  const base: RunRecord = {
    id: active.id,
    ...(active.job ? { job: active.job } : {}),
    ...(active.trigger ? { trigger: active.trigger } : {}),
    ...(active.fullResync !== undefined ? { fullResync: active.fullResync } : {}),
    startedAt: active.startedAt ?? outcome.startedAt,
    finishedAt: outcome.finishedAt,
  };
  if (summary) {
    // A runner that wrote a summary said what happened; a non-zero exit with a "Succeeded" summary is
    // still a failure of the run.
    const failedExit = !outcome.succeeded && summary.result !== 'Failed';
    // Stopped at its deadline, the runner committed what it delivered and said so: keep both facts.
    const deadline = summary.reason === 'Aborted' && outcome.reason === 'DeadlineExceeded';
    const message = failedExit
      ? (outcome.message ?? summary.message)
      : deadline
        ? `${outcome.message ?? 'the run reached its deadline'}; ${summary.message}`
        : summary.message;
    return {
      summary,
      record: {
        ...base,
        startedAt: summary.startedAt || base.startedAt,
        finishedAt: summary.finishedAt || base.finishedAt,
        result: failedExit ? 'Failed' : summary.result,
        ...(failedExit || deadline
          ? { reason: outcome.reason ?? 'RunnerFailed' }
          : summary.reason
            ? { reason: summary.reason }
            : {}),
        counts: summary.counts,
        message: clip(message, 4096),
        ...(summary.snapshot ? { snapshot: summary.snapshot } : {}),
      },
    };
  }
  if (outcome.succeeded) {
    return {
      record: {
        ...base,
        result: 'Succeeded',
        counts: ZERO_COUNTS,
        message: 'the runner finished but wrote no run summary; counts are unknown',
      },
    };
  }
  const partial = parsePartialReport(outcome.terminationMessage);
  if (partial && !outcome.succeeded) {
    return {
      record: { ...base, result: 'Failed', reason: partial.reason, message: clip(partial.message, 4096) },
    };
  }
  const tail =
    outcome.reason === 'RunnerFailed' && outcome.terminationMessage ? `: ${outcome.terminationMessage}` : '';
  return {
    record: {
      ...base,
      result: 'Failed',
      reason: outcome.reason ?? 'RunnerFailed',
      message: clip(`${outcome.message ?? 'the run failed'}${tail}`, 4096),
    },
  };
}

/** A runner that failed before it had a summary writes `{result, reason, message}`. */
function parsePartialReport(text: string | undefined): { reason: string; message: string } | undefined {
  if (!text) return undefined;
  try {
    const parsed = JSON.parse(text) as { reason?: unknown; message?: unknown };
    if (typeof parsed.reason === 'string' && typeof parsed.message === 'string') {
      return { reason: parsed.reason, message: parsed.message };
    }
  } catch {
    // Plain text (a log tail): not a report.
  }
  return undefined;
}

/** A connection check's answer: `{ok, reason, message}` from the runner, or the pod's failure. */
export interface CheckResult {
  ok: boolean;
  reason: string;
  message: string;
}

export function checkResultFromOutcome(outcome: Extract<JobOutcome, { state: 'finished' }>): CheckResult {
  const text = outcome.terminationMessage;
  if (text) {
    try {
      const parsed = JSON.parse(text) as Partial<CheckResult>;
      if (typeof parsed.ok === 'boolean') {
        return {
          ok: parsed.ok && outcome.succeeded,
          reason: parsed.reason ?? (parsed.ok ? 'ConnectionSucceeded' : 'ConnectionFailed'),
          message: clip(parsed.message ?? '', 4096),
        };
      }
    } catch {
      // Not JSON: FallbackToLogsOnError put the log tail there; reported below.
    }
  }
  if (outcome.succeeded)
    return { ok: true, reason: 'ConnectionSucceeded', message: 'the connection check passed' };
  return {
    ok: false,
    reason: outcome.reason === 'RunnerFailed' ? 'CheckFailed' : (outcome.reason ?? 'CheckFailed'),
    message: clip(`${outcome.message ?? 'the connection check failed'}${text ? `: ${text}` : ''}`, 4096),
  };
}
