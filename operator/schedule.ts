import { createHash } from 'node:crypto';
import { isTransientReason } from '../core/reasons.ts';
import { CronExpressionParser } from 'cron-parser';
import { scheduleProblem } from '../crds/checks.ts';
import { parseGoDuration, type AfterSyncsOnFailure, type RunRecord, type Schedule } from '../crds/index.ts';
import { SynclineError } from '../core/errors.ts';

export const RUN_REQUESTED_ANNOTATION = 'syncline.io/run-requested-at';
export const RESYNC_REQUESTED_ANNOTATION = 'syncline.io/resync-requested-at';

export type RunTrigger = NonNullable<RunRecord['trigger']>;

/** A parsed schedule that can say when it next fires after a given time. */
export interface Timetable {
  text: string;
  /** The first firing strictly after `after`. */
  nextAfter(after: Date): Date;
  /** The first firing of a brand-new Sync created at `createdAt`. */
  first(createdAt: Date): Date;
  /** The next firing after a schedule change, given the last run's start (if any). */
  afterChange(lastStart: Date | undefined, now: Date): Date;
}

/** Parses spec.schedule; undefined when the Sync runs only when triggered. Throws a SynclineError. */
export function timetable(schedule: Schedule | undefined): Timetable | undefined {
  // The same check the embedded CLI makes on resources read from files.
  const problem = scheduleProblem(schedule);
  if (problem) throw new SynclineError(problem.reason, problem.message);
  if (schedule?.interval !== undefined) {
    const intervalMs = parseGoDuration(schedule.interval) as number;
    const nextAfter = (after: Date) => new Date(after.getTime() + intervalMs);
    return {
      text: `every ${schedule.interval}`,
      nextAfter,
      // An interval Sync runs once as soon as it is created, then every interval.
      first: (createdAt) => createdAt,
      afterChange: (lastStart, now) => (lastStart ? nextAfter(lastStart) : now),
    };
  }
  if (schedule?.cron !== undefined) {
    const tz = schedule.timeZone ?? 'UTC';
    const expression = schedule.cron;
    const nextAfter = (after: Date) => {
      try {
        return CronExpressionParser.parse(expression, { currentDate: after, tz }).next().toDate();
      } catch (error) {
        throw new SynclineError(
          'InvalidSchedule',
          `schedule.cron "${expression}" cannot be evaluated: ${String(error)}`,
        );
      }
    };
    return {
      text: `cron ${expression}${schedule.timeZone ? ` (${schedule.timeZone})` : ''}`,
      nextAfter,
      first: nextAfter,
      afterChange: (_lastStart, now) => nextAfter(now),
    };
  }
  return undefined;
}

/** A firing strictly after `now`: the one after `slot`, skipping the ones an outage missed. */
export function nextSlotAfter(table: Timetable, slot: Date, now: Date): Date {
  let next = table.nextAfter(slot);
  if (next.getTime() <= now.getTime()) next = table.nextAfter(now);
  return next;
}

export interface ScheduleState {
  nextRunAt?: string;
  schedule?: string;
  handledRunRequest?: string;
  handledResyncRequest?: string;
  lastRun?: RunRecord;
  /** Finished runs, newest first (the last run first). */
  history?: RunRecord[];
  skippedRuns?: number;
}

export interface DependencyState {
  name: string;
  lastSuccessfulRunAt?: string;
  /** When its last run finished, whatever the result (status.lastRun.finishedAt): for onFailure continue. */
  lastFinishedRunAt?: string;
}

export interface ScheduleInput {
  now: Date;
  createdAt: Date;
  schedule: Schedule | undefined;
  paused: boolean;
  annotations: Record<string, string> | undefined;
  status: ScheduleState;
  /** A run of this Sync is active (its Job has not finished). */
  active: boolean;
  /** The run key of the active run, if known; a due slot that is that run is not a skipped run. */
  activeKey?: string;
  /** The Sync cannot run now (invalid spec, references not ready); due runs are not started. */
  blocked: boolean;
  /** The resolved Syncs it runs after (afterSyncs, or spec.dependsOn); undefined when it has none. */
  dependencies?: DependencyState[];
  /** afterSyncs.onFailure: stop (the default, and dependsOn's) waits for successes, continue for any finish. */
  dependenciesOnFailure?: AfterSyncsOnFailure;
  /** When the last run, failed for a transient reason, is retried (see transientRetry). */
  retry?: RetryDue;
}

export interface RetryDue {
  at: Date;
  /** Names the retry's Job: the same on every replica and reconcile. */
  key: string;
}

/** The backoff between retries of runs that failed for a transient reason: doubling from the base to the cap. */
export const RETRY_BASE_MS = 30_000;
export const RETRY_CAP_MS = 15 * 60_000;

/**
 * When a run that failed for a transient reason (core/reasons.ts: a lease held, a source unreachable, a
 * stopped run with a backlog left) is tried again: RETRY_BASE_MS after it finished, doubling with each
 * transient failure in a row, at most RETRY_CAP_MS; undefined for a success or a failure that needs a
 * person (those wait for the schedule, or for the change that fixes them).
 */
