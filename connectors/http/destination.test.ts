import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationSpec } from '../../crds/index.ts';
import { isSynclineError } from '../../runner/errors.ts';
import { freePort } from '../../test/stack/process.ts';
import { change, deliveryContext, testContext } from '../shared/test-context.ts';
import type { ColumnInfo } from '../types.ts';
import { destination } from './index.ts';
import { parseRetryAfter } from './request.ts';

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

const SECRET = 'sk_live_0123456789abcdef';
const base = testContext({ api: { token: SECRET } });
const received: Received[] = [];
let server: Server;
let origin: string;

const columns: ColumnInfo[] = [
  { name: 'id', type: 'VARCHAR' },
  { name: 'name', type: 'VARCHAR' },
];

function spec(http: Record<string, unknown>): DestinationSpec {
  return {
    type: 'http',
    http: {
      method: 'POST',
      body: 'row',
      batchSize: 100,
      idempotencyKeyHeader: 'Idempotency-Key',
      timeoutSeconds: 5,
      headers: [
        { name: 'Authorization', valueFrom: { secretKeyRef: { name: 'api', key: 'token' } } },
        { name: 'X-Team', value: 'growth' },
      ],
      ...http,
    },
  } as DestinationSpec;
}

async function open(http: Record<string, unknown>) {
  const harness = deliveryContext(base, { destination: spec(http), sync: {}, columns, primaryKey: 'id' });
  return { ...harness, writer: await destination!.open(harness.ctx) };
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      received.push({
        method: req.method ?? '',
        url: path,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      if (path.startsWith('/bad')) {
        res
          .writeHead(422, { 'content-type': 'application/json' })
          .end(`{"error":"email is invalid","echo":"${SECRET}","pad":"${'x'.repeat(2000)}"}`);
      } else if (path.startsWith('/limited-date')) {
        res.writeHead(429, { 'retry-after': new Date(Date.now() + 60_000).toUTCString() }).end('slow down');
      } else if (path.startsWith('/limited')) {
        res.writeHead(429, { 'retry-after': '7' }).end('slow down');
      } else if (path.startsWith('/unavailable')) {
        res.writeHead(503).end('maintenance');
      } else if (path.startsWith('/slow')) {
        setTimeout(() => res.writeHead(200).end('late'), 3000);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  base.cleanup();
});

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isSynclineError(error)) return error.reason;
    throw error;
  }
  throw new Error('expected a SynclineError');
}

