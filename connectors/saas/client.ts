// One JSON-over-HTTP client for SaaS APIs, on Node's built-in fetch (undici): a timeout and the run's
// AbortSignal on every request, ctx.acquire() (the engine's rate limiter) before each, one request-log
// entry (ctx.debug) per request without the Authorization header, a bearer token from a TokenProvider
// renewed once on 401, failures classified (429/5xx/network retryable with Retry-After; other 4xx not),
// and adaptive rate limiting from the vendor's headers (RateLimitReader): when the interval budget is nearly
// spent the client waits for the window instead of earning 429s; when the daily quota is spent, it makes
// no more requests for the rest of the run (ApiError.dailyLimit).
import { readBodyStart } from '../shared/http-body.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DebugRequest } from '../../core/connectors.ts';
import { redactSecrets } from '../../core/redact.ts';
import { clip, truncate } from '../../core/text.ts';
import type { TokenProvider } from './auth.ts';

export const DEBUG_BODY_LIMIT = 4096;
const READ_LIMIT = 8 * 1024 * 1024;

/** What one response's headers say about the budget. Every field is optional. */
export interface RateLimitObservation {
  /** Requests allowed per interval, and how many are left in the current one. */
  intervalMax?: number;
  intervalRemaining?: number;
  intervalMs?: number;
  /** Requests allowed per day, and how many are left today. */
  dailyMax?: number;
  dailyRemaining?: number;
}

/** Reads a vendor's rate-limit headers (and, for a 429, its body). */
export type RateLimitReader = (
  headers: Headers,
  status: number,
  body: string,
) => RateLimitObservation & {
  /** This 429 is the daily quota, not the interval. */
  dailyExceeded?: boolean;
};

const int = (value: string | null): number | undefined =>
  value !== null && /^\s*\d+\s*$/.test(value) ? Number(value) : undefined;

/**
 * HubSpot: X-HubSpot-RateLimit-Max / -Remaining / -Interval-Milliseconds (the rolling interval, 10 s) and
 * -Daily / -Daily-Remaining; a 429 whose body names policyName DAILY is the daily quota.
 */
export const hubspotRateLimits: RateLimitReader = (headers, status, body) => {
  const observation = {
    intervalMax: int(headers.get('x-hubspot-ratelimit-max')),
    intervalRemaining: int(headers.get('x-hubspot-ratelimit-remaining')),
    intervalMs: int(headers.get('x-hubspot-ratelimit-interval-milliseconds')),
    dailyMax: int(headers.get('x-hubspot-ratelimit-daily')),
    dailyRemaining: int(headers.get('x-hubspot-ratelimit-daily-remaining')),
  };
  let dailyExceeded = false;
  if (status === 429) {
    try {
      dailyExceeded = (JSON.parse(body) as { policyName?: string }).policyName === 'DAILY';
    } catch {
      dailyExceeded = false;
    }
    if (observation.dailyRemaining === 0) dailyExceeded = true;
  }
  return { ...observation, dailyExceeded };
};

/**
 * Salesforce: Sforce-Limit-Info: api-usage=N/M (calls used of the org's rolling 24-hour allowance);
 * a 403 REQUEST_LIMIT_EXCEEDED is the daily quota.
 */
export const salesforceLimitInfo: RateLimitReader = (headers, status, body) => {
  const match = /api-usage=(\d+)\/(\d+)/.exec(headers.get('sforce-limit-info') ?? '');
  const used = match ? Number(match[1]) : undefined;
  const max = match ? Number(match[2]) : undefined;
  return {
    dailyMax: max,
    dailyRemaining: used === undefined || max === undefined ? undefined : Math.max(0, max - used),
    dailyExceeded: status === 403 && body.includes('REQUEST_LIMIT_EXCEEDED'),
  };
};

/** Retry-After is either delay-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.ceil(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** A request that did not succeed, classified. */
export class ApiError extends Error {
  /** HTTP status, or undefined when no response came (network, timeout). */
  readonly status: number | undefined;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  /** The response body (redacted), for per-row messages. */
  readonly body: string;
  /** The daily quota is spent: no request was (or will be) made for the rest of the run. */
  readonly dailyLimit: boolean;
  /** The credentials were refused even after a renewal. */
  readonly unauthorized: boolean;

