import type { FastifyInstance } from 'fastify';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { webhookAnswer, type Sync, type SyncTrigger } from '../../../crds/index.ts';
import { decide, RUN_REQUESTED_ANNOTATION } from '../../schedule.ts';
import { sync as syncFixture } from '../../testdata/fixtures.ts';
import { readLedger } from '../ledger.ts';
import { buildApiApp } from '../server.ts';
import { FakeApiKube } from '../testing.ts';
import { parseWebhookFlags } from './config.ts';
import { WEBHOOK_BODY_LIMIT, webhookRoutes } from './routes.ts';
import { signBody } from './signature.ts';

const SECRETS = {
  SYNCLINE_WEBHOOK_SECRET_DBT_PROD: 'dbt-prod-secret',
  SYNCLINE_WEBHOOK_SECRET_DBT_STAGING: 'dbt-staging-secret',
  SYNCLINE_WEBHOOK_SECRET_FIVETRAN: 'fivetran-secret',
};
const WEBHOOKS = parseWebhookFlags(['dbt-prod=dbtCloud,dbt-staging=dbtCloud', 'fivetran=fivetran'], SECRETS);

/** A dbt Cloud job.run.completed delivery, shaped as docs.getdbt.com/docs/deploy/webhooks shows it. */
function dbtEvent(over: { eventId?: string; eventType?: string; data?: Record<string, unknown> } = {}) {
  return JSON.stringify({
    accountId: 1,
    webhooksID: 'wsu_12345abcde',
    eventId: over.eventId ?? 'wev_2L6ZDoilyiWzKkSA59Gmc2d7FDD',
    timestamp: '2023-01-31T19:29:35.789265936Z',
    eventType: over.eventType ?? 'job.run.completed',
    webhookName: 'syncline',
    data: {
      jobId: '123',
      jobName: 'Daily Job (dbt build)',
      runId: '12345',
      environmentId: '1234',
      projectId: '167194',
      runStatus: 'Success',
      runStatusCode: 10,
      runStatusMessage: 'None',
      runReason: 'Kicked off from UI by test@test.com',
      runStartedAt: '2023-01-31T19:28:07Z',
      runFinishedAt: '2023-01-31T19:29:32Z',
      ...over.data,
    },
  });
}

/** A Fivetran sync_end delivery. */
function fivetranEvent(over: Record<string, unknown> = {}) {
  return JSON.stringify({
    event: 'sync_end',
    created: '2024-05-22T00:06:08.638Z',
    connector_type: 'postgres',
    connector_id: 'mystified_presiding',
    connector_name: 'app_db',
    sync_id: 'b4703f73-6315-4e22-8d7a-3bfb18b2fed2',
    destination_group_id: 'deck_enjoy',
    data: { status: 'SUCCESSFUL' },
    ...over,
  });
}

const dbt = (t: Partial<NonNullable<SyncTrigger['dbtCloud']>>): SyncTrigger =>
  ({ dbtCloud: { accountId: 1, jobId: 123, ...t } }) as SyncTrigger;

function withTriggers(namespace: string, name: string, triggers: SyncTrigger[]): Sync {
  return syncFixture({ schedule: { triggers } }, { name, namespace, uid: `uid-${name}` });
}

let kube: FakeApiKube;
let app: FastifyInstance;
let logged: string;

beforeEach(async () => {
  kube = new FakeApiKube();
  // `results` left out, as a Sync read from the API server without defaults: only a success starts it.
  kube.putSync(withTriggers('team', 'after-dbt', [dbt({})]));
  kube.putSync(
    withTriggers('team', 'after-dbt-any', [
      dbt({ results: ['succeeded', 'failed', 'cancelled'], webhook: 'dbt-prod' }),
    ]),
  );
  kube.putSync(withTriggers('other', 'after-dbt-staging', [dbt({ webhook: 'dbt-staging' })]));
  kube.putSync(withTriggers('other', 'other-job', [dbt({ jobId: 456 })]));
  kube.putSync(withTriggers('other', 'other-account', [dbt({ accountId: 2 })]));
  kube.putSync(
    withTriggers('team', 'after-fivetran', [
      { fivetran: { connectorId: 'mystified_presiding' } } as SyncTrigger,
      dbt({ jobId: 789 }),
    ]),
  );
  kube.putSync(syncFixture({}, { name: 'scheduled', namespace: 'team' }));
  logged = '';
  const sink = new Writable({ write: (chunk, _enc, done) => ((logged += String(chunk)), done()) });
  app = await buildApiApp({
    kube,
    log: pino(sink),
    rateLimitPerMinute: 1000,
    plugins: [webhookRoutes(WEBHOOKS)],
  });
});
afterEach(() => app.close());

