// The run API end to end: operators (two, leader-elected) serving it over TLS against the real API server,
// whose TokenReview and SubjectAccessReview decide who may do what; runs started through it are the
// operator's usual runs (the test agent runs their pods). Tokens: real service-account tokens from the
// TokenRequest API, one forged with the cluster's own signing key (to show an expired one is refused for
// its expiry), and one from another cluster's key.
import { spawn as spawnChild } from 'node:child_process';
import { createHmac, createPrivateKey, createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent } from '../agent/agent.ts';
import { REPO_DIR } from '../stack/paths.ts';
import { run } from '../stack/process.ts';
import { ensureOrchestratorVenv } from '../stack/orchestrators.ts';
import { callApi, callApiRaw, type ApiTarget } from './api-client.ts';
import { startOperator, type OperatorProcess } from './operator-process.ts';
import { applyScenario, startSink, startWarehouse, type Sink, type Warehouse } from './scenario.ts';
import { eventually, Kube, loadKubeConfig } from './support.ts';

const kubeconfigPath = inject('kubeconfigPath');
const env = { ...process.env, KUBECONFIG: kubeconfigPath };
const kubectl = (...args: string[]) => run('kubectl', args, { env }).then((r) => r.stdout);
const SERVER_NAME = 'syncline-api.e2e.test';

let kube: Kube;
let agent: Agent;
let sink: Sink;
let warehouse: Warehouse;
let ns: string;
let scratch: string;
let ca: Buffer;
const operators: Record<string, OperatorProcess> = {};
const tokens: Record<string, string> = {};

interface RunView {
  id: string;
  phase: string;
  trigger?: string;
  reason?: string;
  message?: string;
  counts?: { queried: number; delivered: number };
}

const runsOf = (sync: string) => `/api/v1/namespaces/${ns}/syncs/${sync}/runs`;

async function makeCertificate(dir: string): Promise<void> {
  await run('openssl', [
    ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'],
    ...['-subj', `/CN=${SERVER_NAME}`, '-addext', `subjectAltName=DNS:${SERVER_NAME},IP:127.0.0.1`],
    ...['-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')],
  ]);
}

const WEBHOOK_SECRET = 'whsec-e2e-0123456789';

function startReplica(identity: string): OperatorProcess {
  return startOperator(
    [
      ...['--webhook', 'dbt-prod=dbtCloud'],
      ...['--kubeconfig', kubeconfigPath, '--namespaces', ns, '--metrics-port', '0', '--api-port', '0'],
      ...['--api-tls-cert-file', join(scratch, 'tls.crt'), '--api-tls-key-file', join(scratch, 'tls.key')],
      ...['--diff-store-url', `file://${join(scratch, 'store')}`, '--identity', identity],
      ...['--lease-namespace', ns, '--lease-name', 'syncline-operator', '--lease-duration-seconds', '4'],
      ...[
        '--renew-deadline-seconds',
        '3',
        '--retry-period-seconds',
        '1',
        '--pod-start-timeout-seconds',
        '20',
      ],
    ],
    { SYNCLINE_WEBHOOK_SECRET_DBT_PROD: WEBHOOK_SECRET },
  );
}

async function target(identity: string): Promise<ApiTarget> {
  return { port: await operators[identity]!.apiPort(), ca, servername: SERVER_NAME };
}

/** A replica still running (the failover test kills the leader of the time). */
function alive(): string {
  const identity = Object.keys(operators).find((id) => !operators[id]!.exited());
  if (!identity) throw new Error('no operator replica is running');
  return identity;
}

async function leader(): Promise<string> {
  return eventually('a leader', async () => {
    const lease = JSON.parse(await kubectl('get', 'lease', 'syncline-operator', '-n', ns, '-o', 'json')) as {
      spec: { holderIdentity?: string };
    };
    return lease.spec.holderIdentity?.split('_')[0] || undefined;
  });
}

