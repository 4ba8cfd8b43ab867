import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  API_PREFIX,
  CONSOLE_KEY_MAX,
  type ConsoleSyncDetail,
  type ConsoleSyncList,
  type Sync,
} from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import type { SecretResolver } from '../../core/secrets.ts';
import type { OperatorConfig } from '../config.ts';
import { openSyncDiffStore } from '../run-summaries.ts';
import { syncDiffStoreUrl } from '../runner-policy.ts';
import { readRunDebug, type DebugStore } from './console-debug.ts';
import { DEFAULT_CONSOLE_DIST, registerConsoleStatic } from './console-static.ts';
import { byNamespace, syncDetail, syncItem } from './console-views.ts';
import { sendError } from './errors.ts';
import type { ApiUser } from './kube.ts';
import { userOf, type ApiDeps } from './server.ts';

export interface ConsoleOptions {
  /** The operator's settings: the debug view reads the diff store at `config.diffStore` (syncDiffStoreUrl). */
  config: OperatorConfig;
  /** Resolves the operator's own diff-store credentials (ReconcileContext.secrets in operator/context.ts). */
  secrets: SecretResolver;
  /** The built console (default operator/console/dist/). */
  distDir?: string;
  /** Opens one Sync's diff store; by default openSyncDiffStore at the Sync's URL. Tests pass their own. */
  openStore?: (sync: Sync) => Promise<DebugStore>;
  /** A diff-store read taking longer than this fails (default 10 s). */
  readTimeoutMs?: number;
}

/** The run API's RBAC verb (routes-runs.ts TRIGGER_VERB): the console shows "Run now" to whoever has it. */
const TRIGGER_VERB = 'trigger';
/** SubjectAccessReviews asked at once for one list answer. */
const REVIEW_CONCURRENCY = 8;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** Answers with no caching and no sniffing: they carry a cluster's state, for one caller. */
const API_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

interface SyncParams {
  namespace: string;
  name: string;
}
interface RunParams extends SyncParams {
  id: string;
}

/**
 * The web console: its read endpoints (the Syncs a caller may see, one Sync, one run's debug view), with
 * the run API's authentication and RBAC, and its pages at /console/. A plugin of buildApiApp.
 */
export function consoleRoutes(options: ConsoleOptions) {
  return async (app: FastifyInstance, deps: ApiDeps): Promise<void> => {
    const openStore =
      options.openStore ??
      ((sync: Sync) => openSyncDiffStore(options, sync, syncDiffStoreUrl(options.config, sync)));
    const answer =
      <R>(handle: (request: FastifyRequest, user: ApiUser) => Promise<R>) =>
      async (request: FastifyRequest, reply: FastifyReply) => {
        void reply.headers(API_HEADERS);
        try {
          return await handle(request, await userOf(request, deps));
        } catch (error) {
          return sendError(reply, error);
        }
      };
    const SYNC = `${API_PREFIX}/namespaces/:namespace/syncs/:name`;
    app.get(
      `${API_PREFIX}/syncs`,
      answer((request, user) => listVisible(deps, user, namespaceQuery(request))),
    );
    app.get(
      SYNC,
      answer(async (request, user) => {
        const params = syncParams(request);
        await deps.auth.authorize(user, { verb: 'get', ...params });
        const sync = await liveSync(deps, params);
        return syncDetail(sync, await mayTrigger(deps, user, params)) satisfies ConsoleSyncDetail;
      }),
    );
    app.get(
      `${SYNC}/runs/:id/debug`,
      answer(async (request, user) => {
        const params = runParams(request);
        await deps.auth.authorize(user, { verb: 'get', namespace: params.namespace, name: params.name });
        const sync = await liveSync(deps, params);
        const key = keyQuery(request);
        return readRunDebug(await storeOf(openStore, sync), {
          namespace: params.namespace,
          sync: params.name,
          id: params.id,
          ...(key !== undefined ? { key } : {}),
          ...(options.readTimeoutMs ? { timeoutMs: options.readTimeoutMs } : {}),
        });
      }),
    );
    await registerConsoleStatic(app, options.distDir ?? DEFAULT_CONSOLE_DIST);
  };
}

