// Delivery to a real HTTP server that fails, throttles and delays: retries, backoff, Retry-After,
// per-row results, rejected rows retried next run, concurrency and rate limits, the request log.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SyncSpec } from '../../crds/index.ts';
import { DiffStore } from '../../core/diffstore/index.ts';
import { filterRequestLog } from '../../runner/requestlog.ts';
import { secretResolver } from '../../core/secrets.ts';
import { openBlobStore } from '../../core/storage/index.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, secretsFor, sql, tempState } from './helpers.ts';
import { executeRun } from '../../runner/run.ts';
import { silentLogger } from '../../core/logger.ts';
import { pino } from 'pino';

interface Received {
  key: string;
  operation: string;
  idempotencyKey: string;
  authorization: string | undefined;
  method: string;
  path: string;
  body: Record<string, unknown>;
  /** The body as sent, to check number text that JSON.parse would round. */
  raw: string;
  at: number;
}

type Behaviour = (
  key: string,
  attempt: number,
) => { status: number; headers?: Record<string, string>; delayMs?: number; body?: string };

/** An API that records every request and answers as the current behaviour says. */
class FakeApi {
  server!: Server;
  received: Received[] = [];
  behaviour: Behaviour = () => ({ status: 200 });
  inFlight = 0;
  maxInFlight = 0;
  private attempts = new Map<string, number>();

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  reset(behaviour: Behaviour = () => ({ status: 200 })): void {
    this.received = [];
    this.attempts.clear();
    this.behaviour = behaviour;
    this.maxInFlight = 0;
  }

  requestsFor(key: string): Received[] {
    return this.received.filter((r) => r.key === key);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    let text = '';
    for await (const chunk of req) text += String(chunk);
    const key = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.split('/').pop() ?? '');
    const attempt = this.attempts.get(key) ?? 0;
    this.attempts.set(key, attempt + 1);
    this.received.push({
      key,
      operation: String(req.headers['x-syncline-operation']),
      idempotencyKey: String(req.headers['idempotency-key']),
      authorization: req.headers.authorization,
      method: req.method ?? '',
      path: new URL(req.url ?? '/', 'http://x').pathname,
      body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
      raw: text,
      at: Date.now(),
    });
    const answer = this.behaviour(key, attempt);
    if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
    this.inFlight--;
    res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
    res.end(answer.body ?? '{"ok":true}');
  }
}

let pgServer: PostgresServer;
let srcUrl: string;
const api = new FakeApi();
let baseUrl: string;
const states: { remove(): void }[] = [];
let counter = 0;
const TOKEN = 'sk_live_0123456789abcdef';
/** A token with characters that URL and JSON encoding change. */
const SPECIAL = 'Sk/"live+0123 4567\\89=abcdef';

beforeAll(async () => {
  pgServer = await startPostgres();
  srcUrl = await pgServer.createDatabase('src');
  baseUrl = await api.start();
});
afterAll(async () => {
  await pgServer?.stop();
  api.server?.close();
  for (const s of states) s.remove();
});

async function scenario(rows: number, sync: Partial<SyncSpec> = {}) {
  counter++;
  const table = `contacts_${counter}`;
  const state = tempState();
  states.push(state);
  await sql(srcUrl, `CREATE TABLE ${table} (id int PRIMARY KEY, email text, score int, note text)`);
  await sql(
    srcUrl,
    `INSERT INTO ${table} SELECT g, 'c' || g || '@x.org', g, 'n' FROM generate_series(1, ${rows}) g`,
  );
  const name = `http-sync-${counter}`;
  const plan = (extra: Partial<SyncSpec> = {}) =>
    makePlan({
      server: pgServer,
      sourceDb: 'src',
      query: `SELECT id, email, score, note FROM ${table}`,
      destination: {
        type: 'http',
        http: {
          url: `${baseUrl}/contacts/{{ key }}`,
          method: 'PUT',
          body: 'row',
          batchSize: 100,
          idempotencyKeyHeader: 'Idempotency-Key',
          timeoutSeconds: 10,
          headers: [{ name: 'Authorization', valueFrom: { secretKeyRef: { name: 'api', key: 'token' } } }],
        },
      },
      sync: {
        mode: 'upsert',
        mappings: [
          { to: 'email', from: 'email', valueType: 'string' },
          { to: 'score', from: 'score', valueType: 'string' },
        ],
        ...sync,
        ...extra,
      },
      stateUrl: state.url,
      name,
    });
  const secrets = secretResolver(
    {},
    { pg: { password: pgServer.password }, api: { token: `Bearer ${TOKEN}` } },
  );
  return {
    state,
    name,
    source: (text: string) => sql(srcUrl, text.replaceAll('$T', table)),
    run: (extra: Partial<SyncSpec> = {}, signal = new AbortController().signal) =>
      executeRun(plan(extra), { secrets, log: silentLogger(), signal, backoff: { baseMs: 5, capMs: 40 } }),
  };
}

