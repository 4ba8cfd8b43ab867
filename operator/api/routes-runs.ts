import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  API_PREFIX,
  FINISHED_PHASES,
  IDEMPOTENCY_HEADER,
  IDEMPOTENCY_KEY_MAX,
  MAX_WAIT_SECONDS,
  parseGoDuration,
  runRequestBody,
  type RunView,
  type Sync,
} from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import { requestKey } from './ledger.ts';
import { requestRun } from './request-run.ts';
import { listRuns, viewRun } from './run-view.ts';
import { sendError } from './errors.ts';
import { userOf, type ApiDeps } from './server.ts';

interface SyncParams {
  namespace: string;
  name: string;
}
interface RunParams extends SyncParams {
  id: string;
}

const SYNC_PATH = `${API_PREFIX}/namespaces/:namespace/syncs/:name`;
/** The verb of the run API in RBAC: `trigger` on syncs.syncline.io (a verb of its own, so `edit` is not needed). */
export const TRIGGER_VERB = 'trigger';
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function registerRunRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const guarded =
    <P extends SyncParams>(
      verb: string,
      handle: (request: FastifyRequest<{ Params: P }>, reply: FastifyReply) => Promise<unknown>,
    ) =>
    async (request: FastifyRequest<{ Params: P }>, reply: FastifyReply) => {
      try {
        const params = request.params as SyncParams & Partial<RunParams>;
        checkNames(params);
        const user = await userOf(request, deps);
        const { namespace, name } = params;
        // Authorisation before existence: a caller who may not see a Sync learns nothing of it.
        await deps.auth.authorize(user, { verb, namespace, name });
        return await handle(request, reply);
      } catch (error) {
        return sendError(reply, error);
      }
    };

  app.post(
    `${SYNC_PATH}/runs`,
    guarded<SyncParams>(TRIGGER_VERB, (request, reply) => postRun(deps, request, reply)),
  );
  app.get(
    `${SYNC_PATH}/runs`,
    guarded<SyncParams>('get', async (request) => ({
      items: listRuns(await liveSync(deps, request.params)),
    })),
  );
  app.get(
    `${SYNC_PATH}/runs/:id`,
    guarded<RunParams>('get', (request) =>
      getRun(deps, request as FastifyRequest<{ Params: RunParams; Querystring: { wait?: string } }>),
    ),
  );
}

function checkNames(params: Partial<RunParams>): void {
  if (!DNS_LABEL.test(params.namespace ?? '') || !DNS_SUBDOMAIN.test(params.name ?? ''))
    throw new SynclineError('InvalidRequest', 'the namespace and the Sync name must be Kubernetes names');
  if (params.id !== undefined && !DNS_SUBDOMAIN.test(params.id))
    throw new SynclineError('InvalidRequest', `"${params.id.slice(0, 64)}" is not a run ID`);
}

async function liveSync(deps: ApiDeps, { namespace, name }: SyncParams): Promise<Sync> {
  const sync = await deps.kube.getSync(namespace, name);
  if (!sync) throw new SynclineError('SyncNotFound', `no Sync ${name} in namespace ${namespace}`);
  return sync;
}

async function postRun(deps: ApiDeps, request: FastifyRequest<{ Params: SyncParams }>, reply: FastifyReply) {
  const body = runRequestBody.safeParse(request.body ?? {});
  if (!body.success)
    throw new SynclineError(
      'InvalidRequest',
      `the body is not a run request: ${body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`,
    );
  const user = request.apiUser!;
  const idempotencyKey = idempotencyKeyOf(request);
  const outcome = await requestRun(deps.kube, {
    ...request.params,
    fullResync: body.data.fullResync ?? false,
    trigger: 'api',
    caller: user.username,
    ...(idempotencyKey ? { key: requestKey(user.username, idempotencyKey) } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  });
  if (outcome.replayed) void reply.header('idempotent-replayed', 'true');
  void reply.header(
    'location',
    `${API_PREFIX}/namespaces/${request.params.namespace}/syncs/${request.params.name}/runs/${outcome.run.id}`,
  );
  return reply.code(outcome.created ? 202 : 200).send(outcome.run);
}

function idempotencyKeyOf(request: FastifyRequest): string | undefined {
  const key = request.headers[IDEMPOTENCY_HEADER];
  if (key === undefined) return undefined;
  if (
    typeof key !== 'string' ||
    key.length === 0 ||
    key.length > IDEMPOTENCY_KEY_MAX ||
    !/^[ -~]+$/.test(key)
  )
    throw new SynclineError(
      'InvalidRequest',
      `the ${IDEMPOTENCY_HEADER} header must be 1-${IDEMPOTENCY_KEY_MAX} printable ASCII characters`,
    );
  return key;
}

/** A run, answered at once, or (with ?wait) when it has finished or the wait is over. */
async function getRun(
  deps: ApiDeps,
  request: FastifyRequest<{ Params: RunParams; Querystring: { wait?: string } }>,
) {
  const waitMs = waitOf(request.query.wait);
  const deadline = Date.now() + waitMs;
  const closed = new AbortController();
  request.raw.once('close', () => closed.abort());
  for (;;) {
    const view = viewRun(await liveSync(deps, request.params), request.params.id);
    if (!view)
      throw new SynclineError(
        'RunNotFound',
        `Sync ${request.params.namespace}/${request.params.name} has no run ${request.params.id} (or it is older than its history keeps)`,
      );
    if (finished(view) || Date.now() >= deadline || closed.signal.aborted) return view;
    await sleep(Math.min(deps.waitPollMs ?? 1000, deadline - Date.now()), closed.signal);
  }
}

function finished(view: RunView): boolean {
  return FINISHED_PHASES.includes(view.phase);
}

/** `wait=30`, `wait=30s`, `wait=2m`: at most MAX_WAIT_SECONDS. */
export function waitOf(text: string | undefined): number {
  if (text === undefined || text === '') return 0;
  const ms = /^\d+$/.test(text) ? Number(text) * 1000 : parseGoDuration(text);
  if (ms === undefined || !Number.isFinite(ms) || ms < 0)
    throw new SynclineError(
      'InvalidRequest',
      `wait "${text.slice(0, 32)}" is not a number of seconds or a duration like 30s`,
    );
  return Math.min(ms, MAX_WAIT_SECONDS * 1000);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, ms));
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
