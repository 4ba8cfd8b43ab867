import type { KubernetesObject } from '@kubernetes/client-node';
import type { KubeAccess } from './kubeconfig.ts';
import { describeError } from '../../core/errors.ts';
import {
  apiError,
  kubeRequest,
  openWatch,
  resourcePath,
  type KubeStatus,
  type WatchEvent,
  type WatchHandle,
} from './kubeapi.ts';
import { type Logger } from '../../core/logger.ts';
import { objectKey } from './log.ts';
import type { RuntimeMetrics } from './metrics.ts';

export interface InformerOptions {
  kubeConfig: KubeAccess;
  /** '' for the core group (pods, secrets). */
  group: string;
  version: string;
  plural: string;
  /** Omit to watch all namespaces. */
  namespace?: string;
  labelSelector?: string;
  /** Re-emits an update for every cached object this often; 0 or omitted turns it off. */
  resyncPeriodMs?: number;
  log: Logger;
  metrics?: RuntimeMetrics;
  /** A watch that sends no event and no bookmark for this long is presumed dead and reopened (default 5 min). */
  silentWatchTimeoutMs?: number;
  /** Backoff after a failed list or watch: doubles from the initial delay up to the cap (client-go: 800 ms → 30 s). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Items per list page (default 500). */
  pageSize?: number;
  /**
   * Applied to every object before it is cached and handed to handlers (client-go's SetTransform): drop
   * what the controllers never read (managedFields, large env) so that the cache stays small.
   */
  transform?: (obj: KubernetesObject) => KubernetesObject;
}

interface ObjectList<T> {
  kind?: string;
  apiVersion?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

type WatchOutcome = 'closed' | 'empty' | 'expired' | 'error' | 'silent' | 'stopped';

/** Random in [ms, 2 ms): spreads reconnects and watch lifetimes as client-go's jitter does. */
function jitter(ms: number): number {
  return ms * (1 + Math.random());
}

/**
 * A list+watch cache of one resource, by namespace and label selector, as client-go's reflector and
 * informer keep one: the first list fills the cache, a watch from its resourceVersion keeps it current.
 * A watch the server closes is reopened where it left off; a watch whose resourceVersion has expired (410
 * Gone) leads to a new list, diffed against the cache so handlers see only real changes; errors back off
 * exponentially; a watch that goes silent (no event or bookmark within the timeout) is reopened.
 * Objects are plain JSON as the API server sends them (timestamps are strings).
 */
export class Informer<T extends KubernetesObject> {
  private readonly options: InformerOptions;
  private readonly log: Logger;
  private readonly resource: string;
  private readonly path: string;
  private readonly cache = new Map<string, T>();
  private readonly addHandlers: ((obj: T) => void)[] = [];
  private readonly updateHandlers: ((oldObj: T, obj: T) => void)[] = [];
  private readonly deleteHandlers: ((obj: T) => void)[] = [];
  private resourceVersion = '';
  private synced = false;
  private stopped = false;
  private running: Promise<void> | undefined;
  private started: Promise<void> | undefined;
  private resolveStarted: (() => void) | undefined;
  private watch: WatchHandle | undefined;
  private resyncTimer: ReturnType<typeof setInterval> | undefined;
  private readonly sleeping = new AbortController();
  private backoffMs: number;

  constructor(options: InformerOptions) {
    this.options = options;
    this.resource = [options.plural, options.group].filter(Boolean).join('.');
    this.path = resourcePath(options);
    this.log = options.log.child({
      informer: this.resource,
      ...(options.namespace ? { watchNamespace: options.namespace } : {}),
    });
    this.backoffMs = this.initialBackoffMs();
  }

  onAdd(fn: (obj: T) => void): void {
    this.addHandlers.push(fn);
    // A handler registered late still learns about everything already cached, as with client-go.
    if (this.synced) for (const obj of this.cache.values()) this.call(() => fn(obj));
  }

  onUpdate(fn: (oldObj: T, obj: T) => void): void {
    this.updateHandlers.push(fn);
  }

  onDelete(fn: (obj: T) => void): void {
    this.deleteHandlers.push(fn);
  }

