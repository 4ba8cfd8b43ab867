import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import pino from 'pino';
import { decide, RUN_REQUESTED_ANNOTATION, RESYNC_REQUESTED_ANNOTATION } from '../schedule.ts';
import { sync as syncFixture } from '../testdata/fixtures.ts';
import { readLedger } from './ledger.ts';
import { buildApiApp } from './server.ts';
import { FakeApiKube } from './testing.ts';

const RUNS = '/api/v1/namespaces/team/syncs/customers-to-crm/runs';
const TRIGGERER = 'Bearer token-of-ci';
const READER = 'Bearer token-of-reader';

let kube: FakeApiKube;
let app: FastifyInstance;
let logged: string;

beforeEach(async () => {
  kube = new FakeApiKube();
  kube.putSync(syncFixture({ schedule: {} }));
  kube.addUser('token-of-ci', 'system:serviceaccount:ci:airflow');
  kube.addUser('token-of-reader', 'jane');
  for (const verb of ['trigger', 'get'])
    kube.allow({ user: 'system:serviceaccount:ci:airflow', verb, namespace: 'team' });
  kube.allow({ user: 'jane', verb: 'get', namespace: 'team' });
  logged = '';
  const sink = new Writable({ write: (chunk, _enc, done) => ((logged += String(chunk)), done()) });
  app = await buildApiApp({ kube, log: pino(sink), waitPollMs: 5, rateLimitPerMinute: 1000 });
});
afterEach(() => app.close());

const post = (headers: Record<string, string> = {}, payload?: unknown, url = RUNS) =>
  app.inject({
    method: 'POST',
    url,
    headers: { authorization: TRIGGERER, ...headers },
    ...(payload === undefined ? {} : { payload: payload as object }),
  });

/** What the leader's reconciler does with the Sync as it is now: start the requested run and mark it handled. */
function operatorStartsRun(now = new Date()) {
  kube.update('team', 'customers-to-crm', (sync) => {
    const decision = decide({
      now,
      createdAt: new Date('2025-03-01T10:00:00Z'),
      schedule: undefined,
      paused: false,
      annotations: sync.metadata.annotations,
      status: sync.status ?? {},
      active: false,
      blocked: false,
    });
    const id = `customers-to-crm-${decision.start!.key}`;
    sync.status = {
      ...sync.status,
      handledRunRequest: decision.handledRunRequest,
      handledResyncRequest: decision.handledResyncRequest,
      activeRun: {
        id,
        job: id,
        trigger: decision.start!.trigger,
        fullResync: decision.start!.fullResync,
        startedAt: now.toISOString(),
      },
    };
  });
}

function operatorFinishesRun(result: 'Succeeded' | 'Failed', reason?: string) {
  kube.update('team', 'customers-to-crm', (sync) => {
    const active = sync.status!.activeRun!;
    const record = { ...active, finishedAt: new Date().toISOString(), result, ...(reason ? { reason } : {}) };
    sync.status = {
      ...sync.status,
      activeRun: undefined,
      lastRun: record,
      history: [record, ...(sync.status?.history ?? [])],
    };
  });
}

describe('the run API: authentication and authorisation', () => {
  it('answers 401 with a JSON error without a token, with a malformed header, and with a token the API server rejects', async () => {
    for (const headers of [{}, { authorization: 'Basic abc' }, { authorization: 'Bearer not-a-token' }]) {
      const response = await app.inject({ method: 'POST', url: RUNS, headers });
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(response.json()).toMatchObject({ error: { code: 401, reason: 'Unauthenticated' } });
    }
    expect(kube.patches).toBe(0);
    expect(logged).not.toContain('not-a-token');
  });

  it('answers 403 to a caller without the trigger verb, naming the verb, and writes nothing', async () => {
    const response = await post({ authorization: READER });
    expect(response.statusCode).toBe(403);
    expect(response.json().error).toMatchObject({ reason: 'Forbidden' });
    expect(response.json().error.message).toContain(
      'may not trigger syncs "customers-to-crm".syncline.io in namespace team',
    );
    expect(kube.patches).toBe(0);
  });

  it('does not tell a caller who may not see a Sync whether it exists', async () => {
    const missing = await post(
      { authorization: READER },
      undefined,
      '/api/v1/namespaces/other/syncs/nope/runs',
    );
    expect(missing.statusCode).toBe(403);
    kube.allow({ user: 'system:serviceaccount:ci:airflow', verb: 'trigger', namespace: 'other' });
    const allowed = await post({}, undefined, '/api/v1/namespaces/other/syncs/nope/runs');
    expect(allowed.statusCode).toBe(404);
    expect(allowed.json().error.reason).toBe('SyncNotFound');
  });

  it('reviews a token once while its answer is cached, and never logs it', async () => {
    await post();
    await app.inject({ method: 'GET', url: RUNS, headers: { authorization: TRIGGERER } });
    expect(kube.tokenReviews).toBe(1);
    expect(logged).toContain('"user":"system:serviceaccount:ci:airflow"');
    expect(logged).not.toContain('token-of-ci');
  });
});

