import type { FastifyInstance, FastifyRequest } from 'fastify';
import { WEBHOOK_PREFIX, type Sync, type WebhookAnswer, type WebhookRun } from '../../../crds/index.ts';
import { describeError, SynclineError } from '../../../core/errors.ts';
import { sendError } from '../errors.ts';
import { requestKey } from '../ledger.ts';
import { requestRun } from '../request-run.ts';
import type { ApiDeps } from '../server.ts';
import type { WebhookConfig } from './config.ts';
import { readEvent, type WebhookEvent } from './events.ts';
import { matchSyncs, noMatchMessage } from './match.ts';
import { SIGNATURE_HEADER, signatureValid } from './signature.ts';

/** The largest delivery a webhook reads (dbt Cloud's and Fivetran's events are a few hundred bytes). */
export const WEBHOOK_BODY_LIMIT = 256 * 1024;
/** Run requests written at once for one delivery. */
const REQUEST_CONCURRENCY = 4;

const SENDER = { dbtCloud: 'dbt Cloud', fivetran: 'Fivetran' } as const;

type WebhookRequest = FastifyRequest<{ Params: { name: string } }>;

/**
 * The webhook receivers as a plugin of the API server: `POST /webhooks/v1/{name}` for each configured
 * webhook. A delivery is verified (the HMAC of its raw body, so these routes read bodies as bytes, in a
 * scope of their own), read, matched against the Syncs' triggers, and turned into one run request per
 * matching Sync, keyed by the delivery so that a retried delivery requests nothing new.
 */
export function webhookRoutes(config: readonly WebhookConfig[]) {
  const webhooks = new Map(config.map((w) => [w.name, w]));
  return async (app: FastifyInstance, deps: ApiDeps): Promise<void> => {
    await app.register(async (scope) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser(
        '*',
        { parseAs: 'buffer', bodyLimit: WEBHOOK_BODY_LIMIT },
        (_request, body, done) => done(null, body),
      );
      scope.setErrorHandler((error, _request, reply) => sendError(reply, webhookError(error)));
      scope.post<{ Params: { name: string } }>(
        `${WEBHOOK_PREFIX}/:name`,
        {
          bodyLimit: WEBHOOK_BODY_LIMIT,
          // Senders carry no token, and dbt Cloud's Authorization header (its signature) changes with
          // every body: deliveries are limited per address and webhook instead.
          config: { rateLimit: { keyGenerator: (r) => `w:${r.ip}:${(r.params as { name?: string }).name}` } },
        },
        async (request, reply) => {
          try {
            return await reply.code(200).send(await receive(deps, webhooks, request));
          } catch (error) {
            return sendError(reply, error);
          }
        },
      );
    });
  };
}

/** Fastify's own errors in these routes: a body over this route's cap, a rate limit. */
function webhookError(error: unknown): unknown {
  const e = error as { code?: string; statusCode?: number };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new SynclineError(
      'BodyTooLarge',
      `the body is larger than ${WEBHOOK_BODY_LIMIT} bytes, the most a webhook delivery may be`,
    );
  if (e.statusCode === 429)
    return new SynclineError('RateLimited', 'too many deliveries from this address; try again in a minute');
  return error;
}

async function receive(
  deps: ApiDeps,
  webhooks: ReadonlyMap<string, WebhookConfig>,
  request: WebhookRequest,
): Promise<WebhookAnswer> {
  const webhook = webhooks.get(request.params.name);
  if (!webhook)
    throw new SynclineError(
      'WebhookNotFound',
      `the operator has no webhook "${request.params.name.slice(0, 63)}" (--webhook NAME=TYPE)`,
    );
  const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  verify(webhook, request, body);
  const event = readEvent(webhook.type, body);
  const log = { webhook: webhook.name, type: webhook.type, event: event.event, delivery: event.deliveryId };
  if (event.ignored) {
    deps.log.info({ ...log, ignored: event.ignored }, 'webhook delivery started no run');
    return { runs: [], reason: 'WebhookEventIgnored', message: event.ignored };
  }
  const matching = matchSyncs(await deps.kube.listSyncs(), event, webhook.name);
  if (matching.matched.length === 0) {
    const message = noMatchMessage(event, matching);
    deps.log.info({ ...log, ignored: message }, 'webhook delivery started no run');
    return { runs: [], reason: 'WebhookEventIgnored', message };
  }
  const runs = await requestRuns(deps, webhook, event, matching.matched);
  deps.log.info(
    { ...log, outcome: event.outcome, syncs: runs.map((r) => `${r.namespace}/${r.sync}`) },
    'webhook delivery requested runs',
  );
  return { runs };
}

/** Throws WebhookSignatureInvalid unless the delivery carries the HMAC of its body under the secret. */
function verify(webhook: WebhookConfig, request: WebhookRequest, body: Buffer): void {
  const header = SIGNATURE_HEADER[webhook.type];
  const given = request.headers[header];
  if (signatureValid(given, body, webhook.secret)) return;
  const sender = SENDER[webhook.type];
  throw new SynclineError(
    'WebhookSignatureInvalid',
    given === undefined
      ? `no ${header} header: ${sender} signs each delivery in it (with a secret set on its webhook)`
      : `the ${header} header is not the HMAC-SHA256 of the body under webhook ${webhook.name}'s secret: check that the operator's secret is the one ${sender} shows for this webhook`,
  );
}

/**
 * One run request per Sync, keyed by the webhook and the delivery: a retried delivery finds the runs it
 * requested (replayed) and writes nothing. A Sync deleted meanwhile is skipped; any other failure is the
 * answer (after the other requests were made), so that the sender retries, and the retry replays the ones
 * that were made.
 */
async function requestRuns(
  deps: ApiDeps,
  webhook: WebhookConfig,
  event: WebhookEvent,
  syncs: Sync[],
): Promise<WebhookRun[]> {
  const caller = `webhook:${webhook.name}`;
  const key = requestKey(caller, event.deliveryId);
  const runs: WebhookRun[] = [];
  const failures: unknown[] = [];
  const one = async (sync: Sync) => {
    const namespace = sync.metadata.namespace ?? 'default';
    try {
      const outcome = await requestRun(deps.kube, {
        ...{ namespace, name: sync.metadata.name, fullResync: false },
        ...{ trigger: 'webhook', caller, key },
        ...(deps.now ? { now: deps.now } : {}),
      });
      const { run } = outcome;
      runs.push({ namespace, sync: run.sync, id: run.id, phase: run.phase, replayed: outcome.replayed });
    } catch (error) {
      if (describeError(error, 'InternalError').reason === 'SyncNotFound') return;
      deps.log.warn(
        {
          webhook: webhook.name,
          sync: `${namespace}/${sync.metadata.name}`,
          err: describeError(error, 'InternalError'),
        },
        'webhook delivery could not request a run',
      );
      failures.push(error);
    }
  };
  for (let i = 0; i < syncs.length; i += REQUEST_CONCURRENCY)
    await Promise.all(syncs.slice(i, i + REQUEST_CONCURRENCY).map(one));
  if (failures.length > 0) throw failures[0];
  return runs.sort((a, b) => `${a.namespace}/${a.sync}`.localeCompare(`${b.namespace}/${b.sync}`));
}
