import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DebugRequest } from '../../core/connectors.ts';
import { staticToken, TokenProvider, type TokenSource } from './auth.ts';
import { ApiError, hubspotRateLimits, parseRetryAfter, SaasClient, salesforceLimitInfo } from './client.ts';
import { failureOf } from './results.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let server: Server;
let base: string;
let handler: Handler = (_req, res) => res.end();
const seen: { auth?: string; url?: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ auth: req.headers.authorization, url: req.url });
    req.resume();
    req.on('end', () => handler(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  seen.length = 0;
});

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

function client(
  options: Partial<ConstructorParameters<typeof SaasClient>[0]> = {},
  debug: DebugRequest[] = [],
) {
  let acquired = 0;
  const c = new SaasClient(
    {
      name: 'TestAPI',
      baseUrl: base,
      sleep: async (ms) => void (await new Promise((r) => setTimeout(r, Math.min(ms, 50)))),
      ...options,
    },
    {
      signal: new AbortController().signal,
      acquire: async () => void acquired++,
      debug: (r) => void debug.push(r),
    },
  );
  return { c, acquired: () => acquired };
}

describe('SaasClient', () => {
  it('sends the bearer token, acquires before each request and logs without the token', async () => {
    handler = (_req, res) => json(res, 200, { ok: true, echo: 'pat-secret-token-1' });
    const debug: DebugRequest[] = [];
    const { c, acquired } = client({ auth: new TokenProvider(staticToken('pat-secret-token-1')) }, debug);
    const response = await c.request<{ ok: boolean }>('POST', '/crm/v3/x', {
      body: { a: 1 },
      keys: ['k1'],
      operation: 'upsert',
    });
    expect(response.json?.ok).toBe(true);
    expect(seen[0]?.auth).toBe('Bearer pat-secret-token-1');
    expect(acquired()).toBe(1);
    expect(debug).toHaveLength(1);
    expect(debug[0]).toMatchObject({
      operation: 'upsert',
      target: `POST ${base}/crm/v3/x`,
      keys: ['k1'],
      status: 200,
    });
    expect(JSON.stringify(debug)).not.toContain('pat-secret-token-1');
  });

  it('classifies failures: 400 not retryable, 5xx retryable with Retry-After, network retryable', async () => {
    handler = (_req, res) => json(res, 400, { message: 'Property values were not valid' });
    const { c } = client();
    const bad = (await c.request('GET', '/x').catch((e: unknown) => e)) as ApiError;
    expect(bad).toBeInstanceOf(ApiError);
    expect(bad.retryable).toBe(false);
    expect(bad.message).toContain('Property values were not valid');
    handler = (_req, res) => json(res, 503, {}, { 'Retry-After': '7' });
    const down = (await c.request('GET', '/x').catch((e: unknown) => e)) as ApiError;
    expect(down).toMatchObject({ retryable: true, retryAfterMs: 7000, status: 503 });
    const gone = new SaasClient(
      { name: 'TestAPI', baseUrl: 'http://127.0.0.1:1' },
      { signal: new AbortController().signal },
    );
    const net = (await gone.request('GET', '/x').catch((e: unknown) => e)) as ApiError;
    expect(net.retryable).toBe(true);
    expect(failureOf(net)).toMatchObject({ ok: false, retryable: true });
  });

  it('retries a read (GET) that failed for a transient reason, never a write', async () => {
    let n = 0;
    handler = (_req, res) => (++n === 1 ? json(res, 503, {}) : json(res, 200, { ok: true }));
    const { c } = client();
    expect((await c.request<{ ok: boolean }>('GET', '/properties')).json?.ok).toBe(true);
    expect(seen).toHaveLength(2);
    seen.length = 0;
    handler = (_req, res) => json(res, 503, {});
    await expect(c.request('POST', '/batch/upsert', { body: {} })).rejects.toMatchObject({ retryable: true });
    expect(seen).toHaveLength(1);
  });

  it('waits out a 429 (Retry-After) and succeeds', async () => {
    let n = 0;
    handler = (_req, res) =>
      ++n === 1 ? json(res, 429, { message: 'slow down' }, { 'Retry-After': '0' }) : json(res, 200, {});
    const { c } = client();
    expect((await c.request('GET', '/x')).status).toBe(200);
    expect(c.stats.rateLimited).toBe(1);
  });

  it('renews an expired token once on 401 and retries; a second 401 is unauthorized', async () => {
    let n = 0;
    const source: TokenSource = {
      description: 'test',
      renewable: true,
      fetch: async () => ({ token: `token-${++n}-abcdef` }),
      secrets: () => [],
    };
    handler = (req, res) =>
      req.headers.authorization === 'Bearer token-1-abcdef'
        ? json(res, 401, {
            category: 'EXPIRED_AUTHENTICATION',
            message: 'The OAuth token used to make this call expired',
          })
        : json(res, 200, {});
    const provider = new TokenProvider(source);
    const { c } = client({ auth: provider });
    expect((await c.request('GET', '/x')).status).toBe(200);
    expect(provider.refreshCount).toBe(1);
    handler = (_req, res) => json(res, 401, { message: 'nope' });
    const error = (await c.request('GET', '/x').catch((e: unknown) => e)) as ApiError;
    expect(error.unauthorized).toBe(true);
    expect(provider.refreshCount).toBe(2);
  });

  it('adapts to X-HubSpot-RateLimit headers: no 429 when the interval budget is honoured', async () => {
    // A rolling window of 5 requests per 300 ms, enforced by the server.
    const MAX = 5;
    const INTERVAL = 300;
    const times: number[] = [];
    let tooMany = 0;
    handler = (_req, res) => {
      const now = Date.now();
      while (times.length && (times[0] as number) <= now - INTERVAL) times.shift();
      const headers = {
        'X-HubSpot-RateLimit-Max': String(MAX),
        'X-HubSpot-RateLimit-Interval-Milliseconds': String(INTERVAL),
        'X-HubSpot-RateLimit-Daily': '1000',
        'X-HubSpot-RateLimit-Daily-Remaining': '900',
      };
      if (times.length >= MAX) {
        tooMany++;
        return json(
          res,
          429,
          { policyName: 'TEN_SECONDLY_ROLLING' },
          { ...headers, 'X-HubSpot-RateLimit-Remaining': '0' },
        );
      }
      times.push(now);
      json(res, 200, {}, { ...headers, 'X-HubSpot-RateLimit-Remaining': String(MAX - times.length) });
    };
    const c = new SaasClient(
      { name: 'HubSpot', baseUrl: base, rateLimits: hubspotRateLimits },
      { signal: new AbortController().signal },
    );
    const started = Date.now();
    for (let i = 0; i < 16; i++) await c.request('GET', '/x');
    expect(tooMany).toBe(0);
    expect(c.stats.windowWaits).toBeGreaterThan(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2 * INTERVAL);
    expect(c.dailyQuota).toEqual({ max: 1000, remaining: 900 });
  });

  it('stops making requests once the daily quota is spent', async () => {
    handler = (_req, res) =>
      json(
        res,
        200,
        {},
        { 'X-HubSpot-RateLimit-Daily': '250000', 'X-HubSpot-RateLimit-Daily-Remaining': '0' },
      );
    const c = new SaasClient(
      { name: 'HubSpot', baseUrl: base, rateLimits: hubspotRateLimits },
      { signal: new AbortController().signal },
    );
    expect((await c.request('GET', '/x')).status).toBe(200);
    const error = (await c.request('GET', '/x').catch((e: unknown) => e)) as ApiError;
    expect(error.dailyLimit).toBe(true);
    expect(seen).toHaveLength(1);
    const failure = failureOf(error);
    expect(failure.retryable).toBe(false);
    expect(failure.reason).toMatch(
      /^DailyLimitReached: the HubSpot daily API limit \(250000 requests a day\) is reached.*pending for the next run/,
    );
  });

  it('a 429 of the daily policy ends delivery at once (no waiting)', async () => {
    handler = (_req, res) =>
      json(res, 429, { status: 'error', errorType: 'RATE_LIMIT', policyName: 'DAILY', message: 'daily' });
    const c = new SaasClient(
      { name: 'HubSpot', baseUrl: base, rateLimits: hubspotRateLimits },
      { signal: new AbortController().signal },
    );
    const error = (await c.request('GET', '/x').catch((e: unknown) => e)) as ApiError;
    expect(error.dailyLimit).toBe(true);
    expect(seen).toHaveLength(1);
  });

  it('reads Salesforce Sforce-Limit-Info and Retry-After forms', () => {
    const headers = new Headers({ 'Sforce-Limit-Info': 'api-usage=14990/15000' });
    expect(salesforceLimitInfo(headers, 200, '')).toMatchObject({ dailyMax: 15000, dailyRemaining: 10 });
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000);
  });
});
