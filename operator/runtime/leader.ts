import type { KubeAccess } from './kubeconfig.ts';
import { describeError } from '../../core/errors.ts';
import { apiError, kubeRequest } from './kubeapi.ts';
import type { Logger } from '../../core/logger.ts';
import type { RuntimeMetrics } from './metrics.ts';

export interface LeaderElectorOptions {
  kubeConfig: KubeAccess;
  /** Namespace and name of the coordination.k8s.io/v1 Lease. */
  namespace: string;
  name: string;
  /** Unique per process, e.g. the pod name plus a random suffix. */
  identity: string;
  /** client-go's defaults: 15 s, 10 s and 2 s. */
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  metrics?: RuntimeMetrics;
}

export interface LeaderCallbacks {
  /**
   * Called once leadership is acquired. The signal aborts when leadership ends (lost or `stop()`); if the
   * callback returns a promise, `stop()` keeps renewing the lease until it settles and only then releases
   * it, so the work started here can finish before another replica takes over.
   */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called once when leadership ends, after the lease was released (on stop) or lost. */
  onStoppedLeading: () => void;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

/** A MicroTime as the API server wants it: RFC 3339 with six fractional digits. */
function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's algorithm: a follower takes the
 * lease only when it is free or when the holder has not renewed it for a lease duration, judged by this
 * process's own clock from when it last saw the lease change (so clock skew between nodes does not
 * matter); every write carries the resourceVersion it read, so two candidates can never both win.
 * A leader that cannot renew within the renew deadline stops leading. `stop()` releases the lease by
 * clearing its holder, so a follower takes over at its next retry rather than after expiry.
 */
export class LeaderElector {
  private readonly options: LeaderElectorOptions;
  private readonly log: Logger;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly path: string;
  private observedSpec = '';
  private observedAt = 0;
  private leader = false;
  private stopRequested = false;
  private readonly sleepers = new Set<() => void>();
  private running: Promise<void> | undefined;