/** A service-account token signed with `key` (the cluster's own, or another), valid or expired. */
function forgeToken(
  key: KeyObject,
  serviceAccount: { name: string; uid: string },
  expiresInSeconds: number,
): string {
  const now = Math.floor(Date.now() / 1000);
  const issuer = 'https://kubernetes.default.svc.cluster.local';
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const header = part({ alg: 'RS256', typ: 'JWT' });
  const claims = part({
    iss: issuer,
    aud: [issuer],
    sub: `system:serviceaccount:${ns}:${serviceAccount.name}`,
    iat: now - 3600,
    nbf: now - 3600,
    exp: now + expiresInSeconds,
    'kubernetes.io': { namespace: ns, serviceaccount: serviceAccount },
  });
  const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key).toString('base64url');
  return `${header}.${claims}.${signature}`;
}

beforeAll(async () => {
  kube = new Kube(loadKubeConfig(kubeconfigPath));
  scratch = mkdtempSync(join(tmpdir(), 'syncline-run-api-'));
  [warehouse, sink] = await Promise.all([startWarehouse(3), startSink()]);
  ns = await kube.namespace('run-api');
  await makeCertificate(scratch);
  ca = readFileSync(join(scratch, 'tls.crt'));
  agent = new Agent({ kubeConfig: kube.kc, namespace: ns, retryMs: 500 });
  await agent.start();
  await applyScenario(kube, ns, warehouse, sink, { name: 'customers' });
  await kube.create('models', ns, {
    kind: 'Model',
    metadata: { name: 'broken' },
    spec: { sourceRef: { name: 'warehouse' }, query: 'SELECT id, nope FROM customers', primaryKey: 'id' },
  });
  // Started by dbt Cloud: a run of job 42 of account 7 that succeeds.
  await kube.create('syncs', ns, {
    kind: 'Sync',
    metadata: { name: 'after-dbt' },
    spec: {
      modelRef: { name: 'customers' },
      destinationRef: { name: 'crm' },
      mode: 'upsert',
      schedule: { triggers: [{ dbtCloud: { accountId: 7, jobId: 42, webhook: 'dbt-prod' } }] },
    },
  });
  // The name the Dagster example's asset syncs (examples/orchestrators/dagster).
  await kube.create('syncs', ns, {
    kind: 'Sync',
    metadata: { name: 'customers-to-hubspot' },
    spec: { modelRef: { name: 'customers' }, destinationRef: { name: 'crm' }, mode: 'upsert' },
  });
  await kube.create('syncs', ns, {
    kind: 'Sync',
    metadata: { name: 'broken' },
    spec: { modelRef: { name: 'broken' }, destinationRef: { name: 'crm' }, mode: 'upsert' },
  });
  // A pipeline with the verb (a Role like the chart's trigger ClusterRole) and an analyst who may only read.
  const rbac = {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      ...['pipeline', 'analyst'].map((name) => ({
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name, namespace: ns },
      })),
      role('runs-trigger', ['get', 'list', 'trigger']),
      role('runs-read', ['get', 'list']),
      binding('pipeline', 'runs-trigger'),
      binding('analyst', 'runs-read'),
    ],
  };
  writeFileSync(join(scratch, 'rbac.json'), JSON.stringify(rbac));
  await kubectl('apply', '-f', join(scratch, 'rbac.json'));
  for (const name of ['pipeline', 'analyst'])
    tokens[name] = (await kubectl('create', 'token', name, '-n', ns, '--duration=1h')).trim();
  for (const identity of ['op-a', 'op-b']) operators[identity] = startReplica(identity);
  await Promise.all(Object.values(operators).map((o) => o.apiPort()));
}, 180_000);

afterAll(async () => {
  for (const operator of Object.values(operators)) await operator.kill();
  await agent?.stop();
  await sink?.close();
  await warehouse?.postgres.stop();
  if (ns) await kubectl('delete', 'namespace', ns, '--wait=false').catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
});

function role(name: string, verbs: string[]) {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name, namespace: ns },
    rules: [{ apiGroups: ['syncline.io'], resources: ['syncs'], verbs }],
  };
}

function binding(serviceAccount: string, roleName: string) {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: serviceAccount, namespace: ns },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: roleName },
    subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace: ns }],
  };
}

