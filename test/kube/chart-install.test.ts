// The Helm chart on a real API server: kubeconform, server-side apply, helm install/upgrade/uninstall, the
// operator's RBAC checked with `kubectl auth can-i`, and then the operator itself running with nothing but
// the chart's ServiceAccount token and the chart's env, syncing a Sync end to end (the test agent stands in
// for the kubelet), scraped by a real Prometheus that also loads the alert rules.
import { createServer, type Server } from 'node:http';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { Agent } from '../agent/agent.ts';
import {
  CHART_DIR,
  exec,
  find,
  helm,
  parseManifests,
  renderChart,
  FULL_VALUES,
  type K8sObject,
} from '../chart/helm.ts';
import { kubeconform, writeSchemas } from '../chart/kubeconform.ts';
import { callApi, type ApiTarget } from '../e2e/api-client.ts';
import { condition, eventually, Kube, loadKubeConfig, waitForCondition } from '../e2e/support.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { REPO_DIR } from '../stack/paths.ts';
import { freePort, run, startProcess, type ManagedProcess } from '../stack/process.ts';
import { startPrometheus, type PrometheusServer } from '../stack/prometheus.ts';

const kubeconfigPath = inject('kubeconfigPath');
const env = { ...process.env, KUBECONFIG: kubeconfigPath };
const kubectl = (...args: string[]) => run('kubectl', args, { env }).then((r) => r.stdout);
const RELEASE = 'syncline';
const RELEASE_NS = 'syncline-system';
const OPERATOR_SA = `system:serviceaccount:${RELEASE_NS}:${RELEASE}`;
const CRDS = ['sources', 'models', 'destinations', 'syncs', 'sequences'].map((p) => `${p}.syncline.io`);

const kc = loadKubeConfig(kubeconfigPath);
const kube = new Kube(kc);
let scratch: string;
let watched: string[];
let installValues: Record<string, unknown>;
let installOutput: string;
/** What the HTTP destination received, and the source database, shared by the operator and plugin tests. */
const received: unknown[] = [];
let dbUrl: string;
/** The run API's port and the operator's log, for the API test after the plugin's. */
let apiPort: number;
let operatorLogFile: string;

/** `kubectl auth can-i`; `resource` may name a subresource (`syncs.syncline.io/status`) or one object (`leases.coordination.k8s.io/name`). */
async function canI(as: string, verb: string, resource: string, namespace?: string): Promise<boolean> {
  const [kind = '', rest] = resource.split(/\/(.*)/s);
  const subresource = rest && ['status', 'finalizers', 'log', 'token'].includes(rest) ? rest : undefined;
  const target = rest && !subresource ? `${kind}/${rest}` : kind;
  const args = [
    'auth',
    'can-i',
    verb,
    target,
    `--as=${as}`,
    ...(subresource ? [`--subresource=${subresource}`] : []),
    ...(namespace === '*' ? ['--all-namespaces'] : namespace ? ['-n', namespace] : []),
  ];
  const { stdout, stderr } = await exec('kubectl', args, { env });
  const answer = stdout.trim();
  if (answer !== 'yes' && answer !== 'no') throw new Error(`kubectl ${args.join(' ')}: ${stderr || stdout}`);
  return answer === 'yes';
}

/** `kubectl syncline ...` as a user runs it: kubectl finds kubectl-syncline on the PATH. */
async function plugin(
  args: string[],
  options: { kubeconfig?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const binDir = join(scratch, 'plugin-bin');
  if (!existsSync(binDir)) {
    mkdirSync(binDir);
    symlinkSync(join(REPO_DIR, 'bin', 'kubectl-syncline.mjs'), join(binDir, 'kubectl-syncline'));
  }
  // The npm package puts Node 24 first on the PATH, as `npm install -g` of the package does.
  const PATH = [join(REPO_DIR, 'node_modules', '.bin'), binDir, process.env['PATH']].join(':');
  return exec('kubectl', ['syncline', ...args], {
    env: { ...process.env, PATH, KUBECONFIG: options.kubeconfig ?? kubeconfigPath },
  });
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'syncline-chart-kube-'));
  watched = [await kube.namespace('chart-a'), await kube.namespace('chart-b')];
  installValues = {
    watchNamespaces: watched,
    diffStore: { url: `file://${join(scratch, 'diffstore')}` },
    resyncSeconds: 30,
  };
  // The stack applied the CRDs with kubectl; let Helm adopt them, as a user moving to the chart would.
  for (const crd of CRDS) {
    await kubectl('label', 'crd', crd, 'app.kubernetes.io/managed-by=Helm', '--overwrite');
    await kubectl(
      'annotate',
      'crd',
      crd,
      `meta.helm.sh/release-name=${RELEASE}`,
      `meta.helm.sh/release-namespace=${RELEASE_NS}`,
      '--overwrite',
    );
  }
  writeFileSync(join(scratch, 'values.json'), JSON.stringify(installValues));
  installOutput = (
    await helm([
      'install',
      RELEASE,
      CHART_DIR,
      '-n',
      RELEASE_NS,
      '--create-namespace',
      '--kubeconfig',
      kubeconfigPath,
      '-f',
      join(scratch, 'values.json'),
    ])
  ).stdout;
}, 300_000);

