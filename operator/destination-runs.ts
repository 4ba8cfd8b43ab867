// Runs of several Syncs against one Destination share its limit: at most `rateLimit.maxConcurrentRuns`
// of them are active at once (default 1 where the connector says its API quota is shared by every run
// of an account, `capabilities.sharedQuota`; unbounded otherwise). A due run of one more waits, pending,
// and starts when one ends (the Job's informer event brings the waiting Syncs back). See operator/README.md
// for why runs are bounded rather than the request budget split between them.
import type { V1Job } from '@kubernetes/client-node';
import type { Destination, Sync } from '../crds/index.ts';
import type { DestinationCapabilities } from '../core/connectors.ts';
import type { Store } from './context.ts';
import { COMPONENT_LABEL, SYNC_LABEL } from './jobs.ts';
import { jobOutcome } from './results.ts';
import { ownedBy } from './sync-run.ts';

/** How long a Job this process created counts as active before the informer's cache shows it. */
const RESERVATION_MS = 2 * 60_000;

/** The most runs of Syncs to `destination` at once; undefined when unbounded. */
export function maxConcurrentRuns(
  destination: Destination,
  capabilities: Pick<DestinationCapabilities, 'sharedQuota'> | undefined,
): number | undefined {
  return destination.spec.rateLimit?.maxConcurrentRuns ?? (capabilities?.sharedQuota ? 1 : undefined);
}

/** An active run of another Sync to the same Destination. */
export interface ActiveRun {
  sync: string;
  job: string;
}

/**
 * The runs a Sync's due run waits for: the active runs of the other Syncs to its Destination, when there
 * are `limit` or more of them; undefined when it may start. Active means a run Job of that Sync that has
 * not finished, in the cache or created by this process a moment ago (`reserved`, not in the cache yet).
 */
export function runsToWaitFor(input: {
  sync: Sync;
  limit: number | undefined;
  siblings: readonly Sync[];
  jobsOf: (sync: Sync) => V1Job[];
  reserved: readonly ActiveRun[];
  jobDeleted: (job: string) => boolean;
}): ActiveRun[] | undefined {
  if (input.limit === undefined) return undefined;
  const active: ActiveRun[] = [];
  const known = new Set<string>();
  for (const sibling of input.siblings) {
    if (sibling.metadata.name === input.sync.metadata.name) continue;
    for (const job of input.jobsOf(sibling)) {
      const name = job.metadata?.name ?? '';
      known.add(name);
      if (jobOutcome(job, []).state === 'active') active.push({ sync: sibling.metadata.name, job: name });
    }
  }
  for (const run of input.reserved) {
    if (run.sync === input.sync.metadata.name || known.has(run.job) || input.jobDeleted(run.job)) continue;
    active.push(run);
  }
  return active.length >= input.limit ? active : undefined;
}

/**
 * What this process knows beyond the cache: the run Jobs it just created per Destination (a second
 * reconcile in the same moment must count them before their watch events arrive) and the Syncs whose
 * due run waits for one, to bring back when a run of that Destination ends.
 */
export class DestinationRuns {
  private readonly reserved = new Map<string, Map<string, { sync: string; at: number }>>();
  private readonly waiting = new Map<string, Set<string>>();

  reservedFor(destinationKey: string, nowMs: number): ActiveRun[] {
    const runs = this.reserved.get(destinationKey);
    if (!runs) return [];
    const out: ActiveRun[] = [];
    for (const [job, { sync, at }] of runs) {
      if (nowMs - at > RESERVATION_MS) runs.delete(job);
      else out.push({ sync, job });
    }
    if (runs.size === 0) this.reserved.delete(destinationKey);
    return out;
  }

  reserve(destinationKey: string, run: ActiveRun, nowMs: number): void {
    let runs = this.reserved.get(destinationKey);
    if (!runs) this.reserved.set(destinationKey, (runs = new Map()));
    runs.set(run.job, { sync: run.sync, at: nowMs });
  }

  release(destinationKey: string, job: string): void {
    this.reserved.get(destinationKey)?.delete(job);
  }

  wait(destinationKey: string, syncKey: string): void {
    let syncs = this.waiting.get(destinationKey);
    if (!syncs) this.waiting.set(destinationKey, (syncs = new Set()));
    syncs.add(syncKey);
  }

  stopWaiting(destinationKey: string, syncKey: string): void {
    const syncs = this.waiting.get(destinationKey);
    syncs?.delete(syncKey);
    if (syncs?.size === 0) this.waiting.delete(destinationKey);
  }

  /** The Syncs (namespace/name) whose due run waits for a run of this Destination to end. */
  waiters(destinationKey: string): string[] {
    return [...(this.waiting.get(destinationKey) ?? [])];
  }
}

/** The runs `sync`'s due run must wait for (see runsToWaitFor), read from the cache and `runs`. */
export function destinationBusy(
  ctx: { store: Store; runs: DestinationRuns },
  sync: Sync,
  destination: Destination,
  capabilities: Pick<DestinationCapabilities, 'sharedQuota'> | undefined,
  now: Date,
): { limit: number; waitFor: ActiveRun[] } | undefined {
  const limit = maxConcurrentRuns(destination, capabilities);
  if (limit === undefined) return undefined;
  const namespace = sync.metadata.namespace ?? 'default';
  const key = `${namespace}/${destination.metadata.name}`;
  const waitFor = runsToWaitFor({
    sync,
    limit,
    siblings: ctx.store.syncsOfDestination(namespace, destination.metadata.name),
    jobsOf: (sibling) =>
      ctx.store
        .jobs(namespace, { [COMPONENT_LABEL]: 'run', [SYNC_LABEL]: sibling.metadata.name })
        .filter((j) => ownedBy(j, sibling)),
    reserved: ctx.runs.reservedFor(key, now.getTime()),
    jobDeleted: (job) => ctx.store.jobDeleted(namespace, job),
  });
  return waitFor ? { limit, waitFor } : undefined;
}

/** Reconciling's message for a due run that waits: the runs it waits for, and the limit. */
export function busyMessage(destination: string, busy: { limit: number; waitFor: ActiveRun[] }): string {
  const runs = busy.waitFor.map((r) => `${r.job} (Sync ${r.sync})`);
  const shown =
    runs.length > 5 ? `${runs.slice(0, 5).join(', ')} and ${runs.length - 5} more` : runs.join(', ');
  return (
    `the due run waits for ${busy.waitFor.length === 1 ? 'run' : 'runs'} ${shown} of Destination "${destination}" ` +
    `to end (rateLimit.maxConcurrentRuns ${busy.limit}); it starts when one does`
  );
}