  constructor(
    message: string,
    details: {
      status?: number;
      retryable: boolean;
      retryAfterMs?: number;
      body?: string;
      dailyLimit?: boolean;
      unauthorized?: boolean;
    },
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = details.status;
    this.retryable = details.retryable;
    this.retryAfterMs = details.retryAfterMs;
    this.body = details.body ?? '';
    this.dailyLimit = details.dailyLimit ?? false;
    this.unauthorized = details.unauthorized ?? false;
  }
}

/** What the client needs of a run (a DeliveryContext or a ConnectorContext with no-op hooks). */
export interface ClientContext {
  signal: AbortSignal;
  acquire?: () => Promise<void>;
  debug?: (request: DebugRequest) => void;
}

export interface ClientOptions {
  /** The vendor's name, for messages: "HubSpot". */
  name: string;
  baseUrl: string;
  auth?: TokenProvider;
  timeoutMs?: number;
  rateLimits?: RateLimitReader;
  /**
   * Requests kept in reserve of each interval's budget (besides those in flight): when the remaining budget
   * is this low, the client waits for the next window. Default: 5% of the interval's maximum, at least 1.
   */
  reserve?: number;
  /** 429s of the interval limit ridden out inside one request before it fails retryable. Default 3. */
  maxRateLimitWaits?: number;
  /** Whether a 401 is an expired session worth one renewal (default: every 401). */
  isExpired?: (status: number, body: string) => boolean;
  /** Extra values to redact from the request log (besides the provider's tokens). */
  secrets?: () => string[];
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export interface RequestOptions {
  /** JSON body (serialised with JSON.stringify) or a preserialised string. */
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  /** The row keys the request carries, for the request log. */
  keys?: string[];
  /** The operation for the request log ("upsert", "read", "check"). */
  operation?: string;
  headers?: Record<string, string>;
}

export interface ApiResponse<T> {
  status: number;
  headers: Headers;
  text: string;
  /** The JSON body, or undefined when it was empty or not JSON. */
  json: T | undefined;
}

/** The interval budget as the last response said it, and when that response came. */
interface Budget {
  max: number;
  remaining: number;
  intervalMs: number;
  at: number;
}

/** Retries of a read (GET) that failed for a transient reason, and the first wait (doubling). */
const READ_RETRIES = 3;
const READ_RETRY_BASE_MS = 250;

export class SaasClient {
  private readonly options: ClientOptions;
  private readonly ctx: ClientContext;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private budget: Budget | undefined;
  /** A wait for the window everyone shares, so that concurrent requests do not each decide to go. */
  private windowWait: Promise<void> | undefined;
  private inFlight = 0;
  private daily: { exhausted: boolean; max?: number; remaining?: number } = { exhausted: false };
  /** Counters for tests and the run's log. */
  readonly stats = { requests: 0, rateLimited: 0, windowWaits: 0, refreshes: 0 };

