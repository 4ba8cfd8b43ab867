import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationSpec, SyncSpec } from '../../crds/index.ts';
import { isSynclineError } from '../../core/errors.ts';
import { freePort } from '../../test/stack/process.ts';
import { change, deliveryContext, synclineFailure, testContext } from '../shared/test-context.ts';
import type { ColumnInfo } from '../../core/connectors.ts';
import { destination } from './index.ts';
import { parseRetryAfter } from './request.ts';

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

const SECRET = 'sk_live_0123456789abcdef';
/** A token with characters that URL and JSON encoding change. */
const SPECIAL = 'Tok/"en+9876 543\\21=xyz';
const base = testContext({ api: { token: SECRET }, special: { token: SPECIAL } });

/** The forms an API has been seen to echo a token in. */
function echoForms(secret: string): Record<string, string> {
  return {
    upper: secret.toUpperCase(),
    lower: secret.toLowerCase(),
    base64: Buffer.from(secret).toString('base64'),
    base64url: Buffer.from(secret).toString('base64url'),
    basic: Buffer.from(`user:${secret}`).toString('base64'),
    url: encodeURIComponent(secret),
    form: new URLSearchParams({ t: secret }).toString().slice(2),
    json: JSON.stringify(secret).slice(1, -1),
    jsonTwice: JSON.stringify(JSON.stringify(secret)).slice(1, -1),
    unicode: [...secret].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''),
  };
}
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