export function transientRetry(status: Pick<ScheduleState, 'lastRun' | 'history'>): RetryDue | undefined {
  const last = status.lastRun;
  if (!last || last.result !== 'Failed' || !isTransientReason(last.reason ?? 'RunFailed')) return undefined;
  const finished = Date.parse(last.finishedAt ?? last.startedAt ?? '');
  if (Number.isNaN(finished)) return undefined;
  const runs = status.history?.length ? status.history : [last];
  let inARow = 0;
  while (
    inARow < runs.length &&
    runs[inARow]?.result === 'Failed' &&
    isTransientReason(runs[inARow]?.reason ?? 'RunFailed')
  )
    inARow++;
  const delay = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(20, Math.max(0, inARow - 1)));
  return { at: new Date(finished + delay), key: `t-${shortHash(last.id)}` };
}

export interface RunStart {
  trigger: RunTrigger;
  fullResync: boolean;
  /** When the run was due: the schedule slot, or now for a request. */
  scheduledAt: Date;
  /** Stable across reconciles and operator replicas: it names the Job, so a second create is a no-op. */
  key: string;
}

export interface ScheduleDecision {
  start?: RunStart;
  /** The schedule in words, as status.schedule shows it. */
  text: string;
  nextRunAt?: Date;
  /** Due runs skipped now because one was active. */
  skipped: number;
  handledRunRequest?: string;
  handledResyncRequest?: string;
  /** Reconcile again after this long (the next slot, or a retry), if anything is scheduled. */
  requeueAfterMs?: number;
  /** When the last run, failed for a transient reason, is tried again. */
  retryAt?: Date;
}

/**
 * Decides whether a Sync starts a run now and when its next run is due. Pure: everything it needs is
 * in the input, so every operator replica computes the same answer, and the run key (hence the Job
 * name) is the same on all of them.
 */
export function decide(input: ScheduleInput): ScheduleDecision {
  const { now, status } = input;
  let table: Timetable | undefined;
  try {
    table = timetable(input.schedule);
  } catch (error) {
    // An invalid schedule is reported by validation (which blocks the Sync); nothing is scheduled.
    if (!input.blocked) throw error;
  }
  const baseText = scheduleText(table, input.schedule, input.dependencies !== undefined);
  const text = input.paused ? `${baseText} (paused)` : baseText;
  const decision: ScheduleDecision = {
    text,
    skipped: 0,
    handledRunRequest: status.handledRunRequest,
    handledResyncRequest: status.handledResyncRequest,
  };

  let slot: Date | undefined;
  if (table && !input.paused) {
    const stored = status.nextRunAt ? new Date(status.nextRunAt) : undefined;
    if (stored && !Number.isNaN(stored.getTime()) && status.schedule === text) slot = stored;
    else if (!status.lastRun && !status.nextRunAt) slot = table.first(input.createdAt);
    else
      slot = table.afterChange(
        status.lastRun?.startedAt ? new Date(status.lastRun.startedAt) : undefined,
        now,
      );
  }
  const slotDue = slot !== undefined && slot.getTime() <= now.getTime();

  const runRequest = input.annotations?.[RUN_REQUESTED_ANNOTATION];
  const resyncRequest = input.annotations?.[RESYNC_REQUESTED_ANNOTATION];
  const runPending = !!runRequest && runRequest !== status.handledRunRequest;
  const resyncPending = !!resyncRequest && resyncRequest !== status.handledResyncRequest;

  if (input.blocked && !input.active) {
    // A Sync that cannot run yet (a reference not Ready, an invalid spec) keeps its due run pending and
    // starts it once when it can: the events of what it waits for bring it back, not a timer.
    if (slot && slotDue) {
      decision.nextRunAt = slot;
      return decision;
    }
    return withNext(decision, slot, now);
  }
  if (input.paused || input.active) {
    if (slot && slotDue) {
      // A due run that cannot start is counted as skipped when one is active, and moved past now, so
      // that a long run leads to one run afterwards, not a burst.
      if (input.active && !input.paused && input.activeKey !== slotKey(slot)) decision.skipped = 1;
      slot = nextSlotAfter(table as Timetable, slot, now);
    }
    return withNext(decision, slot, now);
  }

  if (resyncPending) {
    decision.start = {
      trigger: requestTrigger(resyncRequest, 'resync'),
      fullResync: true,
      scheduledAt: now,
      key: `r-${shortHash(resyncRequest)}`,
    };
    decision.handledResyncRequest = resyncRequest;
    // A full resync also satisfies a pending manual request.
    if (runPending) decision.handledRunRequest = runRequest;
  } else if (runPending) {
    decision.start = {
      trigger: requestTrigger(runRequest, 'manual'),
      fullResync: false,
      scheduledAt: now,
      key: `m-${shortHash(runRequest)}`,
    };
    decision.handledRunRequest = runRequest;
  } else {
    const start = unrequestedStart(input, slot && slotDue ? slot : undefined);
    if (start) decision.start = start;
  }
  if (decision.start && slot && slotDue) slot = nextSlotAfter(table as Timetable, slot, now);
  return withRetry(withNext(decision, slot, now), decision.start ? undefined : input.retry, now);
}