  constructor(options: ClientOptions, ctx: ClientContext) {
    this.options = options;
    this.ctx = ctx;
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms, signal) => sleep(ms, undefined, { signal }).then(() => undefined));
  }

  /** The daily quota is spent: every further request fails at once with ApiError.dailyLimit. */
  get dailyLimitReached(): boolean {
    return this.daily.exhausted;
  }

  /** The daily quota as last seen: max and remaining, when the API says. */
  get dailyQuota(): { max?: number; remaining?: number } {
    return { max: this.daily.max, remaining: this.daily.remaining };
  }

  private redact(text: string): string {
    const secrets = [...(this.options.auth?.secrets() ?? []), ...(this.options.secrets?.() ?? [])];
    return redactSecrets(text, secrets);
  }

  url(path: string, query?: RequestOptions['query']): string {
    const base = this.options.baseUrl.replace(/\/+$/, '');
    const url = new URL(`${base}${path.startsWith('/') ? path : `/${path}`}`);
    for (const [name, value] of Object.entries(query ?? {}))
      if (value !== undefined) url.searchParams.set(name, String(value));
    return url.toString();
  }

  private dailyError(): ApiError {
    const quota = this.daily.max === undefined ? '' : ` (${this.daily.max} requests a day)`;
    return new ApiError(
      `the ${this.options.name} daily API limit${quota} is reached: no more requests are made in this run, and the rows stay pending for the next run`,
      { retryable: false, dailyLimit: true, status: 429 },
    );
  }

  /** Wait while the interval budget is nearly spent: until the window the last response saw has passed. */
  private async waitForBudget(): Promise<void> {
    for (;;) {
      if (this.windowWait) {
        await this.windowWait;
        continue;
      }
      const budget = this.budget;
      if (!budget) return;
      const reserve = this.options.reserve ?? Math.max(1, Math.ceil(budget.max * 0.05));
      if (budget.remaining - this.inFlight > reserve) return;
      const until = budget.at + budget.intervalMs;
      const wait = until - this.now();
      if (wait <= 0) {
        // The window has passed: the budget is unknown until the next answer; let one request find out.
        this.budget = { ...budget, remaining: budget.max, at: this.now() };
        return;
      }
      this.stats.windowWaits += 1;
      this.windowWait = this.sleep(wait, this.ctx.signal).finally(() => {
        this.windowWait = undefined;
        if (this.budget === budget) this.budget = { ...budget, remaining: budget.max, at: this.now() };
      });
      await this.windowWait;
    }
  }

  private observe(headers: Headers, status: number, body: string): boolean {
    const reader = this.options.rateLimits;
    if (!reader) return false;
    const seen = reader(headers, status, body);
    if (seen.intervalMax !== undefined && seen.intervalRemaining !== undefined) {
      const intervalMs = seen.intervalMs ?? this.budget?.intervalMs ?? 10_000;
      this.budget = {
        max: seen.intervalMax,
        remaining: status === 429 ? 0 : seen.intervalRemaining,
        intervalMs,
        at: this.now(),
      };
    }
    if (seen.dailyMax !== undefined) this.daily.max = seen.dailyMax;
    if (seen.dailyRemaining !== undefined) this.daily.remaining = seen.dailyRemaining;
    if (seen.dailyExceeded || seen.dailyRemaining === 0) this.daily.exhausted = true;
    return seen.dailyExceeded === true;
  }

  /**
   * Send one request. Resolves with 2xx responses (and with 404 when `allowNotFound`); rejects with an
   * ApiError otherwise. A 429 of the interval limit is waited out (Retry-After, else the window) up to
   * maxRateLimitWaits times; a 401 renews the token once.
   */
  async request<T>(
    method: string,
    path: string,
    options: RequestOptions & { allowNotFound?: boolean } = {},
  ): Promise<ApiResponse<T>> {
    // A read changes nothing, so a transient failure of one is retried here (a few times, with backoff):
    // the reads a writer makes while opening (properties, describe) must not fail a run on one 5xx. Writes
    // are retried by the engine, which knows their rows.
    const reads = method === 'GET' ? READ_RETRIES : 0;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.send<T>(method, path, options);
      } catch (error) {
        const transient = error instanceof ApiError && error.retryable && !error.dailyLimit;
        if (!transient || attempt >= reads || this.ctx.signal.aborted) throw error;
        await this.sleep(
          Math.max(error.retryAfterMs ?? 0, READ_RETRY_BASE_MS * 2 ** attempt),
          this.ctx.signal,
        );
      }
    }
  }

  private async send<T>(
    method: string,
    path: string,
    options: RequestOptions & { allowNotFound?: boolean },
  ): Promise<ApiResponse<T>> {
    let renewed = false;
    let waits = 0;
    for (;;) {
      if (this.daily.exhausted) throw this.dailyError();
      const outcome = await this.once<T>(method, path, options);
      if ('response' in outcome) {
        const { response } = outcome;
        if (
          (response.status >= 200 && response.status < 300) ||
          (options.allowNotFound && response.status === 404)
        )
          return response;
        const message = `${this.options.name} answered HTTP ${response.status} to ${method} ${path}: ${clip(this.redact(response.text).trim() || '(no body)', 500)}`;
        if (response.status === 401 && this.options.auth && !renewed) {
          const expired = this.options.isExpired?.(response.status, response.text) ?? true;
          if (expired && outcome.token !== undefined) {
            renewed = true;
            const fresh = await this.options.auth.refresh(outcome.token, this.ctx.signal);
            if (fresh) {
              this.stats.refreshes += 1;
              continue;
            }
          }
        }
        if (response.status === 401) {
          throw new ApiError(message, {
            status: 401,
            retryable: false,
            body: response.text,
            unauthorized: true,
          });
        }
        if (response.status === 429 || outcome.dailyExceeded) {
          this.stats.rateLimited += 1;
          if (this.daily.exhausted) throw this.dailyError();
          const retryAfterMs =
            parseRetryAfter(response.headers.get('retry-after'), this.now()) ??
            (this.budget ? Math.max(0, this.budget.at + this.budget.intervalMs - this.now()) : 1000);
          if (waits < (this.options.maxRateLimitWaits ?? 3) && !this.ctx.signal.aborted) {
            waits += 1;
            await this.sleep(retryAfterMs, this.ctx.signal);
            continue;
          }
          throw new ApiError(message, { status: 429, retryable: true, retryAfterMs, body: response.text });
        }
        const retryable = response.status === 408 || response.status === 425 || response.status >= 500;
        throw new ApiError(message, {
          status: response.status,
          retryable,
          retryAfterMs: retryable
            ? parseRetryAfter(response.headers.get('retry-after'), this.now())
            : undefined,
          body: this.redact(response.text),
        });
      }
      throw outcome.error;
    }
  }

  private async once<T>(
    method: string,
    path: string,
    options: RequestOptions,
  ): Promise<
    { response: ApiResponse<T>; token: string | undefined; dailyExceeded: boolean } | { error: ApiError }
  > {
    await this.waitForBudget();
    await this.ctx.acquire?.();
    if (this.daily.exhausted) return { error: this.dailyError() };
    const timeoutMs = this.options.timeoutMs ?? 30_000;
    const headers: Record<string, string> = { Accept: 'application/json', ...options.headers };
    let token: string | undefined;
    if (this.options.auth) {
      try {
        token = (await this.options.auth.token(this.ctx.signal)).token;
      } catch (error) {
        return { error: this.tokenError(error) };
      }
      headers.Authorization = `Bearer ${token}`;
    }
    const body =
      options.body === undefined
        ? undefined
        : typeof options.body === 'string'
          ? options.body
          : JSON.stringify(options.body);
    if (body !== undefined) headers['Content-Type'] ??= 'application/json';
    const url = this.url(path, options.query);
    const started = performance.now();
    this.inFlight += 1;
    this.stats.requests += 1;
    const entry: DebugRequest = {
      operation: options.operation ?? method.toLowerCase(),
      target: `${method} ${this.redact(url)}`,
      keys: options.keys ?? [],
      latencyMs: 0,
      requestBody: body === undefined ? undefined : truncate(this.redact(body), DEBUG_BODY_LIMIT),
    };
    try {
      const response = await fetch(url, {
        method,
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.any([this.ctx.signal, AbortSignal.timeout(timeoutMs)]),
      });
      const text = await readText(response);
      entry.status = response.status;
      entry.responseBody = truncate(this.redact(text), DEBUG_BODY_LIMIT);
      const dailyExceeded = this.observe(response.headers, response.status, text);
      let json: T | undefined;
      try {
        json = text === '' ? undefined : (JSON.parse(text) as T);
      } catch {
        json = undefined;
      }
      return {
        response: { status: response.status, headers: response.headers, text, json },
        token,
        dailyExceeded,
      };
    } catch (error) {
      const failure = networkError(error, timeoutMs, this.options.name, `${method} ${path}`);
      entry.status = (error as { name?: string }).name === 'TimeoutError' ? 'timeout' : 'error';
      entry.error = this.redact(failure.message);
      return { error: failure };
    } finally {
      this.inFlight -= 1;
      entry.latencyMs = Math.round(performance.now() - started);
      this.ctx.debug?.(entry);
    }
  }

  private tokenError(error: unknown): ApiError {
    const message = this.redact(error instanceof Error ? error.message : String(error));
    const retryable = (error as { retryable?: boolean }).retryable === true;
    return new ApiError(message, { retryable, unauthorized: !retryable });
  }
}

/** The body as text; a body beyond READ_LIMIT is cut (no API answer of a batch is that large). */
function readText(response: Response): Promise<string> {
  return readBodyStart(response, READ_LIMIT);
}

/** A request that got no response: timeouts and connection failures are retryable. */
function networkError(error: unknown, timeoutMs: number, name: string, what: string): ApiError {
  const errorName = (error as { name?: string } | null)?.name;
  if (errorName === 'TimeoutError')
    return new ApiError(`${name}: no response to ${what} within ${timeoutMs / 1000}s`, { retryable: true });
  if (errorName === 'AbortError') return new ApiError('the run was stopped', { retryable: true });
  const cause = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
  const detail = cause?.message ?? (error instanceof Error ? error.message : String(error));
  return new ApiError(`${name}: ${what} failed${cause?.code ? ` (${cause.code})` : ''}: ${detail}`, {
    retryable: true,
  });
}
