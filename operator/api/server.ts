import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { SynclineError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { Authorizer, tokenId, type AuthOptions } from './auth.ts';
import { errorBody, sendError } from './errors.ts';
import type { ApiKube, ApiUser } from './kube.ts';
import { registerRunRoutes } from './routes-runs.ts';

export interface ApiDeps {
  kube: ApiKube;
  auth: Authorizer;
  log: Logger;
  now?: () => Date;
  /** Poll interval of a waiting GET (tests shorten it). */
  waitPollMs?: number;
}

export interface ApiServerOptions {
  kube: ApiKube;
  log: Logger;
  auth?: AuthOptions;
  /** Requests per caller (token, or address without one) per minute. */
  rateLimitPerMinute?: number;
  /** Extra routes on the same server (webhooks, the console), registered after the run API's. */
  plugins?: ((app: FastifyInstance, deps: ApiDeps) => Promise<void> | void)[];
  waitPollMs?: number;
}

/** The JSON bodies the API accepts; a webhook route that needs the raw bytes registers its own parser. */
export const API_BODY_LIMIT = 64 * 1024;

declare module 'fastify' {
  interface FastifyRequest {
    apiUser?: ApiUser;
  }
}

/** The user a route's handler acts for: authenticated once per request by the TokenReview. */
export async function userOf(request: FastifyRequest, deps: Pick<ApiDeps, 'auth'>): Promise<ApiUser> {
  request.apiUser ??= await deps.auth.authenticate(request.headers.authorization);
  return request.apiUser;
}

const servedRoutes = new WeakMap<FastifyInstance, string[]>();

/** `METHOD /path/:param` of every route an app serves (its test compares them with crds/api-routes.ts). */
export function routesOf(app: FastifyInstance): string[] {
  return [...(servedRoutes.get(app) ?? [])];
}

/** The run API (and whatever plugins add) as a Fastify app, not listening yet. */
export async function buildApiApp(
  options: ApiServerOptions,
  https?: { cert: Buffer; key: Buffer },
): Promise<FastifyInstance> {
  const deps: ApiDeps = {
    kube: options.kube,
    auth: new Authorizer(options.kube, options.auth),
    log: options.log,
    ...(options.waitPollMs ? { waitPollMs: options.waitPollMs } : {}),
  };
  const base = { logger: false, bodyLimit: API_BODY_LIMIT, return503OnClosing: true };
  // Fastify's types follow the server kind; the routes do not care whether it is https.
  const app = (https ? Fastify({ ...base, https }) : Fastify(base)) as unknown as FastifyInstance;
  await app.register(rateLimit, {
    max: options.rateLimitPerMinute ?? 120,
    timeWindow: 60_000,
    keyGenerator: callerKey,
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      ...errorBody(
        429,
        'RateLimited',
        `too many requests from this caller; try again in ${Math.ceil(context.ttl / 1000)} s`,
      ),
    }),
  });
  const served: string[] = [];
  servedRoutes.set(app, served);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') served.push(`${method} ${route.url}`);
  });
  app.setErrorHandler((error, _request, reply) => sendError(reply, fastifyError(error)));
  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new SynclineError('RouteNotFound', `no route ${request.method} ${request.url.split('?')[0]}`),
    ),
  );
  app.addHook('onRequest', async (request, reply) => {
    const refused = crossSiteProblem(request);
    if (refused) return sendError(reply, refused);
  });
  app.addHook('onResponse', async (request, reply) => {
    // One line per request, without the query (it may carry nothing secret today, but logs outlive APIs).
    deps.log.info(
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unknown',
        status: reply.statusCode,
        user: request.apiUser?.username,
        ms: Math.round(reply.elapsedTime),
      },
      'api request',
    );
  });
  app.get('/api/v1/healthz', async () => ({ ok: true }));
  registerRunRoutes(app, deps);
  for (const plugin of options.plugins ?? []) await plugin(app, deps);
  return app;
}

/**
 * A browser's request from another site (a form or fetch on a page elsewhere, carrying the cookie of an auth
 * proxy in front of the console): refused for every method that changes something. Browsers say so in
 * Sec-Fetch-Site; older ones send an Origin that is not this server's. Pipelines and webhook senders send
 * neither.
 */
function crossSiteProblem(request: FastifyRequest): SynclineError | undefined {
  if (['GET', 'HEAD', 'OPTIONS'].includes(request.method)) return undefined;
  const site = request.headers['sec-fetch-site'];
  const origin = request.headers.origin;
  const foreign =
    site === 'cross-site' ||
    site === 'same-site' ||
    origin === 'null' ||
    (site === undefined && origin !== undefined && originHost(origin) !== request.headers.host);
  return foreign
    ? new SynclineError(
        'CrossSiteRequest',
        `a ${request.method} from another site (${origin ?? String(site)}) is refused; use the console itself, or call the API from a pipeline`,
      )
    : undefined;
}

/** The host of an Origin header; undefined for one that is not a URL (which matches no Host). */
function originHost(origin: string): string | undefined {
  return URL.canParse(origin) ? new URL(origin).host : undefined;
}

/** A caller for rate limits: its token's hash, or its address when it sends none. */
function callerKey(request: FastifyRequest): string {
  const header = request.headers.authorization;
  return header ? `t:${tokenId(header)}` : `a:${request.ip}`;
}

/** Fastify's own errors (a body too large, not JSON) as catalogued reasons; the rest as they are. */
function fastifyError(error: unknown): unknown {
  const code = (error as { code?: string; statusCode?: number }).code;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new SynclineError('BodyTooLarge', `the body is larger than ${API_BODY_LIMIT} bytes`);
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return new SynclineError('UnsupportedMediaType', 'send the body as application/json');
  if (
    code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
    code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
    code === 'FST_ERR_VALIDATION'
  )
    return new SynclineError('InvalidRequest', `the body is not valid JSON: ${(error as Error).message}`);
  if ((error as { statusCode?: number }).statusCode === 429)
    return new SynclineError('RateLimited', (error as Error).message);
  return error;
}

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export interface ListeningApi {
  port: number;
  app: FastifyInstance;
  close(): Promise<void>;
}

/** How often the certificate files are read again (cert-manager renews them in place). */
const TLS_RELOAD_MS = 60_000;

/** Starts the API on a port of its own, with TLS when certificate files are given. */
export async function startApiServer(
  options: ApiServerOptions & { port: number; host?: string; tls?: TlsFiles },
): Promise<ListeningApi> {
  const app = await buildApiApp(
    options,
    options.tls
      ? { cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) }
      : undefined,
  );
  await app.listen({ port: options.port, host: options.host ?? '0.0.0.0' });
  let reload: NodeJS.Timeout | undefined;
  if (options.tls) reload = reloadCertificates(app, options.tls, options.log);
  return {
    port: (app.server.address() as AddressInfo).port,
    app,
    close: async () => {
      if (reload) clearInterval(reload);
      await app.close();
    },
  };
}

function reloadCertificates(app: FastifyInstance, tls: TlsFiles, log: Logger): NodeJS.Timeout {
  const timer = setInterval(() => {
    try {
      (app.server as unknown as { setSecureContext(o: object): void }).setSecureContext({
        cert: readFileSync(tls.certFile),
        key: readFileSync(tls.keyFile),
      });
    } catch (error) {
      log.warn(
        { err: (error as Error).message },
        'could not reload the API certificate; serving the one loaded before',
      );
    }
  }, TLS_RELOAD_MS);
  timer.unref();
  return timer;
}
