import type { Condition } from '../crds/index.ts';
import { applyConditionSet, findCondition, READY, setCondition } from './conditions.ts';
import type { ConditionSet, DesiredCondition } from './conditions.ts';
import { statusPatch, type SynclinePlural } from './cluster.ts';
import type { ReconcileContext } from './context.ts';
import type { EventTarget } from './events.ts';

/** The part of a status every kind shares. */
export interface CommonStatus {
  observedGeneration?: number;
  conditions?: Condition[];
}

/** What a reconciler hands the status writer. */
export interface StatusWrite<S extends CommonStatus> {
  plural: SynclinePlural;
  object: EventTarget & { metadata: { generation?: number } };
  /** The status as read from the cache. */
  before: S;
  /** The status to write, apart from `observedGeneration` and `conditions`, which the writer sets. */
  after: S;
  /** Ready, Reconciling and Stalled; undefined keeps the conditions, observed at this generation. */
  set?: ConditionSet;
  /** Conditions besides those three (the Sync's Running). */
  extra?: DesiredCondition[];
  /** Only these keys are the caller's: others (written by another reconciler meanwhile) are left alone. */
  keys?: readonly (keyof S & string)[];
  /**
   * Ready reasons this reconcile announces with an Event of its own (a finished run's RunSucceeded or
   * RunFailed): a transition to one of them gets no second Event.
   */
  announced?: Iterable<string>;
  /** Compute the status but do not write it (the Sync's deferred start; see sync.ts). */
  defer?: boolean;
}

export interface StatusWritten<S> {
  /** The status as written (or as it would be, when deferred). */
  status: S;
  /** Whether a patch was sent. */
  written: boolean;
}

/** The conditions of `after`: the set applied over `before`'s, every one observed at `generation`. */
export function nextConditions(
  before: readonly Condition[] | undefined,
  set: ConditionSet | undefined,
  extra: readonly DesiredCondition[],
  generation: number | undefined,
  now: Date,
): Condition[] | undefined {
  if (!set && extra.length === 0) {
    // Nothing new to say: the conditions stand, as observed at this generation.
    return before?.map((c) => ({
      ...c,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    }));
  }
  let conditions = set ? applyConditionSet(before, set, generation, now) : [...(before ?? [])];
  for (const condition of extra) conditions = setCondition(conditions, condition, generation, now);
  return conditions;
}

/**
 * The one rule for status Events, for every kind: after a status write, a change of `Ready`'s status or
 * reason is an Event — Normal when Ready is True, Warning when False, none while Unknown (work in
 * progress, not a state) — unless the reconciler announces that reason itself in the same reconcile.
 * A repeat of the same state is never an Event (the recorder also aggregates repeats).
 */
export function transitionEvent(
  before: readonly Condition[] | undefined,
  after: readonly Condition[] | undefined,
  announced: ReadonlySet<string> = new Set(),
): { type: 'Normal' | 'Warning'; reason: string; message: string } | undefined {
  const a = findCondition(before, READY);
  const b = findCondition(after, READY);
  if (!b || b.status === 'Unknown') return undefined;
  if (a && a.status === b.status && a.reason === b.reason) return undefined;
  if (announced.has(b.reason)) return undefined;
  return { type: b.status === 'True' ? 'Normal' : 'Warning', reason: b.reason, message: b.message };
}

/**
 * Writes the status of a Syncline object: sets observedGeneration and the conditions (lastTransitionTime
 * only on transitions), merge-patches the status subresource with the resourceVersion it was computed
 * from (a conflict fails the reconcile, which requeues the key), only when something changed, and then
 * records the transition's Event by `transitionEvent`'s rule.
 */
export async function writeStatus<S extends CommonStatus>(
  ctx: Pick<ReconcileContext, 'cluster' | 'events' | 'now'>,
  write: StatusWrite<S>,
): Promise<StatusWritten<S>> {
  const { object, before } = write;
  const generation = object.metadata.generation;
  const conditions = nextConditions(before.conditions, write.set, write.extra ?? [], generation, ctx.now());
  const status: S = { ...write.after, observedGeneration: generation };
  if (conditions) status.conditions = conditions;
  else delete status.conditions;
  if (write.defer) return { status, written: false };
  const pick = (s: S): Record<string, unknown> => {
    if (!write.keys) return s as Record<string, unknown>;
    const keys = [...write.keys, 'observedGeneration', 'conditions'] as (keyof S & string)[];
    return Object.fromEntries(keys.map((k) => [k, s[k]]));
  };
  const patch = statusPatch(pick(before), pick(status));
  if (!patch) return { status, written: false };
  await ctx.cluster.patchStatus(
    write.plural,
    object.metadata.namespace ?? 'default',
    object.metadata.name,
    patch,
    object.metadata.resourceVersion,
  );
  const event = transitionEvent(before.conditions, status.conditions, new Set(write.announced ?? []));
  if (event?.type === 'Normal') ctx.events.normal(object, event.reason, event.message);
  else if (event) ctx.events.warning(object, event.reason, event.message);
  return { status, written: true };
}