describe('the run API: requests', () => {
  it('requests a run through the annotation and the ledger, and names it', async () => {
    const response = await post();
    expect(response.statusCode).toBe(202);
    const run = response.json();
    expect(run).toMatchObject({
      namespace: 'team',
      sync: 'customers-to-crm',
      phase: 'Pending',
      trigger: 'api',
    });
    expect(response.headers.location).toBe(`${RUNS}/${run.id}`);
    const stored = kube.syncs.get('team/customers-to-crm')!;
    expect(stored.metadata.annotations?.[RUN_REQUESTED_ANNOTATION]).toMatch(/^api-/);
    expect(readLedger(stored)).toEqual([
      expect.objectContaining({ id: run.id, by: 'system:serviceaccount:ci:airflow' }),
    ]);

    // The operator computes the same run ID from the annotation: the run the answer named is the one it starts.
    operatorStartsRun();
    const running = await app.inject({
      method: 'GET',
      url: `${RUNS}/${run.id}`,
      headers: { authorization: READER },
    });
    expect(running.json()).toMatchObject({ id: run.id, phase: 'Running', trigger: 'api' });
  });

  it('starts one run for a retried POST with the same Idempotency-Key, and refuses the key for another request', async () => {
    const first = await post({ 'idempotency-key': 'dag-run-42' });
    operatorStartsRun();
    operatorFinishesRun('Succeeded');
    const retry = await post({ 'idempotency-key': 'dag-run-42' });
    expect(retry.statusCode).toBe(200);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.json()).toMatchObject({ id: first.json().id, phase: 'Succeeded' });
    expect(kube.patches).toBe(1);

    const other = await post(
      { 'idempotency-key': 'dag-run-42', 'content-type': 'application/json' },
      { fullResync: true },
    );
    expect(other.statusCode).toBe(422);
    expect(other.json().error.reason).toBe('IdempotencyKeyReused');
  });

  it('joins a request that is still pending instead of queueing a second run', async () => {
    const first = await post();
    const second = await post();
    expect(second.statusCode).toBe(200);
    expect(second.json().id).toBe(first.json().id);
    // A full resync is a different run: it replaces the pending one, which it covers.
    const resync = await post({ 'content-type': 'application/json' }, { fullResync: true });
    expect(resync.statusCode).toBe(202);
    expect(resync.json()).toMatchObject({ fullResync: true });
    expect(
      kube.syncs.get('team/customers-to-crm')!.metadata.annotations?.[RESYNC_REQUESTED_ANNOTATION],
    ).toMatch(/^api-/);
    operatorStartsRun();
    const covered = await app.inject({
      method: 'GET',
      url: `${RUNS}/${first.json().id}`,
      headers: { authorization: READER },
    });
    expect(covered.json()).toMatchObject({ phase: 'Superseded', supersededBy: resync.json().id });
  });

  it('retries its write when the Sync changed in between (a conflict), and writes once', async () => {
    kube.conflictsToInject = 3;
    const response = await post();
    expect(response.statusCode).toBe(202);
    expect(kube.patches).toBe(1);
  });

  it('answers malformed requests with 400, 413 and 415', async () => {
    expect(
      (await post({ 'content-type': 'application/json' }, { fullResync: 'yes' })).json().error.reason,
    ).toBe('InvalidRequest');
    expect((await post({ 'content-type': 'application/json' }, { other: 1 })).statusCode).toBe(400);
    expect((await post({ 'idempotency-key': 'x'.repeat(300) })).statusCode).toBe(400);
    const bad = await app.inject({
      method: 'POST',
      url: RUNS,
      headers: { authorization: TRIGGERER, 'content-type': 'application/json' },
      payload: '{not json',
    });
    expect(bad.json().error.reason).toBe('InvalidRequest');
    const large = await app.inject({
      method: 'POST',
      url: RUNS,
      headers: { authorization: TRIGGERER, 'content-type': 'application/json' },
      payload: JSON.stringify({ pad: 'x'.repeat(100_000) }),
    });
    expect(large.statusCode).toBe(413);
    expect(large.json().error.reason).toBe('BodyTooLarge');
    const text = await app.inject({
      method: 'POST',
      url: RUNS,
      headers: { authorization: TRIGGERER, 'content-type': 'text/csv' },
      payload: 'a,b',
    });
    expect(text.statusCode).toBe(415);
    expect(
      (
        await app.inject({
          method: 'GET',
          url: '/api/v1/namespaces/Team!/syncs/x/runs',
          headers: { authorization: TRIGGERER },
        })
      ).statusCode,
    ).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/api/v2/nothing' })).json().error.reason).toBe(
      'RouteNotFound',
    );
    expect(kube.patches).toBe(0);
  });
});