  constructor(options: LeaderElectorOptions) {
    this.options = options;
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (!(this.leaseDurationMs > this.renewDeadlineMs && this.renewDeadlineMs > this.retryPeriodMs * 1.2)) {
      throw new Error('leader election needs leaseDuration > renewDeadline > 1.2 × retryPeriod');
    }
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/leases`;
    this.log = options.log.child({
      lease: `${options.namespace}/${options.name}`,
      identity: options.identity,
    });
    this.setLeader(false);
  }

  isLeader(): boolean {
    return this.leader;
  }

  /**
   * Campaigns until it leads, leads until it loses the lease or `stop()` is called, then resolves. After a
   * lost lease the caller decides: exit (as client-go programs do) or call `run` again to campaign anew.
   */
  run(callbacks: LeaderCallbacks): Promise<void> {
    this.running ??= this.campaign(callbacks).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Stops campaigning or leading; when leading, waits for the leading work to settle, then releases the lease. */
  async stop(): Promise<void> {
    this.stopRequested = true;
    this.wakeAll();
    await this.running;
  }

  private setLeader(leader: boolean): void {
    this.leader = leader;
    this.options.metrics?.leaderElectionMasterStatus.set({ name: this.options.name }, leader ? 1 : 0);
  }

  /** Waits for `ms`, or less if `stop()` is called or the leading work settles meanwhile. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  private wakeAll(): void {
    for (const wake of [...this.sleepers]) wake();
  }

  private async campaign(callbacks: LeaderCallbacks): Promise<void> {
    this.log.info('campaigning for leadership');
    while (!this.stopRequested) {
      if (await this.tryAcquireOrRenew(this.retryPeriodMs)) break;
      await this.sleep(this.retryPeriodMs * (1 + Math.random() * 0.2));
    }
    if (this.stopRequested) return;

    this.setLeader(true);
    this.log.info('became leader');
    const abort = new AbortController();
    let workSettled = false;
    const work = Promise.resolve()
      .then(() => callbacks.onStartedLeading(abort.signal))
      .catch((error: unknown) => this.log.error({ err: describeError(error).message }, 'leading work failed'))
      .finally(() => {
        workSettled = true;
        this.wakeAll();
      });

    let lost = false;
    for (;;) {
      if (this.stopRequested) {
        abort.abort();
        if (workSettled) break;
      }
      await this.sleep(this.retryPeriodMs);
      if (this.stopRequested && workSettled) break;
      if (!(await this.renew())) {
        lost = true;
        break;
      }
    }

    abort.abort();
    this.setLeader(false);
    if (lost) {
      this.log.error(
        { renewDeadlineMs: this.renewDeadlineMs },
        'could not renew the lease in time; stopped leading',
      );
    } else {
      await work;
      await this.release();
    }
    try {
      callbacks.onStoppedLeading();
    } catch (error) {
      this.log.error({ err: describeError(error).message }, 'onStoppedLeading failed');
    }
  }

  /** Retries renewing every retry period until it succeeds or the renew deadline passes. */
  private async renew(): Promise<boolean> {
    const deadline = performance.now() + this.renewDeadlineMs;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      if (await this.tryAcquireOrRenew(Math.max(100, Math.min(left, this.renewDeadlineMs)))) return true;
      const wait = Math.min(this.retryPeriodMs, deadline - performance.now());
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  private desiredSpec(now: Date, previous: LeaseSpec | undefined): LeaseSpec {
    const heldByUs = previous?.holderIdentity === this.options.identity;
    return {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      acquireTime: heldByUs && previous?.acquireTime ? previous.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: heldByUs
        ? (previous?.leaseTransitions ?? 0)
        : previous
          ? (previous.leaseTransitions ?? 0) + 1
          : 0,
    };
  }

  private async tryAcquireOrRenew(timeoutMs: number): Promise<boolean> {
    const { kubeConfig, namespace, name, identity } = this.options;
    try {
      const current = await kubeRequest<Lease>(kubeConfig, {
        method: 'GET',
        path: `${this.path}/${name}`,
        timeoutMs,
      });
      if (current.status === 404) {
        const lease: Lease = {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: this.desiredSpec(new Date(), undefined),
        };
        const created = await kubeRequest<Lease>(kubeConfig, {
          method: 'POST',
          path: this.path,
          body: lease,
          timeoutMs,
        });
        if (created.status === 409) return false;
        if (created.status !== 201) throw apiError(`create Lease ${namespace}/${name}`, created);
        this.observe(created.body);
        return true;
      }
      if (current.status !== 200) throw apiError(`read Lease ${namespace}/${name}`, current);
      const spec = current.body.spec ?? {};
      this.observe(current.body);
      const holder = spec.holderIdentity ?? '';
      const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(this.leaseDurationMs / 1000)) * 1000;
      if (holder && holder !== identity && this.observedAt + durationMs > performance.now()) return false;

      const lease: Lease = { ...current.body, spec: { ...spec, ...this.desiredSpec(new Date(), spec) } };
      const updated = await kubeRequest<Lease>(kubeConfig, {
        method: 'PUT',
        path: `${this.path}/${name}`,
        body: lease,
        timeoutMs,
      });
      if (updated.status === 409) return false;
      if (updated.status !== 200) throw apiError(`update Lease ${namespace}/${name}`, updated);
      if (holder !== identity) this.log.info({ previousHolder: holder || undefined }, 'acquired the lease');
      this.observe(updated.body);
      return true;
    } catch (error) {
      const { reason, message } = describeError(error);
      this.log.warn({ reason, err: message }, 'could not acquire or renew the lease');
      return false;
    }
  }

  /** Remembers when this process last saw the lease change: expiry is judged from that, on this clock. */
  private observe(lease: Lease): void {
    const spec = JSON.stringify(lease.spec ?? {});
    if (spec !== this.observedSpec) {
      this.observedSpec = spec;
      this.observedAt = performance.now();
    }
  }

  /** Gives the lease up (holder cleared, duration 1 s) so a follower can take it at once. */
  private async release(): Promise<void> {
    const { kubeConfig, namespace, name, identity } = this.options;
    try {
      const current = await kubeRequest<Lease>(kubeConfig, {
        method: 'GET',
        path: `${this.path}/${name}`,
        timeoutMs: this.retryPeriodMs,
      });
      if (current.status !== 200) throw apiError(`read Lease ${namespace}/${name}`, current);
      if (current.body.spec?.holderIdentity !== identity) return;
      const now = microTime(new Date());
      const lease: Lease = {
        ...current.body,
        spec: {
          ...current.body.spec,
          holderIdentity: null,
          leaseDurationSeconds: 1,
          renewTime: now,
          acquireTime: now,
        },
      };
      const released = await kubeRequest<Lease>(kubeConfig, {
        method: 'PUT',
        path: `${this.path}/${name}`,
        body: lease,
        timeoutMs: this.retryPeriodMs,
      });
      if (released.status !== 200) throw apiError(`release Lease ${namespace}/${name}`, released);
      this.log.info('released the lease');
    } catch (error) {
      const { reason, message } = describeError(error);
      this.log.warn({ reason, err: message }, 'could not release the lease; it expires on its own');
    }
  }
}