describe('http delivery', () => {
  it('compares every model column for an http destination, mapped or not', async () => {
    api.reset();
    const s = await scenario(5);
    expect((await s.run()).counts.delivered).toBe(5);
    await s.source("UPDATE $T SET note = 'unmapped but compared' WHERE id = 2");
    api.reset();
    const second = await s.run();
    expect(second.counts).toMatchObject({ changed: 1, delivered: 1 });
    expect(api.received.map((r) => r.key)).toEqual(['2']);
    expect(api.received[0]?.body).toEqual({ email: 'c2@x.org', score: 2 });
  });

  it('retries 5xx and 429 (honouring Retry-After) with the same idempotency key, then succeeds', async () => {
    api.reset((key, attempt) => {
      if (key === '3' && attempt < 2) return { status: 503 };
      if (key === '4' && attempt === 0) return { status: 429, headers: { 'retry-after': '1' } };
      return { status: 200 };
    });
    const s = await scenario(6);
    const summary = await s.run();
    expect(summary.result).toBe('Succeeded');
    expect(summary.counts).toMatchObject({ delivered: 6, failed: 0 });
    const three = api.requestsFor('3');
    expect(three).toHaveLength(3);
    expect(new Set(three.map((r) => r.idempotencyKey)).size).toBe(1);
    const four = api.requestsFor('4');
    expect(four).toHaveLength(2);
    // Retry-After: 1 second is honoured (the backoff alone would wait at most 40 ms).
    expect(four[1]!.at - four[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it('records rejected rows with their reason and retries them on the next run', async () => {
    api.reset((key) =>
      key === '7' ? { status: 422, body: '{"error":"email is invalid"}' } : { status: 200 },
    );
    const s = await scenario(10);
    const first = await s.run();
    expect(first.result).toBe('PartiallySucceeded');
    expect(first.reason).toBe('RowsRejected');
    expect(first.counts).toMatchObject({ delivered: 9, failed: 1 });
    expect(first.outcomes).toEqual({ upsert: { delivered: 9, failed: 1 } });
    expect(first.rejected).toHaveLength(1);
    expect(first.rejected[0]).toMatchObject({ key: '7', operation: 'upsert' });
    expect(first.rejected[0]?.reason).toContain('422');
    expect(api.requestsFor('7')).toHaveLength(1); // not retryable: sent once
    api.reset();
    const second = await s.run();
    expect(second.result).toBe('Succeeded');
    // Row 7 never arrived, so it is not in the snapshot: it is added again.
    expect(second.counts).toMatchObject({ added: 1, changed: 0, delivered: 1 });
    expect(api.received.map((r) => r.key)).toEqual(['7']);
    api.reset();
    expect((await s.run()).counts.delivered).toBe(0);
  });

  it('gives up on a row after maxRetries and keeps it for the next run', async () => {
    api.reset((key) => (key === '2' ? { status: 500 } : { status: 200 }));
    const s = await scenario(3, { delivery: { maxRetries: 2 } });
    const summary = await s.run();
    expect(summary.counts).toMatchObject({ delivered: 2, failed: 1 });
    expect(summary.rejected[0]?.reason).toContain('gave up after 2 retries');
    expect(api.requestsFor('2')).toHaveLength(3);
  });

  it('keeps at most `concurrency` batches in flight, with delays', async () => {
    api.reset(() => ({ status: 200, delayMs: 20 }));
    const s = await scenario(40, { delivery: { batchSize: 5, concurrency: 3, maxRetries: 5 } });
    const summary = await s.run();
    expect(summary.counts.delivered).toBe(40);
    expect(api.maxInFlight).toBeLessThanOrEqual(3);
    expect(api.maxInFlight).toBeGreaterThan(1);
  });

  it('limits the request rate to the lower of the Destination and Sync limits', async () => {
    api.reset();
    const s = await scenario(30, { delivery: { requestsPerSecond: 20, concurrency: 4, maxRetries: 5 } });
    const summary = await s.run();
    expect(summary.counts.delivered).toBe(30);
    // How many requests start in each second is the limiter's (runner/backoff.test.ts, on a fake clock).
    // Here, that the lower limit reached it: the bucket starts empty, so 30 requests at 20/s cannot all be
    // sent in under 1.5 s of the runner's own clock (unlimited, four at a time, they take tens of ms; which
    // limit is the lower is core/settings.test.ts).
    // A busy machine only makes delivery slower, never faster.
    expect(summary.timings.deliverMs).toBeGreaterThanOrEqual(1450);
    expect(api.received).toHaveLength(30);
  });

  it('logs every request for the debugger, with credentials redacted, searchable by key', async () => {
    api.reset((key) =>
      key === '2' ? { status: 400, body: `{"error":"bad","echo":"Bearer ${TOKEN}"}` } : { status: 200 },
    );
    const s = await scenario(3);
    const summary = await s.run();
    expect(api.received[0]?.authorization).toBe(`Bearer ${TOKEN}`);
    const store = new DiffStore(
      openBlobStore(s.state.url, { secrets: secretsFor(pgServer) }),
      'test',
      s.name,
    );
    const gz = await store.readRequestLog(summary.runId);
    expect(gz).toBeDefined();
    const text = gunzipSync(gz as Buffer).toString('utf8');
    expect(text).not.toContain(TOKEN);
    const forTwo = filterRequestLog(text, '2');
    expect(forTwo).toHaveLength(1);
    expect(forTwo[0]).toMatchObject({ operation: 'upsert', status: 400, keys: ['2'] });
    expect(forTwo[0]?.target).toContain('/contacts/2');
    expect(forTwo[0]?.responseBody).toContain('REDACTED');
    expect(filterRequestLog(text)).toHaveLength(3);
  });
});

describe('stopping a run', () => {
  it('ends in a Failed summary with reason Aborted and commits what was delivered', async () => {
    api.reset(() => ({ status: 200, delayMs: 20 }));
    const s = await scenario(60, { delivery: { batchSize: 5, concurrency: 1, maxRetries: 5 } });
    const controller = new AbortController();
    const stopping = s.run({}, controller.signal);
    while (api.received.length < 5) await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    const summary = await stopping;
    expect(summary.result).toBe('Failed');
    expect(summary.reason).toBe('Aborted');
    expect(summary.snapshot).toBeDefined();
    expect(summary.counts.delivered).toBeGreaterThanOrEqual(4);
    expect(api.received.length).toBeLessThan(60);
    api.reset();
    const next = await s.run();
    expect(next.counts).toMatchObject({
      added: 60 - summary.counts.delivered,
      delivered: 60 - summary.counts.delivered,
    });
  });
});

/** A Sync of `table` (created by `ddl`) to the fake API, with the given http settings; returns a runner. */
async function httpSync(ddl: string, http: Record<string, unknown> = {}, sync: Partial<SyncSpec> = {}) {
  counter++;
  const state = tempState();
  states.push(state);
  const table = `typed_${counter}`;
  await sql(srcUrl, ddl.replaceAll('$T', table));
  const secrets = secretResolver({}, { pg: { password: pgServer.password }, api: { token: SPECIAL } });
  const plan = (extra: Partial<SyncSpec> = {}) =>
    makePlan({
      server: pgServer,
      sourceDb: 'src',
      query: `SELECT * FROM ${table}`,
      destination: {
        type: 'http',
        http: {
          url: `${baseUrl}/records/{{ key }}`,
          method: 'PUT',
          body: 'row',
          batchSize: 100,
          idempotencyKeyHeader: 'Idempotency-Key',
          timeoutSeconds: 10,
          treatNotFoundAsDeleted: true,
          headers: [{ name: 'Authorization', valueFrom: { secretKeyRef: { name: 'api', key: 'token' } } }],
          ...http,
        },
      },
      sync: { mode: 'upsert', ...sync, ...extra },
      stateUrl: state.url,
      name: `typed-http-${counter}`,
    });
  return {
    state,
    name: `typed-http-${counter}`,
    source: (text: string) => sql(srcUrl, text.replaceAll('$T', table)),
    run: (extra: Partial<SyncSpec> = {}, log = silentLogger()) =>
      executeRun(plan(extra), {
        secrets,
        log,
        signal: new AbortController().signal,
        backoff: { baseMs: 5, capMs: 40 },
      }),
  };
}

describe('exact values in JSON bodies', () => {
  it('sends integers beyond 2^53, long decimals, bigint[] elements and -0 as exact JSON numbers', async () => {
    api.reset();
    const s = await httpSync(
      `CREATE TABLE $T (id bigint PRIMARY KEY, amount numeric(38,10), free numeric, doc jsonb, nums bigint[], neg float8);
       INSERT INTO $T VALUES (9007199254740993, 1234567890123456789012345678.1234567891,
         123456789012345678901234567890.000000000000000000001,
         '{"big": 9007199254740993, "huge": 123456789012345678901234567890, "long": 0.1000000000000000000001, "list": [18446744073709551617, 1.5]}',
         ARRAY[9007199254740993, -9223372036854775808], '-0')`,
    );
    const summary = await s.run();
    expect(summary.result).toBe('Succeeded');
    expect(api.received).toHaveLength(1);
    const raw = api.received[0]!.raw;
    expect(raw).toContain('"id":9007199254740993,');
    expect(raw).toContain('"amount":1234567890123456789012345678.1234567891,');
    expect(raw).toContain('"free":123456789012345678901234567890.000000000000000000001,');
    expect(raw).toContain('"big":9007199254740993');
    expect(raw).toContain('"huge":123456789012345678901234567890');
    expect(raw).toContain('"long":0.1000000000000000000001');
    expect(raw).toContain('"list":[18446744073709551617,1.5]');
    expect(raw).toContain('"nums":[9007199254740993,-9223372036854775808]');
    expect(raw).toContain('"neg":-0');
    expect(api.received[0]!.path).toBe('/records/9007199254740993');
  });

  it('sends non-finite floats (scalars and array elements) and numerics as the strings "NaN", "Infinity" and "-Infinity", and JSON null as null', async () => {
    api.reset();
    const s = await httpSync(
      `CREATE TABLE $T (id int PRIMARY KEY, f float8, r real, n numeric, doc jsonb, xs float8[]);
       INSERT INTO $T VALUES (1, 'NaN', 'NaN', 'NaN', 'null', ARRAY['NaN', '-0', 'Infinity', '-Infinity']::float8[]),
         (2, 'Infinity', 'Infinity', 'Infinity', NULL, NULL), (3, '-Infinity', '-Infinity', '-Infinity', '[null]', '{}'), (4, NULL, NULL, NULL, NULL, NULL)`,
    );
    expect((await s.run()).counts.delivered).toBe(4);
    expect(api.requestsFor('1')[0]?.raw).toBe(
      '{"id":1,"f":"NaN","r":"NaN","n":"NaN","doc":null,"xs":["NaN",-0,"Infinity","-Infinity"]}',
    );
    expect(api.requestsFor('2')[0]?.raw).toBe(
      '{"id":2,"f":"Infinity","r":"Infinity","n":"Infinity","doc":null,"xs":null}',
    );
    expect(api.requestsFor('3')[0]?.raw).toBe(
      '{"id":3,"f":"-Infinity","r":"-Infinity","n":"-Infinity","doc":[null],"xs":[]}',
    );
    expect(api.requestsFor('4')[0]?.raw).toBe('{"id":4,"f":null,"r":null,"n":null,"doc":null,"xs":null}');
  });

  it('delivers -0 as -0, and does not count a change from 0 to -0 (they are equal)', async () => {
    api.reset();
    const s = await httpSync(
      `CREATE TABLE $T (id int PRIMARY KEY, x float8); INSERT INTO $T VALUES (1, '-0'), (2, 0)`,
    );
    expect((await s.run()).counts.delivered).toBe(2);
    expect(api.requestsFor('1')[0]?.raw).toBe('{"id":1,"x":-0}');
    expect(api.requestsFor('2')[0]?.raw).toBe('{"id":2,"x":0}');
    await s.source(`UPDATE $T SET x = CASE WHEN id = 1 THEN 0 ELSE '-0' END`);
    api.reset();
    expect((await s.run()).counts).toMatchObject({ changed: 0, delivered: 0 });
  });
});

describe('URL templates and deletes', () => {
  it('fails before any request on a URL variable the Sync does not fill, naming the template and the fields', async () => {
    api.reset();
    const s = await httpSync(
      `CREATE TABLE $T (id int PRIMARY KEY, email text); INSERT INTO $T VALUES (1, 'a')`,
      {
        url: `${baseUrl}/contacts/{{ row.nope }}`,
      },
    );
    const summary = await s.run();
    expect(summary.result).toBe('Failed');
    expect(summary.reason).toBe('InvalidTemplate');
    expect(summary.message).toContain('{{ row.nope }}');
    expect(summary.message).toContain('fields: id, email');
    expect(api.received).toHaveLength(0);
  });

  it('rejects the rows whose URL needs a NULL or empty value and delivers the others', async () => {
    api.reset();
    const s = await httpSync(
      `CREATE TABLE $T (id int PRIMARY KEY, handle text);
       INSERT INTO $T VALUES (1, 'ada'), (2, NULL), (3, ''), (4, 'bob')`,
      { url: `${baseUrl}/contacts/{{ row.handle }}` },
    );
    const summary = await s.run();
    expect(summary.result).toBe('PartiallySucceeded');
    expect(summary.counts).toMatchObject({ delivered: 2, failed: 2 });
    expect(api.received.map((r) => r.path).sort()).toEqual(['/contacts/ada', '/contacts/bob']);
    const reasons = Object.fromEntries(summary.rejected.map((r) => [r.key, r.reason]));
    expect(reasons['2']).toContain('{{ row.handle }} in the URL is NULL');
    expect(reasons['3']).toContain('{{ row.handle }} in the URL is empty');
  });

  it('deletes removed rows with DELETE on the record URL and counts 404 as deleted', async () => {
    api.reset();
    const s = await httpSync(
      `CREATE TABLE $T (id int PRIMARY KEY, email text); INSERT INTO $T SELECT g, 'e' || g FROM generate_series(1, 10) g`,
      {},
      { deleteBehavior: 'delete' },
    );
    expect((await s.run()).counts.delivered).toBe(10);
    await s.source('DELETE FROM $T WHERE id IN (2, 3)');
    api.reset((key) => ({ status: key === '3' ? 404 : 204 }));
    const summary = await s.run();
    expect(summary.result).toBe('Succeeded');
    expect(summary.counts).toMatchObject({ removed: 2, delivered: 2, failed: 0 });
    expect(api.received.map((r) => `${r.method} ${r.path} ${r.raw}`).sort()).toEqual([
      'DELETE /records/2 ',
      'DELETE /records/3 ',
    ]);
  });
});

describe('secrets echoed by the API', () => {
  it('never reach the run summary, the request log or the log lines, in any encoding', async () => {
    const forms: Record<string, string> = {
      exact: SPECIAL,
      upper: SPECIAL.toUpperCase(),
      lower: SPECIAL.toLowerCase(),
      base64: Buffer.from(SPECIAL).toString('base64'),
      base64url: Buffer.from(SPECIAL).toString('base64url'),
      basic: Buffer.from(`user:${SPECIAL}`).toString('base64'),
      url: encodeURIComponent(SPECIAL),
      json: JSON.stringify(SPECIAL).slice(1, -1),
    };
    const echo = Object.entries(forms)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n');
    api.reset(() => ({ status: 400, body: echo }));
    const s = await httpSync(
      `CREATE TABLE $T (id int PRIMARY KEY, email text); INSERT INTO $T VALUES (1, 'a')`,
    );
    // A real logger at debug level, writing its JSON lines where the test can read them.
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const summary = await s.run({}, logger);
    expect(api.received[0]?.authorization).toBe(SPECIAL);
    expect(summary.counts.failed).toBe(1);
    expect(summary.rejected[0]?.reason).toContain('upper=REDACTED');
    const store = new DiffStore(
      openBlobStore(s.state.url, { secrets: secretsFor(pgServer) }),
      'test',
      s.name,
    );
    const log = gunzipSync((await store.readRequestLog(summary.runId)) as Buffer).toString('utf8');
    expect(filterRequestLog(log)[0]?.responseBody).toContain('base64=REDACTED');
    const seen = { summary: JSON.stringify(summary), requestLog: log, logLines: lines.join('') };
    for (const [where, text] of Object.entries(seen)) {
      for (const [form, value] of Object.entries(forms))
        expect(text, `${form} in ${where}`).not.toContain(value);
    }
  });
});