async function open(http: Record<string, unknown>, sync: Partial<SyncSpec> = {}) {
  const harness = deliveryContext(base, { destination: spec(http), sync, columns, primaryKey: 'id' });
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
      if (path.startsWith('/echo')) {
        // Echo the Authorization header in every form, as text (not as JSON, so each form is verbatim).
        const forms = echoForms(String(req.headers.authorization));
        res.writeHead(400).end(
          Object.entries(forms)
            .map(([k, v]) => `${k}=${v}`)
            .join('\n'),
        );
      } else if (path.startsWith('/gone')) {
        res.writeHead(404).end('no such record');
      } else if (path.startsWith('/vanished')) {
        res.writeHead(410).end('gone');
      } else if (path.startsWith('/bad')) {
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

describe('http destination: URL templates', () => {
  it('refuses, when the writer opens, a variable the Sync does not fill, naming the template and the fields', async () => {
    const unknownField = await synclineFailure(open({ url: `${origin}/users/{{ row.nope }}` }));
    expect(unknownField.reason).toBe('InvalidTemplate');
    expect(unknownField.message).toContain(`http.url "${origin}/users/{{ row.nope }}" uses row.nope`);
    expect(unknownField.message).toContain('fields: id, name');
    const unknownRoot = await synclineFailure(
      open({ url: `${origin}/users`, operations: { update: { url: `${origin}/u/{{ id }}` } } }),
    );
    expect(unknownRoot.reason).toBe('InvalidTemplate');
    expect(unknownRoot.message).toContain('http.operations.update.url');
    expect(unknownRoot.message).toContain('unknown variable id');
    // Removed rows carry only their key fields: a delete URL can use nothing else.
    const deleteByName = await synclineFailure(
      open({ url: `${origin}/users/{{ row.name }}` }, { deleteBehavior: 'delete' }),
    );
    expect(deleteByName.message).toContain('uses row.name, which is not a field');
    expect(deleteByName.message).toContain('fields: id)');
  });

  it('rejects a row whose URL needs a NULL or empty value; the rest of the batch goes', async () => {
    received.length = 0;
    const { writer } = await open({
      url: `${origin}/users/{{ row.id }}/{{ row.name | raw }}`,
      method: 'PUT',
    });
    const results = await writer.write([
      change('upsert', 1, { id: null, name: 'a' }),
      change('upsert', 2, { id: '2', name: '' }),
      change('upsert', 3, { id: '3', name: 'c' }),
    ]);
    expect(results).toEqual([
      { ok: false, retryable: false, reason: expect.stringContaining('{{ row.id }} in the URL is NULL') },
      {
        ok: false,
        retryable: false,
        reason: expect.stringContaining('{{ row.name | raw }} in the URL is empty'),
      },
      { ok: true },
    ]);
    expect(received.map((r) => r.url)).toEqual(['/users/3/c']);
  });
});

describe('http destination: deletes', () => {
  it('sends a delete without an override as DELETE on the record URL, without a body', async () => {
    received.length = 0;
    const { writer } = await open(
      { url: `${origin}/users/{{ row.id }}`, method: 'PUT' },
      { deleteBehavior: 'delete' },
    );
    expect(await writer.write([change('delete', 5, { id: '5' })])).toEqual([{ ok: true }]);
    expect(received.map((r) => `${r.method} ${r.url} ${r.body}`)).toEqual(['DELETE /users/5 ']);
  });

  it('refuses deletes to a URL that does not address one record', async () => {
    const failure = await synclineFailure(open({ url: `${origin}/users` }, { deleteBehavior: 'delete' }));
    expect(failure.reason).toBe('InvalidDestination');
    expect(failure.message).toContain('set http.operations.delete.url');
    // An explicit delete request is the user's choice.
    await expect(
      open(
        { url: `${origin}/users`, operations: { delete: { method: 'POST', url: `${origin}/users/remove` } } },
        { deleteBehavior: 'delete' },
      ),
    ).resolves.toBeDefined();
  });

  it('counts a delete answered 404 or 410 as done, unless treatNotFoundAsDeleted is false', async () => {
    const gone = await open({ url: `${origin}/gone/{{ row.id }}` }, { deleteBehavior: 'delete' });
    const vanished = await open({ url: `${origin}/vanished/{{ row.id }}` }, { deleteBehavior: 'delete' });
    expect(await gone.writer.write([change('delete', 1, { id: '1' })])).toEqual([{ ok: true }]);
    expect(await vanished.writer.write([change('delete', 1, { id: '1' })])).toEqual([{ ok: true }]);
    // Only deletes: a 404 on an update is still a rejection.
    const [update] = await gone.writer.write([change('update', 1, { id: '1', name: 'x' })]);
    expect(update).toMatchObject({ ok: false, reason: 'HTTP 404 Not Found: no such record' });
    const strict = await open(
      { url: `${origin}/gone/{{ row.id }}`, treatNotFoundAsDeleted: false },
      { deleteBehavior: 'delete' },
    );
    const [kept] = await strict.writer.write([change('delete', 1, { id: '1' })]);
    expect(kept).toMatchObject({ ok: false, retryable: false, reason: 'HTTP 404 Not Found: no such record' });
  });
});

describe('http destination: secrets echoed by the API', () => {
  it.each([
    ['a plain token', SECRET, 'api'],
    ['a token with characters that encodings change', SPECIAL, 'special'],
  ])(
    'redacts %s upper- or lower-cased, base64, URL- and JSON-encoded, in reasons and the debugger',
    async (_name, secret, ref) => {
      const { writer, requests } = await open({
        url: `${origin}/echo`,
        headers: [{ name: 'Authorization', valueFrom: { secretKeyRef: { name: ref, key: 'token' } } }],
      });
      const [result] = await writer.write([change('upsert', 1, { id: '1' })]);
      expect(result?.ok).toBe(false);
      const seen = `${JSON.stringify(result)}\n${requests.map((r) => r.responseBody).join('\n')}`;
      expect(requests[0]?.responseBody).toContain('upper=REDACTED');
      for (const [form, text] of Object.entries(echoForms(secret))) {
        expect(seen, form).not.toContain(text);
        expect(requests[0]?.responseBody, form).toMatch(new RegExp(`^${form}=.*REDACTED`, 'm'));
      }
    },
  );
});