/**
 * What started a requested run: the run API, a webhook and a sequence write values with their own prefix
 * (operator/api/ledger.ts); anything else (a timestamp from kubectl) is a person's request.
 */
export function requestTrigger(value: string, fallback: RunTrigger): RunTrigger {
  const prefix = /^(api|webhook|sequence)-/.exec(value)?.[1];
  return (prefix as RunTrigger | undefined) ?? fallback;
}

/** The run due without a request, by precedence: the schedule slot, a retry, the dependencies. */
function unrequestedStart(input: ScheduleInput, dueSlot: Date | undefined): RunStart | undefined {
  const { now } = input;
  if (dueSlot) return { trigger: 'schedule', fullResync: false, scheduledAt: dueSlot, key: slotKey(dueSlot) };
  if (input.retry && input.retry.at.getTime() <= now.getTime())
    return { trigger: 'retry', fullResync: false, scheduledAt: input.retry.at, key: input.retry.key };
  const onFailure = input.dependenciesOnFailure ?? 'stop';
  if (input.dependencies && dependenciesSatisfied(input.dependencies, input.status.lastRun, onFailure)) {
    // The times that satisfied the rule name the run: the same on every replica, a new one per round.
    const stamp = input.dependencies.map((d) => `${d.name}=${dependencyTime(d, onFailure)}`).join(',');
    return { trigger: 'dependency', fullResync: false, scheduledAt: now, key: `d-${shortHash(stamp)}` };
  }
  return undefined;
}

/** A retry still to come brings the Sync back then, if that is before its next slot. */
function withRetry(decision: ScheduleDecision, retry: RetryDue | undefined, now: Date): ScheduleDecision {
  if (!retry || retry.at.getTime() <= now.getTime()) return decision;
  const wait = retry.at.getTime() - now.getTime();
  decision.retryAt = retry.at;
  decision.requeueAfterMs = Math.min(decision.requeueAfterMs ?? wait, wait);
  return decision;
}

/**
 * Every dependency has succeeded (onFailure stop) or finished, whatever the result (continue), since this
 * Sync's last run started (or at all, if it never ran).
 */
export function dependenciesSatisfied(
  dependencies: DependencyState[],
  lastRun: RunRecord | undefined,
  onFailure: AfterSyncsOnFailure = 'stop',
): boolean {
  if (dependencies.length === 0) return false;
  const since = lastRun?.startedAt ? new Date(lastRun.startedAt).getTime() : -Infinity;
  return dependencies.every((d) => {
    const at = dependencyTime(d, onFailure);
    return at !== undefined && new Date(at).getTime() > since;
  });
}

/** The time of a dependency that counts: its last success, or (continue) its last finish of any result. */
function dependencyTime(d: DependencyState, onFailure: AfterSyncsOnFailure): string | undefined {
  if (onFailure === 'stop') return d.lastSuccessfulRunAt;
  const times = [d.lastFinishedRunAt, d.lastSuccessfulRunAt].filter((t): t is string => !!t);
  return times.sort((a, b) => Date.parse(b) - Date.parse(a))[0];
}

/** The webhook triggers in words, at most two named; undefined when there are none. */
function eventsText(schedule: Schedule | undefined): string | undefined {
  const events = (schedule?.triggers ?? []).flatMap((t) => {
    if (t.dbtCloud) return [`dbt Cloud job ${t.dbtCloud.jobId}`];
    if (t.fivetran) return [`Fivetran connector ${t.fivetran.connectorId}`];
    return [];
  });
  if (events.length === 0) return undefined;
  const named = events.slice(0, 2).join(', ');
  return `on ${named}${events.length > 2 ? ` and ${events.length - 2} more` : ''}`;
}

/** The schedule in words: the interval or cron (else after dependencies), and the webhook triggers. */
function scheduleText(
  table: Timetable | undefined,
  schedule: Schedule | undefined,
  hasDependencies: boolean,
): string {
  const primary = table?.text ?? (hasDependencies ? 'after dependencies' : undefined);
  return [primary, eventsText(schedule)].filter(Boolean).join(', ') || 'manual';
}

function withNext(decision: ScheduleDecision, slot: Date | undefined, now: Date): ScheduleDecision {
  if (slot) {
    decision.nextRunAt = slot;
    decision.requeueAfterMs = Math.max(0, slot.getTime() - now.getTime());
  }
  return decision;
}

export function slotKey(slot: Date): string {
  return `s-${Math.floor(slot.getTime() / 1000).toString(36)}`;
}

export function shortHash(text: string, length = 10): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}