  /** Starts listing and watching; resolves once the first list is in the cache (or the informer is stopped). */
  start(): Promise<void> {
    if (this.started) return this.started;
    this.started = new Promise<void>((resolve) => (this.resolveStarted = resolve));
    this.running = this.run().catch((error: unknown) => {
      this.log.error({ err: describeError(error).message }, 'informer loop ended unexpectedly');
    });
    const resyncPeriodMs = this.options.resyncPeriodMs ?? 0;
    if (resyncPeriodMs > 0) {
      this.resyncTimer = setInterval(() => this.resync(), resyncPeriodMs);
      this.resyncTimer.unref();
    }
    return this.started;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.sleeping.abort();
    this.watch?.abort();
    this.resolveStarted?.();
  }

  /** Resolves when the informer's loop has ended after `stop()`. */
  async whenStopped(): Promise<void> {
    await this.running;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  get(namespace: string, name: string): T | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((obj) => (obj.metadata?.namespace ?? '') === namespace);
  }

  /** The resourceVersion the cache reflects. */
  lastSyncResourceVersion(): string {
    return this.resourceVersion;
  }

  private initialBackoffMs(): number {
    return this.options.initialBackoffMs ?? 800;
  }

  private async run(): Promise<void> {
    let needList = true;
    let listReason = 'initial';
    while (!this.stopped) {
      if (needList) {
        try {
          await this.relist(listReason);
          needList = false;
        } catch (error) {
          const { reason, message } = describeError(error);
          this.log.warn(
            { reason, err: message, retryInMs: Math.round(this.backoffMs) },
            'list failed; retrying',
          );
          listReason = 'error';
          await this.backoff();
          continue;
        }
      }
      const outcome = await this.watchOnce();
      if (outcome === 'stopped') return;
      this.options.metrics?.informerWatchRestartsTotal.inc({ resource: this.resource, reason: outcome });
      if (outcome === 'expired') {
        this.log.info(
          { resourceVersion: this.resourceVersion },
          'watch resourceVersion expired (410 Gone); listing again',
        );
        needList = true;
        listReason = 'expired';
      } else if (outcome === 'error' || outcome === 'empty') {
        // A watch that ends before sending anything is treated like an error, so a server that keeps
        // closing watches at once cannot make the informer spin.
        await this.backoff();
      } else if (outcome === 'silent') {
        this.log.warn({ silentMs: this.silentTimeoutMs() }, 'watch went silent; reopening it');
      }
    }
  }

  private silentTimeoutMs(): number {
    return this.options.silentWatchTimeoutMs ?? 300_000;
  }