const deliver = (name: string, body: string | Buffer, headers: Record<string, string>) =>
  app.inject({
    method: 'POST',
    url: `/webhooks/v1/${name}`,
    headers: { 'content-type': 'application/json', ...headers },
    payload: body,
  });
const fromDbt = (body: string, name = 'dbt-prod', secret = SECRETS.SYNCLINE_WEBHOOK_SECRET_DBT_PROD) =>
  deliver(name, body, { authorization: signBody(body, secret) });
const fromFivetran = (body: string, signature = signBody(body, SECRETS.SYNCLINE_WEBHOOK_SECRET_FIVETRAN)) =>
  deliver('fivetran', body, { 'x-fivetran-signature-256': signature });

const requested = () =>
  [...kube.syncs.values()]
    .filter((s) => s.metadata.annotations?.[RUN_REQUESTED_ANNOTATION])
    .map((s) => `${s.metadata.namespace}/${s.metadata.name}`)
    .sort();

describe('dbt Cloud webhooks', () => {
  it('requests a run of exactly the Syncs whose trigger names the account and job of a succeeded run', async () => {
    const response = await fromDbt(dbtEvent());
    expect(response.statusCode).toBe(200);
    expect(webhookAnswer.strict().safeParse(response.json()).success).toBe(true);
    const { runs } = response.json();
    expect(runs).toEqual([
      expect.objectContaining({ namespace: 'team', sync: 'after-dbt', phase: 'Pending', replayed: false }),
      expect.objectContaining({
        namespace: 'team',
        sync: 'after-dbt-any',
        phase: 'Pending',
        replayed: false,
      }),
    ]);
    expect(requested()).toEqual(['team/after-dbt', 'team/after-dbt-any']);
    const stored = kube.syncs.get('team/after-dbt')!;
    expect(stored.metadata.annotations?.[RUN_REQUESTED_ANNOTATION]).toMatch(/^webhook-/);
    expect(readLedger(stored)).toEqual([
      expect.objectContaining({ id: runs[0].id, trigger: 'webhook', by: 'webhook:dbt-prod' }),
    ]);
    expect(logged).toContain('"webhook":"dbt-prod"');
    expect(logged).toContain('"event":"job.run.completed"');
    expect(logged).toContain('team/after-dbt-any');
  });

  it('starts the requested run as any requested run, with trigger webhook', async () => {
    const { runs } = (await fromDbt(dbtEvent())).json();
    const stored = kube.syncs.get('team/after-dbt')!;
    const decision = decide({
      now: new Date(),
      createdAt: new Date('2025-03-01T10:00:00Z'),
      schedule: stored.spec.schedule,
      paused: false,
      annotations: stored.metadata.annotations,
      status: {},
      active: false,
      blocked: false,
    });
    expect(decision.start?.trigger).toBe('webhook');
    expect(`after-dbt-${decision.start?.key}`).toBe(runs[0].id);
  });

  it('answers a replayed delivery with the same runs, marked replayed, and writes nothing', async () => {
    const first = (await fromDbt(dbtEvent())).json();
    const patches = kube.patches;
    const again = await fromDbt(dbtEvent());
    expect(again.statusCode).toBe(200);
    expect(again.json().runs).toEqual(first.runs.map((r: object) => ({ ...r, replayed: true })));
    expect(kube.patches).toBe(patches);
    // Another delivery is another request; it joins the run still pending.
    const other = (await fromDbt(dbtEvent({ eventId: 'wev_other' }))).json();
    expect(other.runs.map((r: { id: string }) => r.id)).toEqual(first.runs.map((r: { id: string }) => r.id));
    expect(other.runs.every((r: { replayed: boolean }) => !r.replayed)).toBe(true);
  });

  it('starts only the Syncs whose trigger asks for a failed or cancelled run (succeeded is the default)', async () => {
    const failed = await fromDbt(dbtEvent({ data: { runStatus: 'Error', runStatusCode: 20 } }));
    expect(failed.json().runs.map((r: { sync: string }) => r.sync)).toEqual(['after-dbt-any']);
    const cancelled = await fromDbt(
      dbtEvent({ eventId: 'wev_c', data: { runStatus: 'Cancelled', runStatusCode: 30 } }),
    );
    expect(cancelled.json().runs.map((r: { sync: string }) => r.sync)).toEqual(['after-dbt-any']);
    expect(requested()).toEqual(['team/after-dbt-any']);
  });

  it('keeps a trigger that names a webhook to that webhook', async () => {
    const body = dbtEvent();
    const response = await fromDbt(body, 'dbt-staging', SECRETS.SYNCLINE_WEBHOOK_SECRET_DBT_STAGING);
    expect(response.json().runs.map((r: { sync: string }) => r.sync)).toEqual([
      'after-dbt-staging',
      'after-dbt',
    ]);
    expect(requested()).toEqual(['other/after-dbt-staging', 'team/after-dbt']);
  });

  it('answers 200 with no runs and the reason for events that start none', async () => {
    for (const eventType of ['job.run.started', 'job.run.errored']) {
      const response = await fromDbt(dbtEvent({ eventType }));
      expect(response.statusCode).toBe(200);
      expect(response.json()).toMatchObject({ runs: [], reason: 'WebhookEventIgnored' });
      expect(response.json().message).toContain(`dbt Cloud event ${eventType} starts no run`);
    }
    const running = await fromDbt(dbtEvent({ data: { runStatus: 'Running', runStatusCode: 3 } }));
    expect(running.json().message).toContain('has status Running');
    const unknownJob = await fromDbt(dbtEvent({ data: { jobId: '999' } }));
    expect(unknownJob.json()).toMatchObject({
      runs: [],
      message: 'no Sync has a trigger for dbt Cloud account 1 job 999 (spec.schedule.triggers)',
    });
    const failedJob = await fromDbt(
      dbtEvent({ data: { jobId: '789', runStatus: 'Error', runStatusCode: 20 } }),
    );
    expect(failedJob.json().message).toContain('team/after-fivetran: its trigger runs on succeeded only');
    expect(requested()).toEqual([]);
  });
});

