// The console's calls to the operator's API: the same origin, the bearer token from sessionStorage when the
// user pasted one, none behind an auth proxy (the proxy adds its own Authorization header).
import type { ConsoleRunDebug, ConsoleSyncDetail, ConsoleSyncList, RunView } from '../../../crds/index.ts';

export type { ConsoleRunDebug, ConsoleSyncDetail, ConsoleSyncList, RunView };

const TOKEN_KEY = 'syncline.token';

/** Phases after which a run changes no more (crds/api.ts FINISHED_PHASES). */
export const FINISHED_PHASES = ['Succeeded', 'PartiallySucceeded', 'Failed', 'Superseded'];

export class ApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

export function storedToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export function storeToken(token: string | undefined): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** `/api/v1`, under whatever prefix a proxy serves the console at (`<prefix>/console/`). */
export function apiBase(pathname = location.pathname): string {
  const at = pathname.lastIndexOf('/console/');
  return `${at > 0 ? pathname.slice(0, at) : ''}/api/v1`;
}

/** A key for an idempotent POST; getRandomValues works without a secure context (plain HTTP). */
export function idempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export const seg = encodeURIComponent;

async function call<T>(path: string, init: RequestInit = {}, token = storedToken()): Promise<T> {
  const headers = new Headers(init.headers);
  headers.set('accept', 'application/json');
  if (token) headers.set('authorization', `Bearer ${token}`);
  let response: Response;
  try {
    response = await fetch(`${apiBase()}${path}`, {
      ...init,
      headers,
      cache: 'no-store',
      credentials: 'same-origin',
    });
  } catch (error) {
    throw new ApiError(0, 'Unreachable', `the operator did not answer: ${(error as Error).message}`);
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const error = (body as { error?: { reason?: string; message?: string } } | undefined)?.error;
    throw new ApiError(
      response.status,
      error?.reason ?? `HTTP${response.status}`,
      error?.message ?? `the operator answered ${response.status} ${response.statusText}`,
    );
  }
  return body as T;
}

export const api = {
  syncs: (token?: string) => call<ConsoleSyncList>('/syncs', {}, token ?? storedToken()),
  sync: (namespace: string, name: string) =>
    call<ConsoleSyncDetail>(`/namespaces/${seg(namespace)}/syncs/${seg(name)}`),
  debug: (namespace: string, name: string, id: string, key?: string) =>
    call<ConsoleRunDebug>(
      `/namespaces/${seg(namespace)}/syncs/${seg(name)}/runs/${seg(id)}/debug${key ? `?key=${seg(key)}` : ''}`,
    ),
  run: (namespace: string, name: string, id: string, waitSeconds = 0, signal?: AbortSignal) =>
    call<RunView>(
      `/namespaces/${seg(namespace)}/syncs/${seg(name)}/runs/${seg(id)}${waitSeconds ? `?wait=${waitSeconds}` : ''}`,
      signal ? { signal } : {},
    ),
  trigger: (namespace: string, name: string, key: string) =>
    call<RunView>(`/namespaces/${seg(namespace)}/syncs/${seg(name)}/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: '{}',
    }),
};
