import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderGeneratedFiles, staleChartFiles } from '../../charts/render.ts';
import { ensurePromtool } from '../stack/prometheus.ts';
import { REPO_DIR } from '../stack/paths.ts';
import { run } from '../stack/process.ts';
import {
  CHART_DIR,
  FULL_VALUES,
  KUBE_VERSION,
  find,
  helm,
  parseManifests,
  renderChart,
  valuesArgs,
  type K8sObject,
} from './helm.ts';

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>;
  securityContext?: Record<string, unknown>;
  resources?: Record<string, unknown>;
  livenessProbe?: unknown;
  readinessProbe?: unknown;
  startupProbe?: unknown;
}
interface PodSpec {
  serviceAccountName: string;
  securityContext: Record<string, unknown>;
  containers: Container[];
  volumes: Array<{ name: string }>;
}
type Deployment = K8sObject & { spec: { replicas: number; template: { spec: PodSpec } } };

const envOf = (deployment: Deployment) =>
  Object.fromEntries(
    (deployment.spec.template.spec.containers[0]?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]),
  );

let defaults: K8sObject[];
let full: K8sObject[];
let scratch: string;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'syncline-chart-'));
  defaults = parseManifests(await renderChart());
  full = parseManifests(await renderChart(FULL_VALUES, { release: 'prod' }));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('generated chart files', () => {
  it.each(renderGeneratedFiles())('$path is up to date (run npm run generate)', ({ path, content }) => {
    expect(readFileSync(join(REPO_DIR, path), 'utf8')).toBe(content);
  });

  it('no generated CRD template is left over from a removed CRD', () => {
    expect(staleChartFiles()).toEqual([]);
  });

  it('npm run generate runs the chart generator after the CRD generator', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_DIR, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts['generate']).toMatch(/crds\/generate\.ts.*&&.*generate:chart/);
    expect(pkg.scripts['generate:chart']).toContain('charts/generate.ts');
  });
});

