import type { FastifyInstance } from 'fastify';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConsoleRunDebug, ConsoleSyncDetail, ConsoleSyncList, Sync } from '../../crds/index.ts';
import { consoleRunDebug, consoleSyncDetail, consoleSyncList } from '../../crds/index.ts';
import { DiffStore } from '../../core/diffstore/index.ts';
import { SynclineError } from '../../core/errors.ts';
import { silentLogger } from '../../core/logger.ts';
import { openBlobStore } from '../../core/storage/index.ts';
import { RequestLog } from '../../runner/requestlog.ts';
import { defaultConfig } from '../config.ts';
import { sync as syncFixture } from '../testdata/fixtures.ts';
import { readRequests } from './console-debug.ts';
import { CONSOLE_CSP } from './console-static.ts';
import { consoleRoutes, type ConsoleOptions } from './routes-console.ts';
import { buildApiApp } from './server.ts';
import { FakeApiKube } from './testing.ts';

const ALICE = { authorization: 'Bearer token-of-alice' };
const BOB = { authorization: 'Bearer token-of-bob' };
const RUN_ID = 'orders-s-abc123';

let kube: FakeApiKube;
let app: FastifyInstance;
let dir: string;
let storeUrl: string;

function syncIn(namespace: string, name: string, status?: Sync['status']): Sync {
  return {
    ...syncFixture({ schedule: { interval: '1h' } }, { namespace, name }),
    ...(status ? { status } : {}),
  };
}

const finished = {
  id: RUN_ID,
  trigger: 'schedule' as const,
  startedAt: '2026-01-01T12:00:00Z',
  finishedAt: '2026-01-01T12:00:08Z',
  result: 'PartiallySucceeded' as const,
  reason: 'RowsRejected',
  counts: { queried: 5, added: 5, changed: 0, removed: 0, delivered: 4, failed: 1, skipped: 0 },
};

const status: Sync['status'] = {
  conditions: [
    {
      type: 'Ready',
      status: 'False',
      reason: 'RowsRejected',
      message: '1 row rejected',
      lastTransitionTime: '2026-01-01T12:00:08Z',
    },
  ],
  phase: 'Succeeded',
  schedule: 'every 1h',
  nextRunAt: '2026-01-01T13:00:00Z',
  lastRun: finished,
  history: [finished, { ...finished, id: 'orders-s-older', result: 'Succeeded', reason: undefined }],
};

