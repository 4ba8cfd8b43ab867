import { clip } from '../core/text.ts';
import type { Condition } from '../crds/index.ts';

export type ConditionStatus = Condition['status'];

/** The condition types Syncline writes. Reconciling and Stalled are kstatus' "abnormal-true" types. */
export const READY = 'Ready';
export const RECONCILING = 'Reconciling';
export const STALLED = 'Stalled';
export const RUNNING = 'Running';

/** What a reconciler wants a condition to say; the time and generation are filled in by setCondition. */
export interface DesiredCondition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/**
 * Returns the conditions with `desired` set. `lastTransitionTime` moves only when the status changes
 * (API conventions); a change of reason or message alone keeps the old time.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  desired: DesiredCondition,
  generation: number | undefined,
  now: Date,
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === desired.type);
  const previous = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    type: desired.type,
    status: desired.status,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    lastTransitionTime:
      previous && previous.status === desired.status ? previous.lastTransitionTime : now.toISOString(),
    reason: desired.reason,
    message: clip(desired.message, 32_768),
  };
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

/**
 * Applies kstatus' abnormal-true pattern for Reconciling and Stalled: present while True, removed
 * otherwise, so `kubectl wait --for=condition=Ready` and kstatus readers see a plain current state.
 */
export function setAbnormalCondition(
  conditions: readonly Condition[] | undefined,
  type: typeof RECONCILING | typeof STALLED,
  active: { reason: string; message: string } | undefined,
  generation: number | undefined,
  now: Date,
): Condition[] {
  if (!active) return removeCondition(conditions, type);
  return setCondition(conditions, { type, status: 'True', ...active }, generation, now);
}

/** Ready, plus Reconciling/Stalled as kstatus reads them, in one go. */
export interface ConditionSet {
  ready: Omit<DesiredCondition, 'type'>;
  reconciling?: { reason: string; message: string };
  stalled?: { reason: string; message: string };
}

export function applyConditionSet(
  conditions: readonly Condition[] | undefined,
  set: ConditionSet,
  generation: number | undefined,
  now: Date,
): Condition[] {
  let next = setCondition(conditions, { type: READY, ...set.ready }, generation, now);
  next = setAbnormalCondition(next, RECONCILING, set.reconciling, generation, now);
  next = setAbnormalCondition(next, STALLED, set.stalled, generation, now);
  return next;
}

/** The Ready transitions worth an Event: a new status or a new reason. */
export function readyTransition(
  before: readonly Condition[] | undefined,
  after: readonly Condition[] | undefined,
): Condition | undefined {
  const a = findCondition(before, READY);
  const b = findCondition(after, READY);
  if (!b) return undefined;
  if (!a || a.status !== b.status || a.reason !== b.reason) return b;
  return undefined;
}