const cleanups: Array<() => Promise<void>> = [];

afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
  await helm(['uninstall', RELEASE, '-n', RELEASE_NS, '--kubeconfig', kubeconfigPath], {
    allowFailure: true,
  });
  for (const ns of watched ?? [])
    await kubectl('delete', 'namespace', ns, '--wait=false').catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
});

describe('the rendered chart', () => {
  it("is valid against the API server's own schemas (kubeconform, strict)", async () => {
    const openapi = JSON.parse(await kubectl('get', '--raw', '/openapi/v2')) as {
      definitions: Record<string, Record<string, unknown>>;
    };
    for (const [name, values] of [
      ['default', undefined],
      ['full', FULL_VALUES],
    ] as const) {
      const manifests = await renderChart(values);
      const file = join(scratch, `${name}.yaml`);
      writeFileSync(file, manifests);
      const objects = parseManifests(manifests);
      const kinds = new Set(objects.map((o) => `${o.apiVersion}/${o.kind}`));
      const schemaDir = join(scratch, `schemas-${name}`);
      writeSchemas(openapi, schemaDir, kinds);
      const result = await kubeconform(file, schemaDir);
      expect(result.invalid, name).toEqual([]);
      // Only the Prometheus Operator's kinds have no schema here (their CRDs are not installed); promtool checks the rules.
      expect(new Set(result.skipped), name).toEqual(
        new Set(objects.filter((o) => o.apiVersion.startsWith('monitoring.coreos.com/')).map((o) => o.kind)),
      );
      expect(result.valid, name).toBe(objects.length - result.skipped.length);
    }
  });

  it('kubeconform catches a broken manifest (the check can fail)', async () => {
    const openapi = JSON.parse(await kubectl('get', '--raw', '/openapi/v2')) as {
      definitions: Record<string, Record<string, unknown>>;
    };
    const objects = parseManifests(await renderChart());
    const deployment = find(objects, 'Deployment') as K8sObject & { spec: Record<string, unknown> };
    deployment.spec['replica'] = 2;
    const file = join(scratch, 'broken.yaml');
    writeFileSync(file, JSON.stringify(deployment));
    writeSchemas(openapi, join(scratch, 'schemas-broken'), new Set(['apps/v1/Deployment']));
    const result = await kubeconform(file, join(scratch, 'schemas-broken'));
    expect(result.invalid.join('\n')).toContain('replica');
  });

  it.each([
    ['default values', undefined],
    ['every option', FULL_VALUES],
  ])('applies server-side with %s (dry run, strict field validation)', async (_name, values) => {
    const objects = parseManifests(
      await renderChart(values, { release: 'dryrun', namespace: RELEASE_NS }),
    ).filter((o) => !o.apiVersion.startsWith('monitoring.coreos.com/'));
    const namespaces = new Set(objects.map((o) => o.metadata.namespace).filter((n): n is string => !!n));
    for (const ns of namespaces) await kubectl('create', 'namespace', ns).catch(() => undefined);
    const file = join(scratch, 'dryrun.json');
    writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
    const out = await kubectl(
      'apply',
      '--server-side',
      '--force-conflicts',
      '--dry-run=server',
      '--validate=strict',
      '--field-manager=helm-test',
      '-f',
      file,
    );
    expect(out.trim().split('\n')).toHaveLength(objects.length);
    expect(out).toContain('deployment.apps/dryrun-syncline serverside-applied (server dry run)');
  });
  it('the kind demo (test/kind/demo.yaml) is valid for this API server', async () => {
    const ns = await kube.namespace('kind-demo');
    const out = await kubectl(
      'apply',
      '--dry-run=server',
      '--validate=strict',
      '-n',
      ns,
      '-f',
      join(REPO_DIR, 'test', 'kind', 'demo.yaml'),
    );
    expect(out).toContain('sync.syncline.io/customers-to-sink created (server dry run)');
    await kubectl('delete', 'namespace', ns, '--wait=false');
  });
});