describe('http destination: one request per row', () => {
  it('sends each row with its method, URL, headers, idempotency key and exact JSON body', async () => {
    received.length = 0;
    const { writer, requests, acquired } = await open({
      url: `${origin}/users/{{ row.id }}?api_key=abc123&team=growth`,
      method: 'PUT',
      operations: { delete: { method: 'DELETE' }, insert: { method: 'POST', url: `${origin}/users` } },
    });
    const upsert = change('upsert', 'a b/1', {
      id: 'a b/1',
      name: 'Zoë 😀',
      big: 9007199254740993n,
      nested: { list: [1, null] },
    });
    const insert = change('insert', '2', { id: '2', name: 'Two' });
    const remove = change('delete', '3', { id: '3' });
    const results = await writer.write([upsert, insert, remove]);
    expect(results).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    expect(acquired()).toBe(3);
    expect(received.map((r) => `${r.method} ${r.url}`)).toEqual([
      'PUT /users/a%20b%2F1?api_key=abc123&team=growth',
      'POST /users',
      'DELETE /users/3?api_key=abc123&team=growth',
    ]);
    const [first] = received;
    expect(first?.body).toBe(
      '{"id":"a b/1","name":"Zoë 😀","big":9007199254740993,"nested":{"list":[1,null]}}',
    );
    expect(first?.headers).toMatchObject({
      authorization: SECRET,
      'x-team': 'growth',
      'idempotency-key': upsert.idempotencyKey,
      'x-syncline-operation': 'upsert',
      'content-type': 'application/json',
    });
    expect(received[2]?.body).toBe('');
    expect(received[2]?.headers['x-syncline-operation']).toBe('delete');

    expect(requests).toHaveLength(3);
    expect(requests[0]).toMatchObject({
      operation: 'upsert',
      target: `PUT ${origin}/users/a%20b%2F1?api_key=REDACTED&team=growth`,
      keys: ['a b/1'],
      status: 200,
      responseBody: '{"status":"ok"}',
    });
    expect(requests[0]?.latencyMs).toBeGreaterThanOrEqual(0);
    expect(JSON.stringify(requests)).not.toContain(SECRET);
    expect(JSON.stringify(requests)).not.toContain('abc123');
  });

  it('classifies rejections and transient failures', async () => {
    const at = (path: string, timeoutSeconds = 5) => open({ url: `${origin}${path}`, timeoutSeconds });
    const bad = await at('/bad');
    const [rejected] = await bad.writer.write([change('upsert', 1, { id: '1' })]);
    expect(rejected).toMatchObject({
      ok: false,
      retryable: false,
      reason: expect.stringMatching(/^HTTP 422 Unprocessable Entity: \{"error":"email is invalid"/),
    });
    expect(rejected?.ok === false && rejected.reason.length).toBeLessThan(700);
    expect(JSON.stringify(rejected)).not.toContain(SECRET);
    expect(JSON.stringify(bad.requests)).not.toContain(SECRET);

    const [limited] = await (await at('/limited')).writer.write([change('upsert', 1, { id: '1' })]);
    expect(limited).toEqual({
      ok: false,
      retryable: true,
      retryAfterMs: 7000,
      reason: 'HTTP 429 Too Many Requests: slow down',
    });
    const [limitedDate] = await (await at('/limited-date')).writer.write([change('upsert', 1, { id: '1' })]);
    expect(limitedDate).toMatchObject({ ok: false, retryable: true });
    const wait = limitedDate?.ok === false ? (limitedDate.retryAfterMs ?? 0) : 0;
    expect(wait).toBeGreaterThan(50_000);
    expect(wait).toBeLessThanOrEqual(60_000);

    const [unavailable] = await (await at('/unavailable')).writer.write([change('upsert', 1, { id: '1' })]);
    expect(unavailable).toEqual({
      ok: false,
      retryable: true,
      reason: 'HTTP 503 Service Unavailable: maintenance',
    });

    const slow = await at('/slow', 1);
    const [timedOut] = await slow.writer.write([change('upsert', 1, { id: '1' })]);
    expect(timedOut).toEqual({
      ok: false,
      retryable: true,
      reason: 'no response within 1s (timeoutSeconds)',
    });
    expect(slow.requests[0]).toMatchObject({
      status: 'timeout',
      error: expect.stringContaining('no response'),
    });

    const refused = await open({ url: `http://127.0.0.1:${await freePort()}/x` });
    const [down] = await refused.writer.write([change('upsert', 1, { id: '1' })]);
    expect(down).toMatchObject({
      ok: false,
      retryable: true,
      reason: expect.stringContaining('ECONNREFUSED'),
    });
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe('http destination: batches', () => {
  it('sends arrays of {operation, key, idempotencyKey, fields}, batchSize at a time, per method and URL', async () => {
    received.length = 0;
    const { writer, requests } = await open({
      url: `${origin}/bulk`,
      body: 'batch',
      batchSize: 2,
      operations: { delete: { method: 'POST', url: `${origin}/bulk/delete` } },
    });
    const changes = [
      change('upsert', 1, { id: '1', name: 'a' }),
      change('delete', 2, { id: '2' }),
      change('upsert', 3, { id: '3', name: 'c' }),
      change('upsert', 4, { id: '4', name: 'd' }),
    ];
    const results = await writer.write(changes);
    expect(results).toEqual(changes.map(() => ({ ok: true })));
    expect(received.map((r) => r.url)).toEqual(['/bulk', '/bulk', '/bulk/delete']);
    expect(JSON.parse(received[0]?.body ?? '')).toEqual([
      {
        operation: 'upsert',
        key: '1',
        idempotencyKey: changes[0]?.idempotencyKey,
        fields: { id: '1', name: 'a' },
      },
      {
        operation: 'upsert',
        key: '3',
        idempotencyKey: changes[2]?.idempotencyKey,
        fields: { id: '3', name: 'c' },
      },
    ]);
    expect(received[0]?.headers['x-syncline-operation']).toBe('upsert');
    expect(received[0]?.headers['idempotency-key']).toMatch(/^[0-9a-f]{40}$/);
    expect(received[2]?.headers['x-syncline-operation']).toBe('delete');
    expect(requests.map((r) => r.keys)).toEqual([['1', '3'], ['4'], ['2']]);
  });

  it('gives every row of a failed batch the batch’s result', async () => {
    const { writer } = await open({ url: `${origin}/limited`, body: 'batch' });
    const results = await writer.write([change('upsert', 1, { id: '1' }), change('upsert', 2, { id: '2' })]);
    expect(results.every((r) => !r.ok && r.retryable && r.retryAfterMs === 7000)).toBe(true);
  });
});

describe('http destination: check', () => {
  it('resolves secrets, parses templates and reaches the server', async () => {
    await expect(
      destination!.check(spec({ url: `${origin}/users/{{ row.id }}` }), base),
    ).resolves.toBeUndefined();
    expect(
      await reason(
        destination!.check(
          spec({
            url: `${origin}/x`,
            headers: [
              { name: 'Authorization', valueFrom: { secretKeyRef: { name: 'missing', key: 'token' } } },
            ],
          }),
          base,
        ),
      ),
    ).toBe('SecretNotFound');
    expect(await reason(destination!.check(spec({ url: `${origin}/{{ row.id` }), base))).toBe(
      'InvalidTemplate',
    );
    expect(
      await reason(destination!.check(spec({ url: `http://127.0.0.1:${await freePort()}/x` }), base)),
    ).toBe('DestinationUnreachable');
  });
});