async function app_(options: Partial<ConsoleOptions> = {}): Promise<FastifyInstance> {
  const config = defaultConfig({ diffStore: { url: storeUrl } });
  return buildApiApp({
    kube,
    log: silentLogger(),
    rateLimitPerMinute: 10_000,
    plugins: [consoleRoutes({ config, secrets: () => '', distDir: join(dir, 'dist'), ...options })],
  });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'syncline-console-'));
  storeUrl = pathToFileURL(join(dir, 'store')).href;
  kube = new FakeApiKube();
  kube.putSync(syncIn('team-a', 'orders', status));
  kube.putSync(syncIn('team-a', 'customers'));
  kube.putSync(syncIn('team-b', 'leads'));
  kube.putSync(syncIn('team-c', 'secret-project'));
  kube.addUser('token-of-alice', 'alice');
  kube.addUser('token-of-bob', 'bob');
  for (const verb of ['list', 'get', 'trigger']) kube.allow({ user: 'alice', verb, namespace: 'team-a' });
  kube.allow({ user: 'alice', verb: 'list', namespace: 'team-b' });
  kube.allow({ user: 'bob', verb: 'list', namespace: 'team-b' });
  kube.allow({ user: 'bob', verb: 'get', namespace: 'team-b' });
  kube.allow({ user: 'bob', verb: 'trigger', namespace: 'team-b', name: 'leads' });
  app = await app_();
});
afterEach(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

const get = (url: string, headers: Record<string, string> = ALICE) =>
  app.inject({ method: 'GET', url, headers });

describe('GET /api/v1/syncs', () => {
  it('lists the Syncs of the namespaces the caller may list, saying which it may trigger', async () => {
    const res = await get('/api/v1/syncs');
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = consoleSyncList.parse(res.json()) as ConsoleSyncList;
    expect(body.namespaces).toEqual(['team-a', 'team-b']);
    expect(body.items.map((i) => [i.namespace, i.name, i.canTrigger])).toEqual([
      ['team-a', 'customers', true],
      ['team-a', 'orders', true],
      ['team-b', 'leads', false],
    ]);
    expect(body.items[1]).toEqual({
      namespace: 'team-a',
      name: 'orders',
      ready: { status: 'False', reason: 'RowsRejected', message: '1 row rejected' },
      phase: 'Succeeded',
      schedule: 'every 1h',
      paused: false,
      lastRun: {
        id: RUN_ID,
        result: 'PartiallySucceeded',
        startedAt: finished.startedAt,
        finishedAt: finished.finishedAt,
        counts: finished.counts,
        reason: 'RowsRejected',
      },
      nextRunAt: '2026-01-01T13:00:00Z',
      model: 'customers',
      destination: 'crm',
      mode: 'upsert',
      canTrigger: true,
    });
    expect(body.items[0]!.ready).toEqual({ status: 'Unknown' });
  });

  it('asks for trigger on each Sync when no Role grants it for the whole namespace', async () => {
    kube.putSync(syncIn('team-b', 'other'));
    const body = (await get('/api/v1/syncs', BOB)).json<ConsoleSyncList>();
    expect(body.items.map((i) => [i.name, i.canTrigger])).toEqual([
      ['leads', true],
      ['other', false],
    ]);
  });

  it('answers from the review cache when asked again, and filters by namespace', async () => {
    await get('/api/v1/syncs');
    const reviews = kube.accessReviews;
    await get('/api/v1/syncs');
    expect(kube.accessReviews).toBe(reviews);
    const body = (await get('/api/v1/syncs?namespace=team-b')).json<ConsoleSyncList>();
    expect(body.items.map((i) => i.name)).toEqual(['leads']);
    expect((await get('/api/v1/syncs?namespace=Not_A_Name')).statusCode).toBe(400);
  });

  it('is an empty list for a caller who may list nothing, and 401 without a valid token', async () => {
    kube.addUser('token-of-nobody', 'nobody');
    const body = (await get('/api/v1/syncs', { authorization: 'Bearer token-of-nobody' })).json();
    expect(body).toEqual({ items: [], namespaces: [] });
    const none = await get('/api/v1/syncs', {});
    expect(none.statusCode).toBe(401);
    expect(none.json().error.reason).toBe('Unauthenticated');
    expect((await get('/api/v1/syncs', { authorization: 'Bearer wrong' })).statusCode).toBe(401);
  });
});

describe('GET /api/v1/namespaces/{ns}/syncs/{name}', () => {
  it('answers the Sync with its conditions and runs with durations', async () => {
    const res = await get('/api/v1/namespaces/team-a/syncs/orders');
    expect(res.statusCode).toBe(200);
    const body = consoleSyncDetail.parse(res.json()) as ConsoleSyncDetail;
    expect(body.canTrigger).toBe(true);
    expect(body.conditions.map((c) => c.type)).toEqual(['Ready']);
    expect(body.runs.map((r) => [r.id, r.phase, r.durationMs])).toEqual([
      [RUN_ID, 'PartiallySucceeded', 8000],
      ['orders-s-older', 'Succeeded', 8000],
    ]);
    expect(body.runs[0]!.counts).toEqual(finished.counts);
  });

  it('refuses a caller without get before saying whether the Sync exists', async () => {
    const forbidden = await get('/api/v1/namespaces/team-a/syncs/orders', BOB);
    expect(forbidden.statusCode).toBe(403);
    expect((await get('/api/v1/namespaces/team-a/syncs/missing', BOB)).statusCode).toBe(403);
    const missing = await get('/api/v1/namespaces/team-a/syncs/missing');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.reason).toBe('SyncNotFound');
    expect((await get('/api/v1/namespaces/team-b/syncs/leads', BOB)).json().canTrigger).toBe(true);
    expect((await get('/api/v1/namespaces/Team/syncs/leads', BOB)).statusCode).toBe(400);
  });
});