describe('Fivetran webhooks', () => {
  it('requests a run of the Syncs whose trigger names the connector, with an upper-case signature', async () => {
    const body = fivetranEvent();
    const response = await fromFivetran(
      body,
      signBody(body, SECRETS.SYNCLINE_WEBHOOK_SECRET_FIVETRAN).toUpperCase(),
    );
    expect(response.statusCode).toBe(200);
    expect(response.json().runs).toEqual([
      expect.objectContaining({ namespace: 'team', sync: 'after-fivetran', replayed: false }),
    ]);
    expect(readLedger(kube.syncs.get('team/after-fivetran')!)[0]).toMatchObject({ by: 'webhook:fivetran' });
    const again = await fromFivetran(body);
    expect(again.json().runs).toEqual([expect.objectContaining({ sync: 'after-fivetran', replayed: true })]);
  });

  it('starts nothing for a failed sync (succeeded is the default), a rescheduled one, or a test delivery', async () => {
    const failed = await fromFivetran(fivetranEvent({ data: { status: 'FAILURE_WITH_TASK' } }));
    expect(failed.json()).toMatchObject({ runs: [], reason: 'WebhookEventIgnored' });
    expect(failed.json().message).toContain('team/after-fivetran: its trigger runs on succeeded only');
    const rescheduled = await fromFivetran(fivetranEvent({ data: { status: 'RESCHEDULED' } }));
    expect(rescheduled.json().message).toContain('was rescheduled, not finished');
    // The test payload Fivetran sends when the webhook is created: it must be answered with a 2xx.
    const test = JSON.stringify({
      event: 'test_event',
      created: 'timestamp',
      connector_type: '_connector_type',
      connector_id: '_connector_1',
      group_id: '_destination_1',
    });
    const tested = await fromFivetran(test);
    expect(tested.statusCode).toBe(200);
    expect(tested.json().message).toContain('a test delivery: the webhook works');
    expect(requested()).toEqual([]);
  });
});

