import { randomBytes } from 'node:crypto';
import type { ClusterAccess } from './cluster.ts';
import type { Logger } from '../core/logger.ts';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string };
}

/** What reconcilers record Events through (an `EventRecorder`, or a list in unit tests). */
export interface EventSink {
  normal(target: EventTarget, reason: string, message: string): void;
  warning(target: EventTarget, reason: string, message: string): void;
}

const EVENT_QPS = 20;
const EVENT_BURST = 100;

interface Recent {
  name: string;
  count: number;
  firstTimestamp: string;
  lastSentMs: number;
}

/**
 * Records core/v1 Events (what `kubectl describe` shows) as client-go's recorder does: a repeat of the
 * same event on the same object within the aggregation window bumps the count of the existing Event
 * instead of creating a new one, so a stuck object can never flood the namespace; past a global rate
 * (20/s, bursts of 100) Events are dropped, as Kubernetes allows. Failures to record are logged, never
 * raised: an Event is a courtesy, not part of reconciling.
 */
export class EventRecorder implements EventSink {
  private readonly cluster: Pick<ClusterAccess, 'createEvent' | 'patchEvent'>;
  private readonly log: Logger;
  private readonly component: string;
  private readonly host: string;
  private readonly windowMs: number;
  private readonly recent = new Map<string, Recent>();

  constructor(options: {
    cluster: Pick<ClusterAccess, 'createEvent' | 'patchEvent'>;
    log: Logger;
    component?: string;
    host?: string;
    windowMs?: number;
  }) {
    this.cluster = options.cluster;
    this.log = options.log;
    this.component = options.component ?? 'syncline-operator';
    this.host = options.host ?? '';
    this.windowMs = options.windowMs ?? 10 * 60_000;
  }

  normal(target: EventTarget, reason: string, message: string): void {
    this.record(target, 'Normal', reason, message);
  }

  warning(target: EventTarget, reason: string, message: string): void {
    this.record(target, 'Warning', reason, message);
  }

  /** Waits for the Events in flight (tests and shutdown). */
  async flush(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  private readonly inFlight = new Set<Promise<void>>();

  /** A global token bucket, so a burst of reconciles (a thousand Syncs due at once) cannot flood the API. */
  private tokens = EVENT_BURST;
  private refilledAt = Date.now();
  dropped = 0;

  private take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(EVENT_BURST, this.tokens + ((now - this.refilledAt) / 1000) * EVENT_QPS);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private record(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): void {
    if (!this.take()) {
      this.dropped++;
      this.log.debug({ reason, object: target.metadata.name }, 'Event dropped by the rate limit');
      return;
    }
    const promise = this.send(target, type, reason, message)
      .catch((error: unknown) => {
        this.log.warn({ err: error, reason, object: target.metadata.name }, 'could not record an Event');
      })
      .finally(() => this.inFlight.delete(promise));
    this.inFlight.add(promise);
  }

  private async send(target: EventTarget, type: string, reason: string, message: string): Promise<void> {
    const namespace = target.metadata.namespace ?? 'default';
    const key = `${target.metadata.uid ?? target.metadata.name}\u0000${type}\u0000${reason}\u0000${message}`;
    const now = new Date();
    const nowIso = now.toISOString();
    this.prune(now.getTime());
    const seen = this.recent.get(key);
    if (seen && now.getTime() - seen.lastSentMs < this.windowMs) {
      seen.count++;
      seen.lastSentMs = now.getTime();
      const patched = await this.cluster.patchEvent(namespace, seen.name, {
        count: seen.count,
        lastTimestamp: nowIso,
      });
      if (patched) return;
    }
    const name = `${target.metadata.name}.${randomBytes(8).toString('hex')}`;
    this.recent.set(key, { name, count: 1, firstTimestamp: nowIso, lastSentMs: now.getTime() });
    await this.cluster.createEvent(namespace, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: target.apiVersion,
        kind: target.kind,
        name: target.metadata.name,
        namespace,
        ...(target.metadata.uid ? { uid: target.metadata.uid } : {}),
        ...(target.metadata.resourceVersion ? { resourceVersion: target.metadata.resourceVersion } : {}),
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: this.component, ...(this.host ? { host: this.host } : {}) },
      reportingComponent: this.component,
      reportingInstance: this.host || this.component,
      firstTimestamp: nowIso,
      lastTimestamp: nowIso,
      count: 1,
    });
  }

  private prune(nowMs: number): void {
    if (this.recent.size < 4096) return;
    for (const [key, entry] of this.recent)
      if (nowMs - entry.lastSentMs >= this.windowMs) this.recent.delete(key);
  }
}
