import { randomBytes } from 'node:crypto';
import type { RunView, Sync } from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import { RESYNC_REQUESTED_ANNOTATION, RUN_REQUESTED_ANNOTATION } from '../schedule.ts';
import type { ApiKube } from './kube.ts';
import {
  pendingRequest,
  readLedger,
  requestRunId,
  RUN_REQUESTS_ANNOTATION,
  withEntry,
  type LedgerEntry,
} from './ledger.ts';
import { viewRun } from './run-view.ts';

export interface RunRequest {
  namespace: string;
  name: string;
  fullResync: boolean;
  trigger: 'api' | 'webhook' | 'sequence' | 'manual';
  /** Who asks: a Kubernetes username, `webhook:<name>` or `sequence:<name>`. */
  caller: string;
  /** requestKey() of the caller's Idempotency-Key or a webhook's delivery id. */
  key?: string;
  now?: () => Date;
}

export interface RunRequestOutcome {
  run: RunView;
  /** A new request value was written; false when it joined a pending run or replayed an earlier request. */
  created: boolean;
  /** The same key asked before: the answer is the run that request named. */
  replayed: boolean;
}

/** What a request needs of the API server: the Sync, read live, and the conditioned annotation write. */
export type RequestKube = Pick<ApiKube, 'getSync' | 'patchSyncAnnotations'>;

/** Attempts at the optimistic write before giving up (each conflict means the Sync changed meanwhile). */
const CONFLICT_ATTEMPTS = 8;

/**
 * Requests a run of a Sync the way a person does (the run-requested-at or resync-requested-at annotation),
 * with the request recorded in the Sync's ledger, in one write conditioned on the resourceVersion read.
 * The leader's reconciler starts the run as it starts any requested run: one active run per Sync, a Job
 * with a deterministic name, status written back. A request while another is pending joins it (one run
 * serves both); a retry with the same key names the same run and writes nothing.
 */
export async function requestRun(kube: RequestKube, request: RunRequest): Promise<RunRequestOutcome> {
  for (let attempt = 0; attempt < CONFLICT_ATTEMPTS; attempt++) {
    const sync = await kube.getSync(request.namespace, request.name);
    if (!sync) throw notFound(request);
    const answer = planRequest(sync, request, (request.now ?? (() => new Date()))());
    if (!answer.write) return answer.outcome;
    const outcome = await kube.patchSyncAnnotations(
      request.namespace,
      request.name,
      answer.write,
      sync.metadata.resourceVersion ?? '',
    );
    if (outcome === 'gone') throw notFound(request);
    if (outcome === 'patched') return answer.outcome;
  }
  throw new SynclineError(
    'RequestConflict',
    `Sync ${request.namespace}/${request.name} kept changing while the run was requested; try again`,
    { retryable: true },
  );
}

interface PlannedRequest {
  outcome: RunRequestOutcome;
  write?: Record<string, string | null>;
}

/** What a request does to a Sync as read: the answer, and the annotations to write (none for a replay). */
export function planRequest(sync: Sync, request: RunRequest, now: Date): PlannedRequest {
  const ledger = readLedger(sync);
  const replay = request.key ? ledger.find((e) => e.key === request.key) : undefined;
  if (replay) {
    if ((replay.resync ?? false) !== request.fullResync)
      throw new SynclineError(
        'IdempotencyKeyReused',
        `the Idempotency-Key was used for a request with fullResync=${String(replay.resync ?? false)}; use a new key for a different request`,
      );
    return { outcome: { run: viewOrPending(sync, replay), created: false, replayed: true } };
  }
  const pending = pendingRequest(sync);
  const joins = pending && (pending.resync || !request.fullResync);
  const value = joins ? undefined : `${request.trigger}-${request.key ?? randomBytes(12).toString('hex')}`;
  const id = joins ? pending.id : requestRunId(sync.metadata.name, value as string, request.fullResync);
  const entry: LedgerEntry = {
    id,
    ...(value ? { value } : {}),
    ...(request.fullResync ? { resync: true } : {}),
    trigger: request.trigger,
    at: now.toISOString(),
    by: request.caller,
    ...(request.key ? { key: request.key } : {}),
  };
  const write: Record<string, string | null> = {
    [RUN_REQUESTS_ANNOTATION]: JSON.stringify(withEntry(ledger, entry, now)),
  };
  if (value) write[request.fullResync ? RESYNC_REQUESTED_ANNOTATION : RUN_REQUESTED_ANNOTATION] = value;
  const after = {
    ...sync,
    metadata: { ...sync.metadata, annotations: { ...sync.metadata.annotations, ...write } },
  };
  return { outcome: { run: viewOrPending(after as Sync, entry), created: !joins, replayed: false }, write };
}

function viewOrPending(sync: Sync, entry: LedgerEntry): RunView {
  return (
    viewRun(sync, entry.id) ?? {
      namespace: sync.metadata.namespace ?? 'default',
      sync: sync.metadata.name,
      id: entry.id,
      phase: 'Pending',
      trigger: entry.trigger,
      requestedAt: entry.at,
    }
  );
}

function notFound(request: Pick<RunRequest, 'namespace' | 'name'>): SynclineError {
  return new SynclineError('SyncNotFound', `no Sync ${request.name} in namespace ${request.namespace}`);
}
