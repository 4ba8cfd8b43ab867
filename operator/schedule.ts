import { createHash } from 'node:crypto';
import { CronExpressionParser } from 'cron-parser';
import { scheduleProblem } from '../crds/checks.ts';
import { parseGoDuration, type RunRecord, type Schedule } from '../crds/index.ts';
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
  skippedRuns?: number;
}

export interface DependencyState {
  name: string;
  lastSuccessfulRunAt?: string;
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
  /** Resolved spec.dependsOn; undefined when the Sync has none. */
  dependencies?: DependencyState[];
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
  /** Reconcile again after this long (the next slot), if anything is scheduled. */
  requeueAfterMs?: number;
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
  const baseText = table?.text ?? (input.dependencies ? 'after dependencies' : 'manual');
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
      trigger: 'resync',
      fullResync: true,
      scheduledAt: now,
      key: `r-${shortHash(resyncRequest)}`,
    };
    decision.handledResyncRequest = resyncRequest;
    // A full resync also satisfies a pending manual request.
    if (runPending) decision.handledRunRequest = runRequest;
  } else if (runPending) {
    decision.start = {
      trigger: 'manual',
      fullResync: false,
      scheduledAt: now,
      key: `m-${shortHash(runRequest)}`,
    };
    decision.handledRunRequest = runRequest;
  } else if (slot && slotDue) {
    decision.start = {
      trigger: 'schedule',
      fullResync: false,
      scheduledAt: slot,
      key: slotKey(slot),
    };
  } else if (input.dependencies && dependenciesSatisfied(input.dependencies, status.lastRun)) {
    const stamp = input.dependencies.map((d) => `${d.name}=${d.lastSuccessfulRunAt}`).join(',');
    decision.start = {
      trigger: 'dependency',
      fullResync: false,
      scheduledAt: now,
      key: `d-${shortHash(stamp)}`,
    };
  }
  if (decision.start && slot && slotDue) slot = nextSlotAfter(table as Timetable, slot, now);
  return withNext(decision, slot, now);
}

/** Every dependency has succeeded since this Sync's last run started (or at all, if it never ran). */
export function dependenciesSatisfied(
  dependencies: DependencyState[],
  lastRun: RunRecord | undefined,
): boolean {
  if (dependencies.length === 0) return false;
  const since = lastRun?.startedAt ? new Date(lastRun.startedAt).getTime() : -Infinity;
  return dependencies.every(
    (d) => d.lastSuccessfulRunAt !== undefined && new Date(d.lastSuccessfulRunAt).getTime() > since,
  );
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