describe('helm lint', () => {
  it('passes with default values, strictly', async () => {
    const { stdout } = await helm(['lint', CHART_DIR, '--strict', '--kube-version', KUBE_VERSION]);
    expect(stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
  });

  it('passes with every option switched on', async () => {
    const { args, cleanup } = valuesArgs(FULL_VALUES);
    try {
      const { stdout } = await helm(['lint', CHART_DIR, '--strict', '--kube-version', KUBE_VERSION, ...args]);
      expect(stdout).toContain('0 chart(s) failed');
    } finally {
      cleanup();
    }
  });
});

describe('helm template with default values', () => {
  it('renders the operator, its RBAC and the five CRDs, and nothing from the monitoring stack', () => {
    const kinds = defaults.map((o) => o.kind).sort();
    expect(kinds).toEqual([
      'ClusterRole',
      'ClusterRole',
      'ClusterRole',
      'ClusterRole', // the run API's trigger role
      'ClusterRole', // the run API's TokenReview and SubjectAccessReview
      'ClusterRoleBinding',
      'ClusterRoleBinding', // of the latter
      'CustomResourceDefinition',
      'CustomResourceDefinition',
      'CustomResourceDefinition',
      'CustomResourceDefinition',
      'CustomResourceDefinition',
      'Deployment',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'Secret', // the run API's self-signed certificate
      'Service',
      'Service', // the run API
      'ServiceAccount',
    ]);
  });

  it('runs 2 leader-elected replicas with probes, resources and a restricted, read-only security context', () => {
    const deployment = find(defaults, 'Deployment') as Deployment;
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec;
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const container = pod.containers[0] as Container;
    expect(container.image).toBe('ghcr.io/syncline/syncline:0.1.0');
    expect(container.args).toEqual(['/app/operator/main.ts']);
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(container.livenessProbe).toMatchObject({ httpGet: { path: '/healthz' } });
    expect(container.readinessProbe).toMatchObject({ httpGet: { path: '/readyz' } });
    expect(container.startupProbe).toBeDefined();
    expect(container.resources).toMatchObject({ requests: { cpu: '100m' }, limits: { memory: '512Mi' } });
    expect(pod.volumes.map((v) => v.name)).toContain('tmp');
    const env = envOf(deployment);
    expect(env).toMatchObject({
      SYNCLINE_WATCH_NAMESPACES: '',
      SYNCLINE_LEASE_NAME: 'syncline',
      SYNCLINE_DIFF_STORE_URL: 'file:///var/lib/syncline/diffstore',
      SYNCLINE_RUNNER_IMAGE: 'ghcr.io/syncline/syncline:0.1.0',
      SYNCLINE_RUNNER_COMMAND: 'node /app/bin/syncline.mjs',
      SYNCLINE_RUNNER_DEADLINE_SECONDS: '3600',
      NODE_OPTIONS: '--max-semi-space-size=4',
    });
    expect(JSON.parse(env['SYNCLINE_RUNNER_RESOURCES'] as string)).toEqual({
      requests: { cpu: '250m', memory: '512Mi', 'ephemeral-storage': '1Gi' },
      limits: { memory: '2Gi', 'ephemeral-storage': '10Gi' },
    });
    // Admin maximums are on by default: a Sync cannot ask for more, nor run longer than a day.
    expect(JSON.parse(env['SYNCLINE_RUNNER_MAX_RESOURCES'] as string)).toEqual({
      memory: '16Gi',
      'ephemeral-storage': '100Gi',
    });
    expect(env['SYNCLINE_RUNNER_MAX_DEADLINE_SECONDS']).toBe('86400');
    expect(env['SYNCLINE_DIFF_STORE_NAMESPACE_SECRET']).toBeUndefined();
    // Watching all namespaces, the runner account cannot be pre-created everywhere: pods use the default one, tokenless.
    expect(env['SYNCLINE_RUNNER_SERVICE_ACCOUNT']).toBeUndefined();
    expect(find(defaults, 'PodDisruptionBudget').spec).toMatchObject({ maxUnavailable: 1 });
  });

  it('CRDs are kept on uninstall and carry the chart labels', () => {
    const crds = defaults.filter((o) => o.kind === 'CustomResourceDefinition');
    expect(crds.map((c) => c.metadata.name).sort()).toEqual([
      'destinations.syncline.io',
      'models.syncline.io',
      'sequences.syncline.io',
      'sources.syncline.io',
      'syncs.syncline.io',
    ]);
    for (const crd of crds) {
      expect(crd.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
      expect(crd.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('Helm');
      // The schema is the generated one, byte for byte once Helm printed it: {{ survives the escaping.
      const source = parse(
        readFileSync(join(REPO_DIR, 'crds', `syncline.io_${crd.metadata.name.split('.')[0]}.yaml`), 'utf8'),
      ) as { spec: unknown };
      expect(crd['spec']).toEqual(source.spec);
    }
  });

  it('binds the operator cluster-wide and gives users aggregated view and edit roles', () => {
    const binding = find(defaults, 'ClusterRoleBinding', 'syncline-operator');
    expect(binding['roleRef']).toMatchObject({ kind: 'ClusterRole', name: 'syncline-operator' });
    const view = find(defaults, 'ClusterRole', 'syncline-view');
    expect(view.metadata.labels).toMatchObject({ 'rbac.authorization.k8s.io/aggregate-to-view': 'true' });
    const edit = find(defaults, 'ClusterRole', 'syncline-edit');
    expect(edit.metadata.labels).toMatchObject({ 'rbac.authorization.k8s.io/aggregate-to-edit': 'true' });
    expect(edit.metadata.labels?.['rbac.authorization.k8s.io/aggregate-to-view']).toBeUndefined();
    const resources = (role: K8sObject) =>
      (role as K8sObject & { rules: { resources: string[] }[] }).rules.flatMap((r) => r.resources);
    expect(resources(view)).toEqual(expect.arrayContaining(['sequences', 'sequences/status', 'syncs']));
    expect(resources(edit)).toEqual(expect.arrayContaining(['sequences', 'syncs']));
  });

  it('grants the operator exactly the API calls it makes: no Secrets, ConfigMaps or pod logs', () => {
    const role = find(defaults, 'ClusterRole', 'syncline-operator') as K8sObject & {
      rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
    };
    const grants = role.rules.flatMap((r) =>
      r.apiGroups.flatMap((g) =>
        r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${g || 'core'}/${res}`)),
      ),
    );
    expect(grants.sort()).toEqual(
      [
        // Informers (operator/manager.ts): the five kinds, and the Jobs and Pods the operator created.
        ...['sources', 'models', 'destinations', 'syncs', 'sequences'].flatMap((k) => [
          `list syncline.io/${k}`,
          `watch syncline.io/${k}`,
        ]),
        'get syncline.io/syncs', // cluster.getObject: is a Sync's cache behind
        'patch syncline.io/syncs', // cluster.setFinalizers, cluster.patchAnnotations (a Sequence's steps)
        ...['sources', 'models', 'destinations', 'syncs', 'sequences'].map(
          (k) => `patch syncline.io/${k}/status`,
        ),
        // Owner references with blockOwnerDeletion on Jobs owned by these kinds.
        ...['sources', 'destinations', 'syncs'].map((k) => `update syncline.io/${k}/finalizers`),
        ...['create', 'delete', 'get', 'list', 'watch'].map((v) => `${v} batch/jobs`),
        'list core/pods',
        'watch core/pods',
        'create core/events',
        'patch core/events',
      ].sort(),
    );
    const leases = find(defaults, 'Role', 'syncline-leader-election') as K8sObject & {
      rules: Array<{ resources: string[]; verbs: string[]; resourceNames?: string[] }>;
    };
    expect(leases.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: ['syncline'],
        verbs: ['get', 'update'],
      },
    ]);
  });

  it('has no NetworkPolicy unless asked, and none without namespaces to put it in', async () => {
    expect(defaults.some((o) => o.kind === 'NetworkPolicy')).toBe(false);
    const { args, cleanup } = valuesArgs({ runner: { networkPolicy: { enabled: true } } });
    try {
      const result = await helm(['template', 'x', CHART_DIR, '--kube-version', KUBE_VERSION, ...args], {
        allowFailure: true,
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        'runner.networkPolicy.enabled needs runner.networkPolicy.namespaces (or watchNamespaces)',
      );
    } finally {
      cleanup();
    }
  });

  it('crds.enabled=false leaves the CRDs out; crds.keep=false drops the keep policy', async () => {
    const without = parseManifests(await renderChart({ crds: { enabled: false } }));
    expect(without.filter((o) => o.kind === 'CustomResourceDefinition')).toEqual([]);
    const unkept = parseManifests(await renderChart({ crds: { keep: false } }));
    for (const crd of unkept.filter((o) => o.kind === 'CustomResourceDefinition')) {
      expect(crd.metadata.annotations?.['helm.sh/resource-policy']).toBeUndefined();
    }
  });

  it('without leader election runs one replica, passes --no-leader-elect and has no PodDisruptionBudget', async () => {
    const objects = parseManifests(await renderChart({ leaderElection: { enabled: false } }));
    const deployment = find(objects, 'Deployment') as Deployment;
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.template.spec.containers[0]?.args).toContain('--no-leader-elect');
    expect(objects.some((o) => o.kind === 'PodDisruptionBudget')).toBe(false);
  });
});

describe('helm template with every option switched on', () => {
  it('binds the operator only in the watched namespaces, with a runner account in each', () => {
    // The one cluster-wide binding is the run API's TokenReview and SubjectAccessReview (cluster-scoped kinds).
    expect(full.filter((o) => o.kind === 'ClusterRoleBinding').map((o) => o.metadata.name)).toEqual([
      'prod-syncline-api-auth',
    ]);
    const bindings = full.filter(
      (o) => o.kind === 'RoleBinding' && o.metadata.name === 'prod-syncline-operator',
    );
    expect(bindings.map((b) => b.metadata.namespace).sort()).toEqual(['team-a', 'team-b']);
    const runners = full.filter(
      (o) => o.kind === 'ServiceAccount' && o.metadata.name === 'prod-syncline-runner',
    );
    expect(runners.map((r) => r.metadata.namespace).sort()).toEqual(['team-a', 'team-b']);
    for (const runner of runners) {
      expect(runner['automountServiceAccountToken']).toBe(false);
      // team-b has its own role (runner.serviceAccount.namespaceAnnotations).
      expect(runner.metadata.annotations?.['eks.amazonaws.com/role-arn']).toMatch(
        /syncline-(runner|team-b)$/,
      );
    }
    // The runner account has no binding anywhere.
    const subjects = full.flatMap((o) => (o['subjects'] as Array<{ name: string }> | undefined) ?? []);
    expect(subjects.map((s) => s.name)).not.toContain('prod-syncline-runner');
  });

  it('passes the diff store, its Secret keys and the runner defaults to the operator', () => {
    const deployment = find(full, 'Deployment') as Deployment;
    expect(deployment.spec.replicas).toBe(3);
    expect(deployment.spec.template.spec.containers[0]?.image).toBe(
      `registry.example.com/syncline@sha256:${'a'.repeat(64)}`,
    );
    const env = envOf(deployment);
    expect(env).toMatchObject({
      SYNCLINE_WATCH_NAMESPACES: 'team-a,team-b',
      SYNCLINE_DIFF_STORE_URL: 's3://syncline-state/prod',
      SYNCLINE_DIFF_STORE_S3_REGION: 'eu-west-1',
      SYNCLINE_DIFF_STORE_S3_ACCESS_KEY_ID_REF: 'syncline-store/accessKeyId',
      SYNCLINE_DIFF_STORE_S3_SECRET_ACCESS_KEY_REF: 'syncline-store/secretAccessKey',
      SYNCLINE_RUNNER_SERVICE_ACCOUNT: 'prod-syncline-runner',
      SYNCLINE_RUNNER_DEADLINE_SECONDS: '7200',
      SYNCLINE_RUNNER_MEMORY_LIMIT: '3GB',
      SYNCLINE_RUNNER_ENV: '{"TZ":"Europe/Paris"}',
      // The operator itself reads the store (snapshot clean-up), under core/secrets.ts' env names.
      SYNCLINE_SECRET_SYNCLINE_STORE__ACCESSKEYID: {
        secretKeyRef: { name: 'syncline-store', key: 'accessKeyId' },
      },
      SYNCLINE_SECRET_SYNCLINE_STORE__SECRETACCESSKEY: {
        secretKeyRef: { name: 'syncline-store', key: 'secretAccessKey' },
      },
    });
  });

  it("gives each namespace's runners their own diff-store Secret and workload identity", () => {
    const env = envOf(find(full, 'Deployment') as Deployment);
    expect(env['SYNCLINE_DIFF_STORE_NAMESPACE_SECRET']).toBe('syncline-diffstore');
    expect(JSON.parse(env['SYNCLINE_RUNNER_MAX_RESOURCES'] as string)).toEqual({
      cpu: '4',
      memory: '8Gi',
      'ephemeral-storage': '50Gi',
    });
    expect(env['SYNCLINE_RUNNER_MAX_DEADLINE_SECONDS']).toBe('14400');
    const roleOf = (ns: string) =>
      full.find(
        (o) =>
          o.kind === 'ServiceAccount' &&
          o.metadata.name === 'prod-syncline-runner' &&
          o.metadata.namespace === ns,
      )?.metadata.annotations?.['eks.amazonaws.com/role-arn'];
    expect(roleOf('team-a')).toBe('arn:aws:iam::123456789012:role/syncline-runner');
    expect(roleOf('team-b')).toBe('arn:aws:iam::123456789012:role/syncline-team-b');
  });

  it('puts a NetworkPolicy on runner pods in each namespace: no ingress, no API server, no metadata service', () => {
    const policies = full.filter((o) => o.kind === 'NetworkPolicy') as Array<
      K8sObject & { spec: Record<string, unknown> }
    >;
    expect(policies.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).sort()).toEqual([
      'team-a/prod-syncline-runner',
      'team-b/prod-syncline-runner',
    ]);
    expect(policies[0]?.spec).toEqual({
      podSelector: { matchLabels: { 'app.kubernetes.io/managed-by': 'syncline' } },
      policyTypes: ['Ingress', 'Egress'],
      egress: [
        {
          to: [
            {
              ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.169.254/32', '10.96.0.1/32', '172.18.0.2/32'] },
            },
            { ipBlock: { cidr: '::/0', except: ['fd00:ec2::254/128', 'fd00:10:96::1/128'] } },
          ],
        },
        {
          to: [
            {
              namespaceSelector: {},
              podSelector: {
                matchExpressions: [{ key: 'component', operator: 'NotIn', values: ['kube-apiserver'] }],
              },
            },
          ],
        },
      ],
    });
  });

  it('scrapes with a ServiceMonitor that sets job="syncline-operator", as the alerts expect', () => {
    const monitor = find(full, 'ServiceMonitor');
    expect(monitor.metadata.labels?.['release']).toBe('kube-prometheus-stack');
    expect(JSON.stringify(monitor['spec'])).toContain('"replacement":"syncline-operator"');
  });

  it('ships the alerts as a PrometheusRule that promtool accepts, without the disabled ones', async () => {
    const rule = find(full, 'PrometheusRule') as K8sObject & {
      spec: { groups: Array<{ rules: Array<{ alert?: string; labels?: Record<string, string> }> }> };
    };
    const file = join(scratch, 'rules.yaml');
    writeFileSync(file, JSON.stringify({ groups: rule.spec.groups }));
    const { stdout } = await run(await ensurePromtool(), ['check', 'rules', file]);
    expect(stdout).toContain('SUCCESS');
    const alerts = rule.spec.groups.flatMap((g) => g.rules).filter((r) => r.alert);
    expect(alerts.map((a) => a.alert)).not.toContain('SynclineRunSlow');
    expect(alerts.map((a) => a.alert)).toContain('SynclineSyncFailing');
    for (const alert of alerts)
      expect(alert.labels).toMatchObject({ team: 'data', severity: expect.any(String) });
  });

  it('ships the Grafana dashboard in a ConfigMap the sidecar picks up', () => {
    const configMap = find(full, 'ConfigMap', 'prod-syncline-dashboard');
    expect(configMap.metadata.labels?.['grafana_dashboard']).toBe('1');
    const data = configMap['data'] as Record<string, string>;
    expect(JSON.parse(data['syncline.json'] as string)).toEqual(
      JSON.parse(readFileSync(join(REPO_DIR, 'monitoring', 'dashboard.json'), 'utf8')),
    );
  });
});

describe('values.schema.json', () => {
  it.each([
    [{ replicaCount: 0 }, "at '/replicaCount'"],
    [{ diffStore: { url: 'https://bucket/prefix' } }, "at '/diffStore/url'"],
    [{ watchNamespaces: ['Team_A'] }, "at '/watchNamespaces/0'"],
    [{ logLevel: 'verbose' }, "at '/logLevel'"],
    [{ metrics: { serviceMonitor: { enabled: true }, podMonitor: { enabled: true } } }, "at '/metrics'"],
    [
      { diffStore: { url: 's3://b/p', s3: { accessKeyIdSecretRef: { name: 'store', key: '' } } } },
      'accessKeyIdSecretRef',
    ],
    [{ runner: { env: { SYNCLINE_SECRET_X__Y: 'v' } } }, "invalid propertyName 'SYNCLINE_SECRET_X__Y'"],
    [{ replicas: 2 }, "additional properties 'replicas' not allowed"],
    [{ runner: { maxResources: { memory: 'lots' } } }, "at '/runner/maxResources/memory'"],
    [
      { runner: { networkPolicy: { deniedCIDRs: ['metadata'] } } },
      "at '/runner/networkPolicy/deniedCIDRs/0'",
    ],
    [{ diffStore: { namespaceSecret: 'Team Store' } }, "at '/diffStore/namespaceSecret'"],
    [
      { runner: { activeDeadlineSeconds: 7200, maxActiveDeadlineSeconds: 3600 } },
      'runner.activeDeadlineSeconds (7200) is above runner.maxActiveDeadlineSeconds (3600)',
    ],
    [
      { api: { webhooks: [{ name: 'dbt', type: 'airflow', secretRef: { name: 's', key: 'k' } }] } },
      "at '/api/webhooks/0/type'",
    ],
    [
      { api: { webhooks: [{ name: 'Dbt Prod', type: 'dbtCloud', secretRef: { name: 's', key: 'k' } }] } },
      "at '/api/webhooks/0/name'",
    ],
    [{ api: { tls: { mode: 'secret' } } }, 'api.tls.secretName is required with api.tls.mode=secret'],
    [{ api: { tls: { mode: 'certManager' } } }, 'api.tls.certManager.issuerRef.name is required'],
  ])('rejects %j at helm install', async (values, message) => {
    const { args, cleanup } = valuesArgs(values);
    try {
      const result = await helm(['template', 'x', CHART_DIR, '--kube-version', KUBE_VERSION, ...args], {
        allowFailure: true,
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(message);
    } finally {
      cleanup();
    }
  });
});
