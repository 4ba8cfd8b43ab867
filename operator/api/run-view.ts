import type { RunRecord, RunView, Sync } from '../../crds/index.ts';
import { requestTrigger } from '../schedule.ts';
import { readLedger, pendingRequest, type LedgerEntry, type PendingRequest } from './ledger.ts';

/** A finished or active run record as the API shows it. */
function fromRecord(sync: Sync, record: RunRecord, active: boolean, requestedAt?: string): RunView {
  return {
    namespace: sync.metadata.namespace ?? 'default',
    sync: sync.metadata.name,
    id: record.id,
    phase: active ? 'Running' : (record.result ?? 'Failed'),
    ...(record.trigger ? { trigger: record.trigger } : {}),
    ...(record.fullResync !== undefined ? { fullResync: record.fullResync } : {}),
    ...(requestedAt ? { requestedAt } : {}),
    ...(record.startedAt ? { startedAt: record.startedAt } : {}),
    ...(!active && record.finishedAt ? { finishedAt: record.finishedAt } : {}),
    ...(record.reason ? { reason: record.reason } : {}),
    ...(record.message ? { message: record.message } : {}),
    ...(record.counts ? { counts: record.counts } : {}),
  };
}

/** Runs the Sync's status knows, the active one first, then newest first. */
function knownRuns(sync: Sync): { record: RunRecord; active: boolean }[] {
  const status = sync.status ?? {};
  const finished = status.history?.length ? status.history : status.lastRun ? [status.lastRun] : [];
  return [
    ...(status.activeRun ? [{ record: status.activeRun, active: true }] : []),
    ...finished.map((record) => ({ record, active: false })),
  ];
}

function requestedAtOf(ledger: LedgerEntry[], id: string): string | undefined {
  return ledger.find((e) => e.id === id)?.at;
}

/**
 * One run of a Sync by ID, from its status and its request ledger; undefined when neither knows it (a
 * wrong ID, or a run older than the history keeps).
 */
export function viewRun(sync: Sync, id: string): RunView | undefined {
  const ledger = readLedger(sync);
  const known = knownRuns(sync).find((r) => r.record.id === id);
  if (known) return fromRecord(sync, known.record, known.active, requestedAtOf(ledger, id));
  const pending = pendingRequest(sync);
  const entry = ledger.find((e) => e.id === id);
  if (pending?.id === id) return pendingView(sync, id, entry, pending);
  if (!entry) return undefined;
  // Handled, yet no run of that ID: a full resync requested beside it covered it (schedule.ts marks a
  // pending run request handled by the resync run).
  const cover = coveringRun(sync, entry);
  return {
    ...pendingView(sync, id, entry, { resync: entry.resync ?? false, value: entry.value ?? '' }),
    phase: 'Superseded',
    ...(cover ? { supersededBy: cover } : {}),
  };
}

function pendingView(
  sync: Sync,
  id: string,
  entry: LedgerEntry | undefined,
  { resync, value }: Pick<PendingRequest, 'resync' | 'value'>,
): RunView {
  return {
    namespace: sync.metadata.namespace ?? 'default',
    sync: sync.metadata.name,
    id,
    phase: 'Pending',
    trigger: entry?.trigger ?? requestTrigger(value, resync ? 'resync' : 'manual'),
    fullResync: resync,
    ...(entry ? { requestedAt: entry.at } : {}),
  };
}

/** The earliest run that started at or after the request and was itself requested (resync, api, ...). */
function coveringRun(sync: Sync, entry: LedgerEntry): string | undefined {
  const since = Date.parse(entry.at);
  const candidates = knownRuns(sync)
    .map((r) => r.record)
    .filter((r) => r.fullResync && Date.parse(r.startedAt ?? '') >= since - 1000)
    .sort((a, b) => Date.parse(a.startedAt ?? '') - Date.parse(b.startedAt ?? ''));
  return candidates[0]?.id;
}

/** Every run of a Sync the API can name: the pending request first, then the active run, then history. */
export function listRuns(sync: Sync): RunView[] {
  const pending = pendingRequest(sync);
  const ledger = readLedger(sync);
  const views: RunView[] = [];
  if (pending)
    views.push(
      pendingView(
        sync,
        pending.id,
        ledger.find((e) => e.id === pending.id),
        pending,
      ),
    );
  for (const { record, active } of knownRuns(sync))
    views.push(fromRecord(sync, record, active, requestedAtOf(ledger, record.id)));
  return views;
}
