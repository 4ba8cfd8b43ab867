import type { KubeAccess } from './kubeconfig.ts';
import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createInterface } from 'node:readline';
import { SynclineError } from '../../core/errors.ts';

/**
 * A small JSON client for the Kubernetes API on node:http(s), authenticated by client-node's KubeConfig.
 * The runtime talks to the API this way rather than through the generated clients so that list, watch and
 * Lease objects stay plain JSON exactly as the server sent them (the generated clients turn timestamps into
 * Dates on list but not on watch), and so it controls timeouts and the watch stream itself.
 */

export interface KubeStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

export interface ApiResourcePath {
  group: string;
  version: string;
  plural: string;
  namespace?: string;
}

/** `/api/v1/namespaces/ns/pods` or `/apis/group/version/plural` (all namespaces). */
export function resourcePath(resource: ApiResourcePath, name?: string): string {
  const base = resource.group ? `/apis/${resource.group}/${resource.version}` : `/api/${resource.version}`;
  const scope = resource.namespace ? `/namespaces/${encodeURIComponent(resource.namespace)}` : '';
  return `${base}${scope}/${resource.plural}${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
}

const agents = new WeakMap<KubeAccess, HttpAgent>();

/** Connection options for one request: TLS material and auth headers from the KubeConfig, a keep-alive agent. */
async function connectionOptions(
  kubeConfig: KubeAccess,
): Promise<{ url: URL; options: RequestOptions; secure: boolean }> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new SynclineError('KubeConfigInvalid', 'the kubeconfig has no current cluster');
  const url = new URL(cluster.server);
  const secure = url.protocol === 'https:';
  const options: RequestOptions & {
    ca?: unknown;
    cert?: unknown;
    key?: unknown;
    rejectUnauthorized?: boolean;
    servername?: string;
  } = {
    headers: {},
  };
  // Also refreshes exec/OIDC tokens when the kubeconfig uses them.
  await kubeConfig.applyToHTTPSOptions(options as never);
  let agent = agents.get(kubeConfig);
  if (!agent) {
    agent = secure
      ? new HttpsAgent({
          keepAlive: true,
          ca: options.ca as string | undefined,
          cert: options.cert as string | undefined,
          key: options.key as string | undefined,
          ...(options.rejectUnauthorized === undefined
            ? {}
            : { rejectUnauthorized: options.rejectUnauthorized }),
          ...(options.servername ? { servername: options.servername } : {}),
        })
      : new HttpAgent({ keepAlive: true });
    agents.set(kubeConfig, agent);
  }
  options.agent = agent;
  return { url, options, secure };
}

function buildUrl(
  base: URL,
  path: string,
  query: Record<string, string | number | boolean | undefined> = {},
): URL {
  const url = new URL(base.href.replace(/\/$/, '') + path);
  for (const [key, value] of Object.entries(query))
    if (value !== undefined) url.searchParams.set(key, String(value));
  return url;
}

/** The JSON body, or for a body that is not JSON (a proxy's error page) a Status-like object quoting it. */
function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { message: text.slice(0, 500) } satisfies KubeStatus;
  }
}

function unreachable(url: URL, error: unknown): SynclineError {
  const detail = error instanceof Error ? error.message : String(error);
  return new SynclineError(
    'KubeApiUnreachable',
    `cannot reach the Kubernetes API at ${url.origin}: ${detail}`,
    {
      cause: error,
      retryable: true,
    },
  );
}

export interface KubeRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface KubeResponse<T> {
  status: number;
  body: T;
}

/** One JSON request. Resolves with any HTTP status (callers decide what a 404 or 409 means); rejects only when the API cannot be reached. */
export async function kubeRequest<T = unknown>(
  kubeConfig: KubeAccess,
  req: KubeRequest,
): Promise<KubeResponse<T>> {
  const { url: base, options, secure } = await connectionOptions(kubeConfig);
  const url = buildUrl(base, req.path, req.query);
  const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  const headers: Record<string, string | number> = {
    ...(options.headers as Record<string, string>),
    accept: 'application/json',
  };
  if (payload) {
    headers['content-type'] = req.contentType ?? 'application/json';
    headers['content-length'] = payload.length;
  }
  const signals = [
    AbortSignal.timeout(Math.max(1, Math.ceil(req.timeoutMs ?? 30_000))),
    ...(req.signal ? [req.signal] : []),
  ];
  return new Promise((resolve, reject) => {
    const send = secure ? httpsRequest : httpRequest;
    const request = send(
      url,
      { ...options, method: req.method, headers, signal: AbortSignal.any(signals) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (error) => reject(unreachable(url, error)));
        res.on('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            body: parseBody(Buffer.concat(chunks).toString('utf8')) as T,
          });
        });
      },
    );
    request.on('error', (error) => reject(unreachable(url, error)));
    request.end(payload);
  });
}

/** The error for an API answer that was not what the caller needed, with the server's own message. */
export function apiError(what: string, response: KubeResponse<unknown>): SynclineError {
  const status = (response.body ?? {}) as KubeStatus;
  const reason = status.reason ? `${status.reason}` : `HTTP${response.status}`;
  return new SynclineError(
    `KubeApi${reason}`,
    `${what} failed: ${response.status} ${status.message ?? ''}`.trim(),
    { retryable: response.status === 429 || response.status >= 500 },
  );
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: Record<string, unknown>;
}

export interface WatchHandle {
  /** Closes the stream; `onClose` is then called once with no error. */
  abort(): void;
}

export interface WatchCallbacks {
  onEvent(event: WatchEvent): void;
  /** Called once when the stream ends: no error for a normal close, or the reason it broke. */
  onClose(error?: SynclineError & { statusCode?: number; status?: KubeStatus }): void;
}

/** Opens a watch stream (`?watch=true`) and hands each event to `onEvent` as it arrives. */
export async function openWatch(
  kubeConfig: KubeAccess,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  callbacks: WatchCallbacks,
): Promise<WatchHandle> {
  const { url: base, options, secure } = await connectionOptions(kubeConfig);
  const url = buildUrl(base, path, { ...query, watch: true });
  let aborted = false;
  let response: IncomingMessage | undefined;
  let closed = false;
  const close: WatchCallbacks['onClose'] = (error) => {
    if (closed) return;
    closed = true;
    callbacks.onClose(aborted ? undefined : error);
  };
  // Destroyed without an error: an abort is a normal end, not something to report.
  const destroy = () => {
    response?.destroy();
    request.destroy();
  };
  const send = secure ? httpsRequest : httpRequest;
  const request = send(
    url,
    {
      ...options,
      method: 'GET',
      headers: { ...(options.headers as Record<string, string>), accept: 'application/json' },
    },
    (res: IncomingMessage) => {
      response = res;
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const status = (parseBody(Buffer.concat(chunks).toString('utf8')) ?? {}) as KubeStatus;
          const error = Object.assign(
            apiError(`watch ${path}`, { status: res.statusCode ?? 0, body: status }),
            {
              statusCode: res.statusCode ?? 0,
              status,
            },
          );
          close(error);
        });
        res.on('error', (error) => close(unreachable(url, error)));
        return;
      }
      res.socket.setKeepAlive(true, 30_000);
      const lines = createInterface({ input: res, crlfDelay: Infinity });
      lines.on('line', (line) => {
        if (closed || !line.trim()) return;
        let event: WatchEvent;
        try {
          event = JSON.parse(line) as WatchEvent;
        } catch {
          close(
            new SynclineError('KubeWatchCorrupt', `watch ${path} sent a line that is not JSON`, {
              retryable: true,
            }),
          );
          destroy();
          return;
        }
        callbacks.onEvent(event);
      });
      lines.on('error', (error) => close(unreachable(url, error)));
      res.on('error', (error) => close(unreachable(url, error)));
      res.on('close', () =>
        close(res.complete ? undefined : unreachable(url, new Error('watch stream cut off'))),
      );
    },
  );
  request.on('error', (error) => close(unreachable(url, error)));
  request.end();
  return {
    abort: () => {
      aborted = true;
      destroy();
      close();
    },
  };
}