describe('webhook deliveries that are refused', () => {
  it('answers 401 for a missing, malformed or wrong signature, writes nothing and logs no secret', async () => {
    const body = dbtEvent();
    const cases = [
      await deliver('dbt-prod', body, {}),
      await deliver('dbt-prod', body, { authorization: 'Bearer abc' }),
      await fromDbt(body, 'dbt-prod', SECRETS.SYNCLINE_WEBHOOK_SECRET_DBT_STAGING),
      await deliver('dbt-prod', `${body} `, {
        authorization: signBody(body, SECRETS.SYNCLINE_WEBHOOK_SECRET_DBT_PROD),
      }),
      await deliver('fivetran', fivetranEvent(), {
        authorization: signBody(fivetranEvent(), SECRETS.SYNCLINE_WEBHOOK_SECRET_FIVETRAN),
      }),
    ];
    for (const response of cases) {
      expect(response.statusCode).toBe(401);
      expect(response.json()).toMatchObject({ error: { code: 401, reason: 'WebhookSignatureInvalid' } });
    }
    expect(cases[0]!.json().error.message).toContain('no authorization header');
    expect(kube.patches).toBe(0);
    for (const secret of Object.values(SECRETS)) expect(logged).not.toContain(secret);
    expect(logged).not.toContain(signBody(body, SECRETS.SYNCLINE_WEBHOOK_SECRET_DBT_STAGING));
  });

  it('answers 404 for a webhook the operator does not have', async () => {
    const response = await fromDbt(dbtEvent(), 'dbt-dev');
    expect(response.statusCode).toBe(404);
    expect(response.json().error).toMatchObject({ reason: 'WebhookNotFound' });
  });

  it('answers 413 with a JSON error for a body over the cap, 64 KiB and more being fine below it', async () => {
    const padded = dbtEvent({ data: { padding: 'x'.repeat(100 * 1024) } });
    expect((await fromDbt(padded)).statusCode).toBe(200);
    const large = dbtEvent({ data: { padding: 'x'.repeat(WEBHOOK_BODY_LIMIT) } });
    const response = await fromDbt(large);
    expect(response.statusCode).toBe(413);
    expect(response.json().error).toMatchObject({ reason: 'BodyTooLarge' });
    expect(response.json().error.message).toContain(`larger than ${WEBHOOK_BODY_LIMIT} bytes`);
  });

  it('answers 400 for a signed body that is not the event', async () => {
    for (const body of [
      'not json',
      '{"hello":"world"}',
      JSON.stringify({ eventId: 'x', eventType: 'job.run.completed' }),
      '[]',
    ]) {
      const response = await fromDbt(body);
      expect(response.statusCode).toBe(400);
      expect(response.json().error).toMatchObject({ reason: 'WebhookPayloadInvalid' });
    }
    const noAccount = await fromDbt(
      JSON.stringify({ eventId: 'x', eventType: 'job.run.completed', data: { jobId: '1' } }),
    );
    expect(noAccount.json().error.message).toContain('accountId is missing');
    const fivetran = await fromFivetran('{"event":"sync_end"}');
    expect(fivetran.statusCode).toBe(400);
    expect(fivetran.json().error.message).toContain('connector_id is missing');
    // Events Syncline does not act on are answered 200 whatever fields they lack (a 4xx is retried).
    const other = await fromFivetran('{"event":"create_user","created":"2024-01-01T00:00:00Z"}');
    expect(other.json()).toMatchObject({ runs: [], reason: 'WebhookEventIgnored' });
    const started = await fromDbt(JSON.stringify({ eventId: 'y', eventType: 'job.run.started' }));
    expect(started.json()).toMatchObject({ runs: [], reason: 'WebhookEventIgnored' });
    expect(kube.patches).toBe(0);
  });

  it('reads the raw bytes whatever the content type', async () => {
    const body = dbtEvent();
    const response = await deliver('dbt-prod', body, {
      'content-type': 'text/plain',
      authorization: signBody(body, SECRETS.SYNCLINE_WEBHOOK_SECRET_DBT_PROD),
    });
    expect(response.statusCode).toBe(200);
    expect(response.json().runs).toHaveLength(2);
  });
});