describe('helm install', () => {
  it('installs, and NOTES.txt says what to do next', () => {
    expect(installOutput).toContain('STATUS: deployed');
    expect(installOutput).toContain(`kubectl -n ${RELEASE_NS} rollout status deployment/${RELEASE}`);
    expect(installOutput).toContain(`these namespaces only: ${watched.join(', ')}`);
    expect(installOutput).toContain('WARNING: a file:// diff store without diffStore.persistentVolumeClaim');
    expect(installOutput).toContain('kubectl syncline status');
  });

  it('owns the CRDs and marks them to be kept', async () => {
    for (const crd of CRDS) {
      const obj = JSON.parse(await kubectl('get', 'crd', crd, '-o', 'json')) as K8sObject;
      expect(obj.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
      expect(obj.metadata.labels?.['helm.sh/chart']).toBe('syncline-0.1.0');
    }
  });

  it('upgrades in place', async () => {
    const { stdout } = await helm([
      'upgrade',
      RELEASE,
      CHART_DIR,
      '-n',
      RELEASE_NS,
      '--kubeconfig',
      kubeconfigPath,
      '-f',
      join(scratch, 'values.json'),
      '--set',
      'workers=2',
    ]);
    expect(stdout).toContain('REVISION: 2');
    const deployment = JSON.parse(
      await kubectl('get', 'deployment', RELEASE, '-n', RELEASE_NS, '-o', 'json'),
    ) as {
      spec: { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }> }> } } };
    };
    expect(
      deployment.spec.template.spec.containers[0]?.env.find((e) => e.name === 'SYNCLINE_WORKERS')?.value,
    ).toBe('2');
  });
});