/** A run's summary and request log in the file:// diff store, as a runner leaves them. */
async function storeRun(): Promise<void> {
  const store = new DiffStore(openBlobStore(storeUrl, { secrets: () => '' }), 'team-a', 'orders');
  await store.writeRunSummary(RUN_ID, {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunSummary',
    runId: RUN_ID,
    namespace: 'team-a',
    sync: 'orders',
    mode: 'upsert',
    startedAt: finished.startedAt,
    finishedAt: finished.finishedAt,
    result: 'PartiallySucceeded',
    reason: 'RowsRejected',
    message: '4 delivered, 1 rejected',
    counts: finished.counts,
    operations: { upsert: 5 },
    timings: { queryMs: 120, diffMs: 30, deliverMs: 900, commitMs: 40, totalMs: 1100 },
    rejected: [{ key: '3', operation: 'upsert', reason: 'HTTP 422 Unprocessable Entity: email is invalid' }],
    columns: [],
  });
  const file = join(dir, 'requests.jsonl.gz');
  const log = new RequestLog(file, RUN_ID, () => ['s3cr3t-token']);
  for (const id of ['1', '2', '3', '4', '5'])
    log.record({
      operation: 'upsert',
      target: `POST https://crm.example.com/contacts?token=s3cr3t-token&id=${id}`,
      keys: [id],
      status: id === '3' ? 422 : 200,
      latencyMs: 12,
      requestBody: `{"id":${id},"email":"private@example.com"}`,
    });
  await log.close();
  await store.writeRequestLog(RUN_ID, file);
}