describe('the run API, authenticated and authorised by the API server', () => {
  it('refuses no token, a token of another cluster and an expired token (401), and a caller without the verb (403)', async () => {
    const api = await target('op-a');
    const uid = (
      JSON.parse(await kubectl('get', 'sa', 'pipeline', '-n', ns, '-o', 'json')) as {
        metadata: { uid: string };
      }
    ).metadata.uid;
    const clusterKey = createPrivateKey(readFileSync(join(inject('kubeDir'), 'sa.key')));
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const pipeline = { name: 'pipeline', uid };

    // The forged token is a real one while it is valid: the 401s below are for expiry and for the key.
    const forgedValid = await callApi(api, 'GET', runsOf('customers'), {
      token: forgeToken(clusterKey, pipeline, 600),
    });
    expect(forgedValid.status).toBe(200);
    for (const token of [
      undefined,
      forgeToken(clusterKey, pipeline, -60),
      forgeToken(otherKey, pipeline, 600),
      'garbage',
    ]) {
      const answer = await callApi<{ error: { reason: string } }>(
        api,
        'POST',
        runsOf('customers'),
        token ? { token } : {},
      );
      expect(answer.status).toBe(401);
      expect(answer.body.error.reason).toBe('Unauthenticated');
    }
    const forbidden = await callApi<{ error: { reason: string; message: string } }>(
      api,
      'POST',
      runsOf('customers'),
      { token: tokens['analyst']! },
    );
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error.message).toContain(`system:serviceaccount:${ns}:analyst may not trigger`);
    expect((await callApi(api, 'GET', runsOf('customers'), { token: tokens['analyst']! })).status).toBe(200);
    const unknown = await callApi<{ error: { reason: string } }>(api, 'POST', runsOf('nope'), {
      token: tokens['pipeline']!,
    });
    expect([unknown.status, unknown.body.error.reason]).toEqual([404, 'SyncNotFound']);
  }, 60_000);

  it('starts one run for a POST and its retry (Idempotency-Key), on any replica, and answers a waiting GET when it ends', async () => {
    const follower = (await leader()) === 'op-a' ? 'op-b' : 'op-a';
    const api = await target(follower);
    const post = () =>
      callApi<RunView>(api, 'POST', runsOf('customers'), {
        token: tokens['pipeline']!,
        headers: { 'idempotency-key': 'dag-1' },
      });
    const first = await post();
    expect(first.status).toBe(202);
    const retry = await post();
    expect([retry.status, retry.headers['idempotent-replayed'], retry.body.id]).toEqual([
      200,
      'true',
      first.body.id,
    ]);
    const done = await callApi<RunView>(api, 'GET', `${runsOf('customers')}/${first.body.id}?wait=120`, {
      token: tokens['pipeline']!,
    });
    expect(done.body).toMatchObject({
      id: first.body.id,
      phase: 'Succeeded',
      trigger: 'api',
      counts: { queried: 3, delivered: 3 },
    });
    const history = (await kube.get('syncs', ns, 'customers'))?.status?.['history'] as Array<{ id: string }>;
    expect(history.filter((r) => r.id === first.body.id)).toHaveLength(1);
  }, 200_000);

  it('answers a waiting GET with the failure and its reason', async () => {
    const api = await target('op-a');
    const started = await callApi<RunView>(api, 'POST', runsOf('broken'), { token: tokens['pipeline']! });
    const done = await callApi<RunView>(api, 'GET', `${runsOf('broken')}/${started.body.id}?wait=120`, {
      token: tokens['pipeline']!,
    });
    expect(done.body.phase).toBe('Failed');
    expect(done.body.reason).toBeTruthy();
    expect(done.body.message).toContain('nope');
  }, 200_000);

  it('keeps a run requested just before the leader dies: the new leader starts it', async () => {
    const dead = await leader();
    const survivor = dead === 'op-a' ? 'op-b' : 'op-a';
    const api = await target(survivor);
    await warehouse.query("UPDATE customers SET email = 'changed@example.com' WHERE id = 1");
    const requested = await callApi<RunView>(api, 'POST', runsOf('customers'), {
      token: tokens['pipeline']!,
    });
    expect(requested.status).toBe(202);
    await operators[dead]!.kill();
    const done = await callApi<RunView>(api, 'GET', `${runsOf('customers')}/${requested.body.id}?wait=120`, {
      token: tokens['pipeline']!,
    });
    expect(done.body).toMatchObject({ phase: 'Succeeded', counts: { delivered: 1 } });
    expect(await leader()).toBe(survivor);
    for (const operator of Object.values(operators)) {
      const logged = JSON.stringify(operator.logs);
      for (const token of Object.values(tokens)) expect(logged).not.toContain(token);
    }
  }, 200_000);
});