  private async backoff(): Promise<void> {
    const delay = this.backoffMs * (1 + Math.random() / 2);
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 30_000);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delay);
      this.sleeping.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private async listAll(): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let continueToken: string | undefined;
    let resourceVersion = '';
    for (;;) {
      const response = await kubeRequest<ObjectList<T>>(this.options.kubeConfig, {
        method: 'GET',
        path: this.path,
        query: {
          labelSelector: this.options.labelSelector,
          limit: this.options.pageSize ?? 500,
          continue: continueToken,
        },
      });
      if (response.status === 410 && continueToken) {
        // The continue token outlived its snapshot: start the list over.
        items.length = 0;
        continueToken = undefined;
        continue;
      }
      if (response.status !== 200) throw apiError(`list ${this.resource}`, response);
      const list = response.body;
      const kind = list.kind?.replace(/List$/, '');
      for (const item of list.items ?? []) {
        items.push(
          this.transformed({
            ...item,
            kind: item.kind ?? kind,
            apiVersion: item.apiVersion ?? list.apiVersion,
          }),
        );
      }
      resourceVersion = list.metadata?.resourceVersion ?? resourceVersion;
      continueToken = list.metadata?.continue || undefined;
      if (!continueToken) return { items, resourceVersion };
    }
  }

  private async relist(reason: string): Promise<void> {
    const { items, resourceVersion } = await this.listAll();
    if (this.stopped) return;
    this.options.metrics?.informerRelistsTotal.inc({ resource: this.resource, reason });
    const seen = new Set<string>();
    for (const obj of items) {
      const key = objectKey(obj);
      seen.add(key);
      this.upsert(key, obj);
    }
    for (const [key, obj] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.emitDelete(obj);
      }
    }
    this.resourceVersion = resourceVersion;
    this.backoffMs = this.initialBackoffMs();
    this.log.debug({ items: items.length, resourceVersion, reason }, 'listed');
    if (!this.synced) {
      this.synced = true;
      this.log.info({ items: items.length }, 'cache synced');
      this.resolveStarted?.();
    }
  }

  private upsert(key: string, obj: T): void {
    const old = this.cache.get(key);
    this.cache.set(key, obj);
    if (!old) this.emitAdd(obj);
    else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emitUpdate(old, obj);
  }

  /** Runs one watch from the cached resourceVersion until it ends, and says why it ended. */
  private watchOnce(): Promise<WatchOutcome> {
    return new Promise<WatchOutcome>((resolve) => {
      let outcome: WatchOutcome | undefined;
      let events = 0;
      let silentTimer: ReturnType<typeof setTimeout> | undefined;
      const finish = (result: WatchOutcome) => {
        if (outcome) return;
        outcome = result;
        if (silentTimer) clearTimeout(silentTimer);
        this.watch?.abort();
        this.watch = undefined;
        resolve(this.stopped ? 'stopped' : result);
      };
      const armSilentTimer = () => {
        if (silentTimer) clearTimeout(silentTimer);
        silentTimer = setTimeout(() => finish('silent'), this.silentTimeoutMs());
        silentTimer.unref();
      };
      if (this.stopped) {
        finish('stopped');
        return;
      }
      armSilentTimer();
      openWatch(
        this.options.kubeConfig,
        this.path,
        {
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          labelSelector: this.options.labelSelector,
          // The server ends the watch after 5–10 min; reopening then keeps connections fresh.
          timeoutSeconds: Math.floor(jitter(300)),
        },
        {
          onEvent: (event) => {
            if (outcome || this.stopped) return;
            events += 1;
            armSilentTimer();
            const result = this.handleEvent(event);
            if (result) finish(result);
            else this.backoffMs = this.initialBackoffMs();
          },
          onClose: (error) => {
            if (!error) {
              finish(events > 0 ? 'closed' : 'empty');
              return;
            }
            if (error.statusCode === 410) {
              finish('expired');
              return;
            }
            this.log.warn(
              { reason: error.reason, err: error.message, retryInMs: Math.round(this.backoffMs) },
              'watch failed',
            );
            finish('error');
          },
        },
      ).then(
        (handle) => {
          // stop() may have come while the watch was opening: it found no watch to abort then.
          if (outcome || this.stopped) handle.abort();
          else this.watch = handle;
        },
        (error: unknown) => {
          this.log.warn({ err: describeError(error).message }, 'cannot open watch');
          finish('error');
        },
      );
    });
  }

  private handleEvent(event: WatchEvent): WatchOutcome | undefined {
    if (event.type === 'ERROR') {
      const status = event.object as KubeStatus;
      if (status.code === 410) return 'expired';
      this.log.warn({ code: status.code, reason: status.reason, err: status.message }, 'watch sent an error');
      return 'error';
    }
    const raw = event.object as unknown as T;
    const resourceVersion = raw.metadata?.resourceVersion;
    if (event.type === 'BOOKMARK') {
      if (resourceVersion) this.resourceVersion = resourceVersion;
      return undefined;
    }
    const obj = this.transformed(raw);
    const key = objectKey(obj);
    if (event.type === 'DELETED') {
      const old = this.cache.get(key);
      this.cache.delete(key);
      this.emitDelete(obj ?? old);
    } else if (event.type === 'ADDED' || event.type === 'MODIFIED') {
      this.upsert(key, obj);
    }
    if (resourceVersion) this.resourceVersion = resourceVersion;
    return undefined;
  }

  private transformed(obj: T): T {
    const transform = this.options.transform;
    return transform ? (transform(obj) as T) : obj;
  }

  private resync(): void {
    if (!this.synced || this.stopped) return;
    for (const obj of this.cache.values()) this.emitUpdate(obj, obj);
  }

  private emitAdd(obj: T): void {
    for (const fn of this.addHandlers) this.call(() => fn(obj));
  }

  private emitUpdate(oldObj: T, obj: T): void {
    for (const fn of this.updateHandlers) this.call(() => fn(oldObj, obj));
  }

  private emitDelete(obj: T): void {
    for (const fn of this.deleteHandlers) this.call(() => fn(obj));
  }

  /** A handler that throws must not stop the informer or the other handlers. */
  private call(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.log.error({ err: describeError(error).message }, 'event handler threw');
    }
  }
}