describe("the operator's ServiceAccount (kubectl auth can-i)", () => {
  // Every API call the operator makes (operator/cluster.ts, manager.ts' informers); test/kube/operator-rbac.test.ts has the reasons.
  const allowed: Array<[string, string]> = [
    ['list', 'syncs.syncline.io'],
    ['watch', 'sources.syncline.io'],
    ['get', 'syncs.syncline.io'],
    ['patch', 'syncs.syncline.io/status'],
    ['patch', 'models.syncline.io/status'],
    ['list', 'sequences.syncline.io'],
    ['watch', 'sequences.syncline.io'],
    ['patch', 'sequences.syncline.io/status'],
    ['update', 'syncs.syncline.io/finalizers'],
    ['patch', 'syncs.syncline.io'],
    ['create', 'jobs.batch'],
    ['delete', 'jobs.batch'],
    ['watch', 'pods'],
    ['create', 'events'],
    ['patch', 'events'],
  ];
  const denied: Array<[string, string]> = [
    ['create', 'syncs.syncline.io'],
    ['delete', 'syncs.syncline.io'],
    ['update', 'sources.syncline.io'],
    ['patch', 'sequences.syncline.io'],
    ['update', 'jobs.batch'],
    ['delete', 'pods'],
    ['create', 'pods'],
    ['get', 'pods/log'],
    ['get', 'secrets'],
    ['list', 'secrets'],
    ['create', 'secrets'],
    ['get', 'configmaps'],
    ['watch', 'configmaps'],
    ['update', 'configmaps'],
    ['delete', 'events'],
    ['create', 'leases.coordination.k8s.io'],
    ['create', 'serviceaccounts/token'],
    ['create', 'rolebindings.rbac.authorization.k8s.io'],
  ];

  it('can do what it needs in each watched namespace', async () => {
    for (const ns of watched) {
      for (const [verb, resource] of allowed)
        expect(await canI(OPERATOR_SA, verb, resource, ns), `${verb} ${resource} in ${ns}`).toBe(true);
    }
  });

  it('can do nothing more there', async () => {
    for (const [verb, resource] of denied)
      expect(await canI(OPERATOR_SA, verb, resource, watched[0]), `${verb} ${resource}`).toBe(false);
  });

  it('has no rights outside the watched namespaces, nor cluster-wide', async () => {
    for (const [verb, resource] of [
      ['list', 'syncs.syncline.io'],
      ['get', 'secrets'],
      ['create', 'jobs.batch'],
    ] as const) {
      expect(await canI(OPERATOR_SA, verb, resource, 'default'), `${verb} ${resource} in default`).toBe(
        false,
      );
    }
    expect(await canI(OPERATOR_SA, 'list', 'nodes')).toBe(false);
    expect(await canI(OPERATOR_SA, 'list', 'syncs.syncline.io', '*')).toBe(false);
  });

  it('may create TokenReviews and SubjectAccessReviews for the run API (cluster-scoped), and no other cluster-wide right', async () => {
    expect(await canI(OPERATOR_SA, 'create', 'tokenreviews.authentication.k8s.io')).toBe(true);
    expect(await canI(OPERATOR_SA, 'create', 'subjectaccessreviews.authorization.k8s.io')).toBe(true);
    expect(await canI(OPERATOR_SA, 'create', 'selfsubjectrulesreviews.authorization.k8s.io')).toBe(true); // every user may
    expect(await canI(OPERATOR_SA, 'create', 'certificatesigningrequests.certificates.k8s.io')).toBe(false);
    expect(await canI(OPERATOR_SA, 'impersonate', 'users')).toBe(false);
  });

  it('holds its own Lease and no other', async () => {
    expect(await canI(OPERATOR_SA, 'create', 'leases.coordination.k8s.io', RELEASE_NS)).toBe(true);
    expect(await canI(OPERATOR_SA, 'update', `leases.coordination.k8s.io/${RELEASE}`, RELEASE_NS)).toBe(true);
    expect(await canI(OPERATOR_SA, 'update', 'leases.coordination.k8s.io/kube-scheduler', RELEASE_NS)).toBe(
      false,
    );
    expect(await canI(OPERATOR_SA, 'get', 'secrets', RELEASE_NS)).toBe(false);
  });

  it('the runner ServiceAccount can do nothing, and mounts no token', async () => {
    const runner = `system:serviceaccount:${watched[0]}:${RELEASE}-runner`;
    for (const [verb, resource] of [...allowed, ['get', 'configmaps'], ['list', 'pods']] as Array<
      [string, string]
    >) {
      expect(await canI(runner, verb, resource, watched[0]), `runner ${verb} ${resource}`).toBe(false);
    }
    const sa = JSON.parse(
      await kubectl('get', 'serviceaccount', `${RELEASE}-runner`, '-n', watched[0] as string, '-o', 'json'),
    ) as { automountServiceAccountToken?: boolean };
    expect(sa.automountServiceAccountToken).toBe(false);
  });

  it('users get the Syncline roles through the built-in view and edit roles', async () => {
    const ns = watched[0] as string;
    await kubectl('create', 'rolebinding', 'viewer', '--clusterrole=view', '--user=vera', '-n', ns);
    await kubectl('create', 'rolebinding', 'editor', '--clusterrole=edit', '--user=ed', '-n', ns);
    await eventually(
      'aggregated roles',
      async () =>
        (await canI('vera', 'list', 'syncs.syncline.io', ns)) &&
        (await canI('ed', 'create', 'syncs.syncline.io', ns)),
    );
    expect(await canI('vera', 'create', 'syncs.syncline.io', ns)).toBe(false);
    expect(await canI('ed', 'delete', 'sources.syncline.io', ns)).toBe(true);
    expect(await canI('vera', 'get', 'sequences.syncline.io', ns)).toBe(true);
    expect(await canI('vera', 'patch', 'sequences.syncline.io', ns)).toBe(false);
    expect(await canI('ed', 'create', 'sequences.syncline.io', ns)).toBe(true);
  });
});