describe('the run API: reading runs', () => {
  it('lists the pending request, the active run and the history', async () => {
    const first = await post();
    operatorStartsRun();
    operatorFinishesRun('Failed', 'SourceUnreachable');
    const second = await post();
    const list = await app.inject({ method: 'GET', url: RUNS, headers: { authorization: READER } });
    expect(list.json().items.map((r: { id: string; phase: string }) => [r.id, r.phase])).toEqual([
      [second.json().id, 'Pending'],
      [first.json().id, 'Failed'],
    ]);
  });

  it('holds a GET with wait until the run finishes, and answers at once without it', async () => {
    const { id } = (await post()).json();
    operatorStartsRun();
    const now = await app.inject({ method: 'GET', url: `${RUNS}/${id}`, headers: { authorization: READER } });
    expect(now.json().phase).toBe('Running');
    const waiting = app.inject({
      method: 'GET',
      url: `${RUNS}/${id}?wait=30s`,
      headers: { authorization: READER },
    });
    setTimeout(() => operatorFinishesRun('Failed', 'AuthenticationFailed'), 50);
    const done = await waiting;
    expect(done.json()).toMatchObject({ id, phase: 'Failed', reason: 'AuthenticationFailed' });
  });

  it('answers 404 for a run the Sync does not know, and 400 for a bad wait', async () => {
    const missing = await app.inject({
      method: 'GET',
      url: `${RUNS}/customers-to-crm-m-0000`,
      headers: { authorization: READER },
    });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.reason).toBe('RunNotFound');
    const { id } = (await post()).json();
    const bad = await app.inject({
      method: 'GET',
      url: `${RUNS}/${id}?wait=forever`,
      headers: { authorization: READER },
    });
    expect(bad.statusCode).toBe(400);
  });

  it('rate-limits a caller, with Retry-After and a JSON error', async () => {
    const limited = await buildApiApp({ kube, log: pino({ level: 'silent' }), rateLimitPerMinute: 3 });
    const codes: number[] = [];
    let last;
    for (let i = 0; i < 5; i++) {
      last = await limited.inject({ method: 'GET', url: RUNS, headers: { authorization: READER } });
      codes.push(last.statusCode);
    }
    expect(codes).toEqual([200, 200, 200, 429, 429]);
    expect(Number(last!.headers['retry-after'])).toBeGreaterThan(0);
    expect(last!.json().error.reason).toBe('RateLimited');
    // Another caller has a budget of its own.
    expect(
      (await limited.inject({ method: 'GET', url: RUNS, headers: { authorization: TRIGGERER } })).statusCode,
    ).toBe(200);
    await limited.close();
  });
});

describe('the run API: requests from browsers of other sites', () => {
  it('refuses a POST another site makes (a proxy cookie would carry it), and serves the same-origin one and pipelines', async () => {
    const foreign: Record<string, string>[] = [
      { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' },
      { 'sec-fetch-site': 'same-site', origin: 'https://other.syncline.example' },
      { origin: 'https://evil.example' },
      { origin: 'null' },
    ];
    for (const headers of foreign) {
      const refused = await post(headers);
      expect(refused.statusCode).toBe(403);
      expect(refused.json().error.reason).toBe('CrossSiteRequest');
    }
    expect(kube.patches).toBe(0);
    expect((await post({ 'sec-fetch-site': 'same-origin', origin: 'http://localhost:80' })).statusCode).toBe(
      202,
    );
    expect(
      (await post({ origin: 'https://syncline.example:8443', host: 'syncline.example:8443' })).statusCode,
    ).toBe(200);
    // A pipeline sends neither header; a GET from anywhere only reads.
    expect((await post()).statusCode).toBe(200);
    const read = await app.inject({
      method: 'GET',
      url: RUNS,
      headers: { authorization: READER, 'sec-fetch-site': 'cross-site' },
    });
    expect(read.statusCode).toBe(200);
  });
});