/**
 * The Syncs of every namespace where the caller may list syncs (one SubjectAccessReview per namespace, cached
 * by the Authorizer), each saying whether the caller may trigger it.
 */
async function listVisible(deps: ApiDeps, user: ApiUser, namespace?: string): Promise<ConsoleSyncList> {
  const groups = byNamespace(await deps.kube.listSyncs(namespace));
  const namespaces = [...groups.keys()];
  const listable = await inBatches(namespaces, (ns) =>
    deps.auth.allowed(user, { verb: 'list', namespace: ns }),
  );
  const visible = namespaces.filter((_, i) => listable[i]);
  const items = [];
  for (const ns of visible) {
    const syncs = groups.get(ns) ?? [];
    // One review for the namespace answers for all its Syncs when a Role grants the verb without names.
    const all = await deps.auth.allowed(user, { verb: TRIGGER_VERB, namespace: ns });
    const triggers = all
      ? syncs.map(() => true)
      : await inBatches(syncs, (s) => mayTrigger(deps, user, { namespace: ns, name: s.metadata.name }));
    items.push(...syncs.map((sync, i) => syncItem(sync, triggers[i] ?? false)));
  }
  return { items, namespaces: visible };
}

function mayTrigger(deps: ApiDeps, user: ApiUser, { namespace, name }: SyncParams): Promise<boolean> {
  return deps.auth.allowed(user, { verb: TRIGGER_VERB, namespace, name });
}

async function inBatches<T, R>(items: T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += REVIEW_CONCURRENCY)
    results.push(...(await Promise.all(items.slice(i, i + REVIEW_CONCURRENCY).map(fn))));
  return results;
}

async function liveSync(deps: ApiDeps, { namespace, name }: SyncParams): Promise<Sync> {
  const sync = await deps.kube.getSync(namespace, name);
  if (!sync) throw new SynclineError('SyncNotFound', `no Sync ${name} in namespace ${namespace}`);
  return sync;
}

async function storeOf(open: (sync: Sync) => Promise<DebugStore>, sync: Sync): Promise<DebugStore> {
  try {
    return await open(sync);
  } catch (error) {
    if (error instanceof SynclineError && error.reason !== 'InternalError')
      throw new SynclineError(
        'RunRecordUnreadable',
        `the diff store of this Sync cannot be opened (${error.reason}): ${error.message}`,
      );
    throw error;
  }
}

function syncParams(request: FastifyRequest): SyncParams {
  const { namespace, name } = request.params as Partial<SyncParams>;
  if (!DNS_LABEL.test(namespace ?? '') || !DNS_SUBDOMAIN.test(name ?? '') || (name ?? '').length > 253)
    throw new SynclineError('InvalidRequest', 'the namespace and the Sync name must be Kubernetes names');
  return { namespace: namespace!, name: name! };
}

function runParams(request: FastifyRequest): RunParams {
  const id = (request.params as Partial<RunParams>).id ?? '';
  const params = syncParams(request);
  if (!DNS_SUBDOMAIN.test(id) || id.length > 128)
    throw new SynclineError('InvalidRequest', `"${id.slice(0, 64)}" is not a run ID`);
  return { ...params, id };
}

function namespaceQuery(request: FastifyRequest): string | undefined {
  const namespace = (request.query as { namespace?: unknown }).namespace;
  if (namespace === undefined || namespace === '') return undefined;
  if (typeof namespace !== 'string' || !DNS_LABEL.test(namespace))
    throw new SynclineError('InvalidRequest', 'namespace must be one Kubernetes namespace name');
  return namespace;
}

function keyQuery(request: FastifyRequest): string | undefined {
  const key = (request.query as { key?: unknown }).key;
  if (key === undefined || key === '') return undefined;
  if (typeof key !== 'string' || key.length > CONSOLE_KEY_MAX)
    throw new SynclineError(
      'InvalidRequest',
      `key must be one primary key of at most ${CONSOLE_KEY_MAX} characters`,
    );
  return key;
}