describe('the dbt Cloud webhook, verified with its secret', () => {
  const deliver = async (body: object, secret = WEBHOOK_SECRET) => {
    const raw = JSON.stringify(body);
    const signature = createHmac('sha256', secret).update(raw).digest('hex');
    return callApiRaw(await target(alive()), '/webhooks/v1/dbt-prod', raw, { authorization: signature });
  };
  const completed = (eventId: string, runStatusCode: number) => ({
    accountId: 7,
    eventId,
    eventType: 'job.run.completed',
    webhookName: 'syncline',
    data: {
      jobId: '42',
      runId: '9001',
      runStatus: runStatusCode === 10 ? 'Success' : 'Error',
      runStatusCode,
    },
  });

  it('starts the Sync of the job once per delivery, ignores a replay and a failed job run, and refuses a bad signature', async () => {
    const forged = await deliver(completed('wev_forged', 10), 'not-the-secret');
    expect(forged.status).toBe(401);
    const ignored = await deliver(completed('wev_error', 20));
    expect([ignored.status, (ignored.body as { runs: unknown[] }).runs]).toEqual([200, []]);

    const first = await deliver(completed('wev_1', 10));
    expect(first.status).toBe(200);
    const runs = (first.body as { runs: Array<{ sync: string; id: string; replayed: boolean }> }).runs;
    expect(runs.map((r) => [r.sync, r.replayed])).toEqual([['after-dbt', false]]);
    const replay = await deliver(completed('wev_1', 10));
    expect((replay.body as { runs: Array<{ id: string; replayed: boolean }> }).runs).toEqual([
      expect.objectContaining({ id: runs[0]!.id, replayed: true }),
    ]);
    const done = await callApi<RunView>(
      await target(alive()),
      'GET',
      `${runsOf('after-dbt')}/${runs[0]!.id}?wait=120`,
      {
        token: tokens['pipeline']!,
      },
    );
    expect(done.body).toMatchObject({ phase: 'Succeeded', trigger: 'webhook', counts: { delivered: 3 } });
    const history = (await kube.get('syncs', ns, 'after-dbt'))?.status?.['history'] as unknown[];
    expect(history).toHaveLength(1);
    for (const operator of Object.values(operators))
      expect(JSON.stringify(operator.logs)).not.toContain(WEBHOOK_SECRET);
  }, 200_000);
});