describe('GET .../runs/{id}/debug', () => {
  const DEBUG = `/api/v1/namespaces/team-a/syncs/orders/runs/${RUN_ID}/debug`;

  it('answers the stage timings, the rejected rows and the request log, without bodies or secrets', async () => {
    await storeRun();
    const res = await get(DEBUG);
    expect(res.statusCode).toBe(200);
    const body = consoleRunDebug.parse(res.json()) as ConsoleRunDebug;
    expect(body.stages).toEqual([
      { stage: 'query', ms: 120 },
      { stage: 'diff', ms: 30 },
      { stage: 'deliver', ms: 900 },
      { stage: 'commit', ms: 40 },
      { stage: 'total', ms: 1100 },
    ]);
    expect(body.rejected).toEqual([
      { key: '3', operation: 'upsert', reason: 'HTTP 422 Unprocessable Entity: email is invalid' },
    ]);
    expect(body.requestLogKept).toBe(true);
    expect(body.truncated).toBe(false);
    expect(body.requests).toHaveLength(5);
    expect(body.requests[2]).toMatchObject({ method: 'POST', status: 422, durationMs: 12, keys: ['3'] });
    expect(body.requests[2]!.url).toMatch(/^https:\/\/crm\.example\.com\/contacts\?token=\[REDACTED\]&id=3$/);
    expect(res.body).not.toContain('s3cr3t-token');
    expect(res.body).not.toContain('private@example.com');
  });

  it('keeps only the rows and requests of one primary key', async () => {
    await storeRun();
    const body = (await get(`${DEBUG}?key=3`)).json<ConsoleRunDebug>();
    expect(body.key).toBe('3');
    expect(body.rejected.map((r) => r.key)).toEqual(['3']);
    expect(body.requests.map((r) => r.keys)).toEqual([['3']]);
    const none = (await get(`${DEBUG}?key=9`)).json<ConsoleRunDebug>();
    expect([none.rejected, none.requests]).toEqual([[], []]);
    expect((await get(`${DEBUG}?key=${'k'.repeat(2000)}`)).statusCode).toBe(400);
  });

  it('needs get on the Sync, names a run the store does not know, and refuses a malformed ID', async () => {
    await storeRun();
    expect((await get(DEBUG, BOB)).statusCode).toBe(403);
    const missing = await get('/api/v1/namespaces/team-a/syncs/orders/runs/orders-s-none/debug');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.reason).toBe('RunNotFound');
    expect((await get('/api/v1/namespaces/team-a/syncs/orders/runs/..%2F..%2Fx/debug')).statusCode).toBe(400);
  });

  it('says why when the diff store cannot be read', async () => {
    await app.close();
    app = await app_({
      openStore: async () => ({
        readRunSummary: async () => {
          throw new SynclineError('StorageUnreachable', 'connect ECONNREFUSED 10.0.0.9:9000');
        },
        readRequestLog: async () => undefined,
      }),
    });
    const res = await get(DEBUG);
    expect(res.statusCode).toBe(502);
    expect(res.json().error).toMatchObject({
      reason: 'RunRecordUnreadable',
      message: expect.stringContaining('StorageUnreachable'),
    });
  });

  it('answers a run without a request log, and a Sync whose diffStore.url leaves its namespace', async () => {
    const store = new DiffStore(openBlobStore(storeUrl, { secrets: () => '' }), 'team-a', 'orders');
    await storeRun();
    await store.blob.delete(`team-a/orders/runs/${RUN_ID}.requests.jsonl.gz`);
    const body = (await get(DEBUG)).json<ConsoleRunDebug>();
    expect([body.requestLogKept, body.requests]).toEqual([false, []]);
    kube.update('team-a', 'orders', (s) => (s.spec.diffStore = { url: `${storeUrl}/team-b` }));
    const outside = await get(DEBUG);
    expect(outside.statusCode).toBe(502);
    expect(outside.json().error.message).toContain('DiffStoreOutsideNamespace');
  });

  it('cuts the request log at the limit and says so', async () => {
    await storeRun();
    const store = new DiffStore(openBlobStore(storeUrl, { secrets: () => '' }), 'team-a', 'orders');
    const gz = (await store.readRequestLog(RUN_ID))!;
    expect(await readRequests(gz, undefined, 2)).toMatchObject({ more: true, entries: [{}, {}] });
    expect(await readRequests(gz, undefined, 5)).toMatchObject({ more: false });
    await expect(readRequests(Buffer.from('not gzip'), undefined, 5)).rejects.toThrow(/not valid gzip/);
  });
});

describe('the console pages', () => {
  it('answers 503 ConsoleNotBuilt while dist/ is missing, with the strict headers', async () => {
    const res = await app.inject({ method: 'GET', url: '/console/' });
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toMatchObject({ reason: 'ConsoleNotBuilt' });
    expect(res.json().error.message).toContain('npm run build:console');
    expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
  });

  it('serves the build at /console/ and redirects / there', async () => {
    mkdirSync(join(dir, 'dist', 'assets'), { recursive: true });
    writeFileSync(join(dir, 'dist', 'index.html'), '<!doctype html><script src="assets/app.js"></script>');
    writeFileSync(join(dir, 'dist', 'assets', 'app.js'), 'console.log(1)');
    const page = await app.inject({ method: 'GET', url: '/console/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    const script = await app.inject({ method: 'GET', url: '/console/assets/app.js' });
    expect([script.statusCode, script.headers['content-type']]).toEqual([
      200,
      'application/javascript; charset=utf-8',
    ]);
    const root = await app.inject({ method: 'GET', url: '/' });
    expect([root.statusCode, root.headers.location]).toEqual([302, '/console/']);
    expect((await app.inject({ method: 'GET', url: '/console' })).headers.location).toBe('/console/');
    expect((await app.inject({ method: 'GET', url: '/console/assets/nope.js' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/console/assets/..%2Findex.html' })).statusCode).toBe(
      404,
    );
  });
});
