import type {
  ConsoleRun,
  ConsoleSyncDetail,
  ConsoleSyncItem,
  RunRecord,
  RunView,
  Sync,
} from '../../crds/index.ts';
import { listRuns } from './run-view.ts';

/** The Ready condition as the console shows it: Unknown until the operator has written one. */
function readyOf(sync: Sync): ConsoleSyncItem['ready'] {
  const ready = sync.status?.conditions?.find((c) => c.type === 'Ready');
  if (!ready) return { status: 'Unknown' };
  return {
    status: ready.status,
    ...(ready.reason ? { reason: ready.reason } : {}),
    ...(ready.message ? { message: ready.message } : {}),
  };
}

function lastRunOf(record: RunRecord | undefined): ConsoleSyncItem['lastRun'] {
  if (!record) return undefined;
  return {
    id: record.id,
    ...(record.result ? { result: record.result } : {}),
    ...(record.startedAt ? { startedAt: record.startedAt } : {}),
    ...(record.finishedAt ? { finishedAt: record.finishedAt } : {}),
    ...(record.counts ? { counts: record.counts } : {}),
    ...(record.reason ? { reason: record.reason } : {}),
  };
}

/** One Sync in the console's list. */
export function syncItem(sync: Sync, canTrigger: boolean): ConsoleSyncItem {
  const status = sync.status ?? {};
  const lastRun = lastRunOf(status.lastRun ?? status.history?.[0]);
  return {
    namespace: sync.metadata.namespace ?? 'default',
    name: sync.metadata.name,
    ready: readyOf(sync),
    ...(status.phase ? { phase: status.phase } : {}),
    ...(status.schedule ? { schedule: status.schedule } : {}),
    paused: sync.spec.paused === true,
    ...(lastRun ? { lastRun } : {}),
    ...(status.nextRunAt ? { nextRunAt: status.nextRunAt } : {}),
    model: sync.spec.modelRef.name,
    destination: sync.spec.destinationRef.name,
    mode: sync.spec.mode,
    canTrigger,
  };
}

/** How long a run took, when it has started and finished (never negative: clocks of two replicas). */
export function durationOf(view: Pick<RunView, 'startedAt' | 'finishedAt'>): number | undefined {
  const started = Date.parse(view.startedAt ?? '');
  const finished = Date.parse(view.finishedAt ?? '');
  if (Number.isNaN(started) || Number.isNaN(finished)) return undefined;
  return Math.max(0, finished - started);
}

function withDuration(view: RunView): ConsoleRun {
  const durationMs = durationOf(view);
  return durationMs === undefined ? view : { ...view, durationMs };
}

/** One Sync with its conditions and its runs (pending, active, then history newest first). */
export function syncDetail(sync: Sync, canTrigger: boolean): ConsoleSyncDetail {
  const status = sync.status ?? {};
  return {
    ...syncItem(sync, canTrigger),
    conditions: status.conditions ?? [],
    ...(status.lastSuccessfulRunAt ? { lastSuccessfulRunAt: status.lastSuccessfulRunAt } : {}),
    ...(status.skippedRuns !== undefined ? { skippedRuns: status.skippedRuns } : {}),
    runs: listRuns(sync).map(withDuration),
  };
}

/** Syncs grouped by namespace, in name order (the list answer's order). */
export function byNamespace(syncs: Sync[]): Map<string, Sync[]> {
  const groups = new Map<string, Sync[]>();
  const sorted = [...syncs].sort((a, b) => {
    const na = a.metadata.namespace ?? 'default';
    const nb = b.metadata.namespace ?? 'default';
    return na !== nb ? (na < nb ? -1 : 1) : a.metadata.name < b.metadata.name ? -1 : 1;
  });
  for (const sync of sorted) {
    const namespace = sync.metadata.namespace ?? 'default';
    const group = groups.get(namespace) ?? [];
    group.push(sync);
    groups.set(namespace, group);
  }
  return groups;
}