/** Python (the client, and the venv of the orchestrator examples) and the plugin, against the real API. */
describe('callers of the run API: the Python client, the Dagster example, kubectl syncline trigger --wait', () => {
  const pythonEnv = () => ({
    PATH: process.env['PATH'],
    PYTHONPATH: [
      join(REPO_DIR, 'clients', 'python'),
      join(REPO_DIR, 'examples', 'orchestrators', 'dagster'),
    ].join(':'),
    SYNCLINE_TOKEN_FILE: join(scratch, 'pipeline.token'),
    SYNCLINE_CA_FILE: join(scratch, 'tls.crt'),
    SYNCLINE_NAMESPACE: ns,
    DO_NOT_TRACK: '1',
    DAGSTER_DISABLE_TELEMETRY: '1',
    DAGSTER_HOME: mkdtempSync(join(scratch, 'dagster-')),
  });

  it('run_and_wait of the Python client starts a run and returns its result; a failed run raises SyncFailed', async () => {
    writeFileSync(join(scratch, 'pipeline.token'), tokens['pipeline']!, { mode: 0o600 });
    const url = `https://127.0.0.1:${await operators[await leader()]!.apiPort()}`;
    const script = [
      'import json, os, sys',
      'from syncline_client import SynclineClient, SyncFailed',
      `client = SynclineClient(${JSON.stringify(url)}, token_file=os.environ["SYNCLINE_TOKEN_FILE"], ca_file=os.environ["SYNCLINE_CA_FILE"])`,
      'ok = client.run_and_wait(os.environ["SYNCLINE_NAMESPACE"], "customers", timeout=120)',
      'try:',
      '    client.run_and_wait(os.environ["SYNCLINE_NAMESPACE"], "broken", timeout=120)',
      '    failed = None',
      'except SyncFailed as error:',
      '    failed = {"phase": error.run.phase, "reason": error.run.reason}',
      'print(json.dumps({"ok": {"phase": ok.phase, "trigger": ok.trigger}, "failed": failed}))',
    ].join('\n');
    const { stdout } = await run('python3', ['-c', script], { env: pythonEnv() });
    const result = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<
      string,
      Record<string, string> | null
    >;
    expect(result['ok']).toEqual({ phase: 'Succeeded', trigger: 'api' });
    expect(result['failed']?.['phase']).toBe('Failed');
  }, 300_000);

  it('the Dagster example materializes its asset through the real API (dagster installed from PyPI)', async () => {
    const python = await ensureOrchestratorVenv();
    writeFileSync(join(scratch, 'pipeline.token'), tokens['pipeline']!, { mode: 0o600 });
    const url = `https://127.0.0.1:${await operators[await leader()]!.apiPort()}`;
    const script = [
      'import json, os, dagster as dg',
      'import syncline_assets as example',
      'resource = example.SynclineResource(base_url=os.environ["SYNCLINE_API_URL"], ca_file=os.environ["SYNCLINE_CA_FILE"], token_file=os.environ["SYNCLINE_TOKEN_FILE"], namespace=os.environ["SYNCLINE_NAMESPACE"])',
      'result = dg.materialize([example.hubspot_contacts], resources={"syncline": resource})',
      'events = result.asset_materializations_for_node("hubspot_contacts")',
      'print(json.dumps({"success": result.success, "metadata": {k: v.value for k, v in events[0].metadata.items()}}))',
    ].join('\n');
    const { stdout } = await run(python, ['-c', script], { env: { ...pythonEnv(), SYNCLINE_API_URL: url } });
    const result = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
      success: boolean;
      metadata: Record<string, unknown>;
    };
    expect(result.success).toBe(true);
    expect(String(result.metadata['syncline_run'])).toMatch(/^customers-to-hubspot-/);
    expect(result.metadata['delivered']).toBe(3);
    const history = (await kube.get('syncs', ns, 'customers-to-hubspot'))?.status?.['history'] as Array<{
      id: string;
      trigger: string;
    }>;
    expect(history[0]).toMatchObject({ id: result.metadata['syncline_run'], trigger: 'api' });
  }, 600_000);

  it('kubectl syncline trigger --wait exits 0 on success and 3 with the reason on failure', async () => {
    const binDir = mkdtempSync(join(scratch, 'bin-'));
    await run('ln', ['-s', join(REPO_DIR, 'bin', 'kubectl-syncline.mjs'), join(binDir, 'kubectl-syncline')]);
    const PATH = [join(REPO_DIR, 'node_modules', '.bin'), binDir, process.env['PATH']].join(':');
    const trigger = (sync: string) =>
      new Promise<{ code: number | null; stdout: string }>((resolve) => {
        const child = spawnChild(
          'kubectl',
          ['syncline', 'trigger', sync, '-n', ns, '--wait', '--timeout', '2m'],
          {
            env: { ...process.env, PATH, KUBECONFIG: kubeconfigPath },
          },
        );
        let stdout = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stdout += d.toString()));
        child.on('exit', (code) => resolve({ code, stdout }));
      });
    const ok = await trigger('customers');
    expect(ok.code, ok.stdout).toBe(0);
    const failed = await trigger('broken');
    expect(failed.code, failed.stdout).toBe(3);
    expect(failed.stdout).toMatch(/Failed/);
  }, 300_000);
});