describe("the operator, running with the chart's RBAC and env", () => {
  let operator: ManagedProcess;
  let agent: Agent;
  let postgres: PostgresServer;
  let sink: Server;
  let prometheus: PrometheusServer;
  let metricsPort: number;

  beforeAll(async () => {
    const ns = watched[0] as string;
    postgres = await startPostgres();
    dbUrl = await postgres.createDatabase('app');
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    await client.query('CREATE TABLE customers (id int PRIMARY KEY, email text, plan text)');
    await client.query(
      "INSERT INTO customers VALUES (1, 'a@example.com', 'pro'), (2, 'b@example.com', 'free'), (3, 'c@example.com', 'pro')",
    );
    await client.end();
    sink = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (body) received.push(JSON.parse(body));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    const sinkPort = (sink.address() as { port: number }).port;

    // The operator authenticates as the chart's ServiceAccount: a token from the TokenRequest API.
    const token = (await kubectl('create', 'token', RELEASE, '-n', RELEASE_NS, '--duration=2h')).trim();
    const admin = readFileSync(kubeconfigPath, 'utf8');
    const saKubeconfig = join(scratch, 'operator-kubeconfig');
    writeFileSync(saKubeconfig, admin.replace(/token: .*/, `token: ${token}`), { mode: 0o600 });

    // The env is the rendered Deployment's, with the downward API resolved as the kubelet would.
    const deployment = JSON.parse(
      await kubectl('get', 'deployment', RELEASE, '-n', RELEASE_NS, '-o', 'json'),
    ) as {
      spec: {
        template: {
          spec: {
            containers: Array<{
              args: string[];
              env: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
            }>;
          };
        };
      };
    };
    const container = deployment.spec.template.spec.containers[0];
    const podEnv: Record<string, string> = {};
    for (const entry of container?.env ?? []) {
      if (entry.value !== undefined) podEnv[entry.name] = entry.value;
      else if (entry.valueFrom?.fieldRef?.fieldPath === 'metadata.name')
        podEnv[entry.name] = `${RELEASE}-7d9f-abcde`;
      else if (entry.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') podEnv[entry.name] = RELEASE_NS;
    }
    metricsPort = await freePort();
    podEnv['SYNCLINE_METRICS_PORT'] = String(metricsPort);
    apiPort = await freePort();
    podEnv['SYNCLINE_API_PORT'] = String(apiPort);
    // The chart's certificate, from the Secret it made, where the pod would mount it.
    const tls = JSON.parse(
      await kubectl('get', 'secret', `${RELEASE}-api-tls`, '-n', RELEASE_NS, '-o', 'json'),
    ) as { data: Record<string, string> };
    for (const file of ['tls.crt', 'tls.key', 'ca.crt'])
      writeFileSync(join(scratch, file), Buffer.from(tls.data[file] ?? '', 'base64'), { mode: 0o600 });
    podEnv['SYNCLINE_API_TLS_CERT_FILE'] = join(scratch, 'tls.crt');
    podEnv['SYNCLINE_API_TLS_KEY_FILE'] = join(scratch, 'tls.key');
    const script = (container?.args[0] ?? '').replace(/^\/app\//, `${REPO_DIR}/`);
    operator = startProcess(
      'operator',
      join(REPO_DIR, 'node_modules/.bin/node'),
      [script, ...(container?.args.slice(1) ?? [])],
      {
        logDir: join(scratch, 'logs'),
        cwd: REPO_DIR,
        env: { PATH: process.env['PATH'], HOME: process.env['HOME'], ...podEnv, KUBECONFIG: saKubeconfig },
      },
    );
    operatorLogFile = operator.logFile;

    agent = new Agent({ kubeConfig: kc, namespace: ns, retryMs: 500 });
    await agent.start();
    prometheus = await startPrometheus({
      targets: [{ job: 'syncline-operator', address: `127.0.0.1:${metricsPort}` }],
      ruleFiles: [join(REPO_DIR, 'monitoring', 'alerts.yaml')],
    });

    await kube.secret(ns, 'pg', { password: postgres.password });
    await kube.create('sources', ns, {
      kind: 'Source',
      metadata: { name: 'warehouse' },
      spec: {
        type: 'postgres',
        postgres: {
          host: '127.0.0.1',
          port: Number(new URL(dbUrl).port),
          database: 'app',
          user: 'postgres',
          password: { secretKeyRef: { name: 'pg', key: 'password' } },
          tls: { mode: 'disable' },
        },
      },
    });
    await kube.create('models', ns, {
      kind: 'Model',
      metadata: { name: 'customers' },
      spec: {
        sourceRef: { name: 'warehouse' },
        query: 'SELECT id, email, plan FROM customers',
        primaryKey: 'id',
      },
    });
    await kube.create('destinations', ns, {
      kind: 'Destination',
      metadata: { name: 'crm' },
      spec: { type: 'http', http: { url: `http://127.0.0.1:${sinkPort}/contacts` } },
    });
    await kube.create('syncs', ns, {
      kind: 'Sync',
      metadata: { name: 'contacts' },
      spec: { modelRef: { name: 'customers' }, destinationRef: { name: 'crm' }, mode: 'upsert' },
    });
  }, 300_000);

  // Stopped by the file's afterAll: the plugin's tests below use the same operator, database and sink.
  cleanups.push(async () => {
    await operator?.stop();
    await agent?.stop();
    await prometheus?.stop();
    await postgres?.stop();
    sink?.close();
  });

  it('leads through its Lease and syncs a Sync end to end when `kubectl syncline trigger` asks, with no RBAC denial', async () => {
    const ns = watched[0] as string;
    // No schedule: nothing runs until the trigger.
    const idle = await waitForCondition(kube, 'syncs', ns, 'contacts', 'Running', 'False', undefined, 60_000);
    expect(idle.status?.['lastRun']).toBeUndefined();
    const triggered = await plugin(['trigger', 'contacts', '-n', ns]);
    expect(triggered.stderr).toBe('');
    expect(triggered.stdout).toContain('sync.syncline.io/contacts triggered');
    const sync = await waitForCondition(
      kube,
      'syncs',
      ns,
      'contacts',
      'Ready',
      'True',
      'Succeeded',
      150_000,
    ).catch(async (error: Error) => {
      throw new Error(
        `${error.message}\noperator log:\n${readFileSync(operator.logFile, 'utf8').slice(-4000)}`,
      );
    });
    expect(condition(sync, 'Ready')?.message).toContain('3 delivered');
    expect(received.length).toBeGreaterThan(0);
    const lease = JSON.parse(await kubectl('get', 'lease', RELEASE, '-n', RELEASE_NS, '-o', 'json')) as {
      spec: { holderIdentity: string };
    };
    expect(lease.spec.holderIdentity).toMatch(new RegExp(`^${RELEASE}-7d9f-abcde_`));
    const log = readFileSync(operator.logFile, 'utf8');
    expect(log).not.toMatch(/forbidden/i);
  }, 200_000);

  it('a real Prometheus scrapes the sync metrics and evaluates the alert rules', async () => {
    const ns = watched[0] as string;
    const runs = await eventually(
      'syncline_sync_runs_total in Prometheus',
      async () => {
        const result = await prometheus.query(
          `syncline_sync_runs_total{job="syncline-operator", namespace="${ns}", sync="contacts"}`,
        );
        return result.some((r) => Number(r.value[1]) > 0) ? result : undefined;
      },
      { timeoutMs: 30_000 },
    );
    // Every result's series exists from the moment the Sync is seen (at 0), so the first failure is visible
    // to increase(); the one run counted is a success.
    const byResult = Object.fromEntries(runs.map((r) => [r.metric['result'], Number(r.value[1])]));
    expect(byResult).toEqual({ Succeeded: expect.any(Number), PartiallySucceeded: 0, Failed: 0 });
    expect(byResult['Succeeded']).toBeGreaterThanOrEqual(1);
    const delivered = await prometheus.query(
      `sum(syncline_sync_rows_total{namespace="${ns}", operation="all", outcome="delivered"})`,
    );
    expect(Number(delivered[0]?.value[1])).toBe(3);
    const leader = await prometheus.query('max(leader_election_master_status{job="syncline-operator"})');
    expect(leader[0]?.value[1]).toBe('1');
    const reconciles = await prometheus.query(
      'sum(controller_runtime_reconcile_total{job="syncline-operator"})',
    );
    expect(Number(reconciles[0]?.value[1])).toBeGreaterThan(0);
    // Every rule loaded and evaluated without error; with a healthy operator, no alert fires.
    const rules = await eventually(
      'rules evaluated',
      async () => {
        const response = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as {
          data: {
            groups: Array<{
              rules: Array<{
                name: string;
                health: string;
                lastError?: string;
                state?: string;
                lastEvaluation: string;
              }>;
            }>;
          };
        };
        const all = response.data.groups.flatMap((g) => g.rules);
        return all.every((r) => !r.lastEvaluation.startsWith('0001')) ? all : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
    expect(rules.filter((r) => r.state === 'firing').map((r) => r.name)).toEqual([]);
  });
});

describe('kubectl syncline, against the same setup', () => {
  const ns = () => watched[0] as string;

  it('--help works for the plugin and for each command', async () => {
    const top = await plugin(['--help']);
    for (const command of ['status', 'trigger', 'resync', 'plan', 'runs', 'debug'])
      expect(top.stdout).toContain(command);
    for (const command of ['status', 'trigger', 'resync', 'plan', 'runs', 'debug']) {
      const help = await plugin([command, '--help']);
      expect(help.code, command).toBe(0);
      expect(help.stdout, command).toContain(`Usage: kubectl syncline ${command}`);
      expect(help.stdout, command).toContain('-o, --output <format>');
    }
  });

  it('status shows every Sync at a glance, as a table, JSON or YAML', async () => {
    const text = await plugin(['status', '-A']);
    const line = text.stdout.split('\n').find((l) => l.startsWith(ns()));
    expect(text.stdout.split('\n')[0]).toMatch(
      /^NAMESPACE\s+NAME\s+MODE\s+READY\s+REASON\s+LAST RESULT\s+ROWS\s+LAST SUCCESS\s+NEXT RUN$/,
    );
    expect(line?.split(/\s{3,}/).slice(0, 7)).toEqual([
      ns(),
      'contacts',
      'upsert',
      'True',
      'Succeeded',
      'Succeeded',
      '3',
    ]);
    const json = JSON.parse((await plugin(['status', '-n', ns(), '-o', 'json'])).stdout) as {
      items: Array<{ name: string; lastResult: string; delivered: number }>;
    };
    expect(json.items).toEqual([
      expect.objectContaining({ name: 'contacts', lastResult: 'Succeeded', delivered: 3 }),
    ]);
    const yaml = parseYaml((await plugin(['status', '-n', ns(), '-o', 'yaml'])).stdout) as typeof json;
    expect(yaml.items[0]?.name).toBe('contacts');
  });

  it('runs lists the history; debug reads the run record from the diff store the chart configured', async () => {
    const runs = await plugin(['runs', 'contacts', '-n', ns()]);
    expect(runs.stdout.split('\n')[0]).toMatch(/^RUN\s+TRIGGER\s+RESULT\s+STARTED\s+DURATION/);
    expect(runs.stdout).toMatch(/manual\s+Succeeded/);
    const history = JSON.parse((await plugin(['runs', 'contacts', '-n', ns(), '-o', 'json'])).stdout) as {
      history: Array<{ id: string; counts: { delivered: number } }>;
    };
    const runId = history.history[0]?.id as string;
    expect(history.history[0]?.counts.delivered).toBe(3);
    const debug = await plugin(['debug', 'contacts', runId, '-n', ns()]);
    expect(debug.stderr).toBe('');
    expect(debug.stdout).toContain(`Run ${runId} of ${ns()}/contacts: Succeeded`);
    expect(debug.stdout).toContain('delivered 3, failed 0');
    const record = JSON.parse((await plugin(['debug', 'contacts', '-n', ns(), '-o', 'json'])).stdout) as {
      run: string;
      summary: { counts: { queried: number } };
    };
    expect(record.run).toBe(runId);
    expect(record.summary.counts.queried).toBe(3);
  });

  it('plan shows what the next run would send, with sample rows, and delivers nothing', async () => {
    const before = received.length;
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    await client.query("INSERT INTO customers VALUES (4, 'd@example.com', 'team')");
    await client.query("UPDATE customers SET plan = 'free' WHERE id = 1");
    await client.end();
    const plan = JSON.parse((await plugin(['plan', 'contacts', '-n', ns(), '-o', 'json'])).stdout) as {
      counts: { queried: number; added: number; changed: number };
      operations: Record<string, number>;
      samples: Record<string, Array<Record<string, unknown>>>;
    };
    expect(plan.counts).toMatchObject({ queried: 4, added: 1, changed: 1 });
    expect(plan.operations['upsert']).toBe(2);
    expect(JSON.stringify(plan.samples)).toContain('d@example.com');
    const text = await plugin(['plan', 'contacts', '-n', ns()]);
    expect(text.stdout).toContain('queried 4: 1 added, 1 changed, 0 removed');
    expect(received.length).toBe(before);
  });

  it('resync asks for confirmation, and with --yes requests a full resync', async () => {
    const refused = await plugin(['resync', 'contacts', '-n', ns()]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('Pass --yes to confirm');
    expect(
      (await kube.get('syncs', ns(), 'contacts'))?.metadata.annotations?.['syncline.io/resync-requested-at'],
    ).toBeUndefined();
    const done = await plugin(['resync', 'contacts', '-n', ns(), '--yes']);
    expect(done.stdout).toContain('full resync requested');
    expect(
      (await kube.get('syncs', ns(), 'contacts'))?.metadata.annotations?.['syncline.io/resync-requested-at'],
    ).toBeTruthy();
  });

  it('errors are friendly: a missing Sync, no rights, a bad flag', async () => {
    const missing = await plugin(['runs', 'nope', '-n', ns()]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `error: Sync "nope" not found in namespace "${ns()}" (kubectl get syncs -n ${ns()} lists them; -n picks another namespace) (SyncNotFound)\n`,
    );
    await kubectl('create', 'serviceaccount', 'nobody', '-n', ns());
    const token = (await kubectl('create', 'token', 'nobody', '-n', ns())).trim();
    const nobody = join(scratch, 'nobody-kubeconfig');
    writeFileSync(nobody, readFileSync(kubeconfigPath, 'utf8').replace(/token: .*/, `token: ${token}`));
    const forbidden = await plugin(['status', '-n', ns()], { kubeconfig: nobody });
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toContain(`you may not list syncs in namespace ${ns()}`);
    expect(forbidden.stderr).toContain('syncline-view');
    const badFormat = await plugin(['status', '-o', 'xml']);
    expect(badFormat.code).toBe(2);
    expect(badFormat.stderr).toContain("argument 'xml' is invalid");
  });
  it("serves the run API over the chart's certificate: the trigger role may start a run and wait for it, the view role may only read", async () => {
    const ns = watched[0] as string;
    const manifest = join(scratch, 'api-callers.json');
    const callers = { pipeline: `${RELEASE}-trigger`, analyst: `${RELEASE}-view` };
    const items = Object.entries(callers).flatMap(([name, role]) => [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: `${name}-api`, namespace: ns },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
        subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
      },
    ]);
    writeFileSync(manifest, JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    await kubectl('apply', '-f', manifest);
    const token = async (name: string) =>
      (await kubectl('create', 'token', name, '-n', ns, '--duration=1h')).trim();
    const target: ApiTarget = {
      port: apiPort,
      ca: readFileSync(join(scratch, 'ca.crt')),
      servername: `${RELEASE}-api.${RELEASE_NS}.svc`,
    };
    // A Sync of its own: the plugin's tests above read the last run of contacts.
    await kube.create('syncs', ns, {
      kind: 'Sync',
      metadata: { name: 'contacts-api' },
      spec: { modelRef: { name: 'customers' }, destinationRef: { name: 'crm' }, mode: 'upsert' },
    });
    // Every row of the model, as this first run of the Sync sends it (the plan test above added one).
    const db = new pg.Client({ connectionString: dbUrl });
    await db.connect();
    const rows = Number((await db.query('SELECT count(*) AS n FROM customers')).rows[0].n);
    await db.end();
    const runs = `/api/v1/namespaces/${ns}/syncs/contacts-api/runs`;
    const [pipeline, analyst] = [await token('pipeline'), await token('analyst')];

    const denied = await callApi(target, 'POST', runs, { token: analyst });
    expect(denied.status).toBe(403);
    expect(JSON.stringify(denied.body)).toContain(`system:serviceaccount:${ns}:analyst may not trigger`);
    expect((await callApi(target, 'GET', runs, { token: analyst })).status).toBe(200);
    expect((await callApi(target, 'POST', runs)).status).toBe(401);

    const started = await callApi<{ id: string; phase: string }>(target, 'POST', runs, {
      token: pipeline,
      headers: { 'idempotency-key': 'chart-install-1' },
    });
    expect(started.status).toBe(202);
    const waited = await callApi<{
      id: string;
      phase: string;
      trigger: string;
      counts?: { queried: number; delivered: number };
    }>(target, 'GET', `${runs}/${started.body.id}?wait=120`, { token: pipeline });
    expect(waited.body).toMatchObject({
      id: started.body.id,
      phase: 'Succeeded',
      trigger: 'api',
      counts: { queried: rows, delivered: rows },
    });
    const log = readFileSync(operatorLogFile, 'utf8');
    expect(log).not.toContain(pipeline);
    expect(log).not.toMatch(/forbidden/i);
  }, 200_000);
});

describe('helm uninstall', () => {
  it('removes the operator and its RBAC but keeps the CRDs (and so every resource)', async () => {
    const { stdout } = await helm(['uninstall', RELEASE, '-n', RELEASE_NS, '--kubeconfig', kubeconfigPath]);
    expect(stdout).toContain('These resources were kept due to the resource policy');
    for (const crd of CRDS) expect(await kubectl('get', 'crd', crd, '-o', 'name')).toContain(crd);
    expect(await kubectl('get', 'sync', 'contacts', '-n', watched[0] as string, '-o', 'name')).toContain(
      'contacts',
    );
    await expect(kubectl('get', 'clusterrole', `${RELEASE}-operator`)).rejects.toThrow(/NotFound/);
  });
});
