// Least privilege, on the real API server: the chart's RBAC grants the operator the API calls its code makes
// and nothing more (SubjectAccessReview for the chart's ServiceAccount); a Sync asking for more than the
// admin's maximums, or for a diff store outside its namespace's prefix, is refused with a condition and an
// Event; the runner Job that does get built (per-namespace diff-store Secret, bounded /tmp) is one the API
// server accepts; and the chart's NetworkPolicy for runner pods is valid and denies the API server's
// addresses that `helm install` looks up.
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { defaultConfig } from '../../operator/config.ts';
import { buildRunJob, runJobName } from '../../operator/jobs.ts';
import { Manager } from '../../operator/manager.ts';
import { SynclineMetrics } from '../../operator/metrics.ts';
import { buildRunPlan } from '../../operator/run-plan.ts';
import { runnerDiffStore } from '../../operator/runner-policy.ts';
import { resourcePath } from '../../operator/runtime/kubeapi.ts';
import { createLogger } from '../../core/logger.ts';
import { RuntimeMetrics } from '../../operator/runtime/metrics.ts';
import { secretResolver } from '../../core/secrets.ts';
import type { Destination, Model, Source, Sync } from '../../crds/index.ts';
import { CHART_DIR, helm, parseManifests, renderChart, type K8sObject } from '../chart/helm.ts';
import { condition, eventually, Kube, loadKubeConfig, waitForCondition } from '../e2e/support.ts';
import { run } from '../stack/process.ts';
import { httpCapabilities } from '../../operator/testdata/fixtures.ts';

const kubeconfigPath = inject('kubeconfigPath');
const env = { ...process.env, KUBECONFIG: kubeconfigPath };
const kubectl = (...args: string[]) => run('kubectl', args, { env }).then((r) => r.stdout);
const kube = new Kube(loadKubeConfig(kubeconfigPath));
const RELEASE = 'lp';
let releaseNs: string;
let ns: string;
let otherNs: string;
let scratch: string;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'syncline-least-privilege-'));
  releaseNs = await kube.namespace('lp-system');
  ns = await kube.namespace('lp-team');
  otherNs = await kube.namespace('lp-other');
}, 120_000);

const cleanups: Array<() => Promise<void>> = [];

afterAll(async () => {
  for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  for (const name of [`${RELEASE}-syncline-operator`, `${RELEASE}-syncline-api-auth`])
    await kubectl('delete', 'clusterrole,clusterrolebinding', name, '--ignore-not-found').catch(
      () => undefined,
    );
  for (const n of [releaseNs, ns, otherNs].filter(Boolean))
    await kubectl('delete', 'namespace', n, '--wait=false').catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
});

interface Access {
  verb: string;
  group?: string;
  resource: string;
  subresource?: string;
  name?: string;
  namespace?: string;
}

/** What the API server's authorizer says about a service account (its user name and groups, as its token gives). */
async function allowed(serviceAccount: string, saNamespace: string, access: Access): Promise<boolean> {
  const review = await kube.must<{ status: { allowed: boolean } }>(
    'POST',
    '/apis/authorization.k8s.io/v1/subjectaccessreviews',
    {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: `system:serviceaccount:${saNamespace}:${serviceAccount}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${saNamespace}`, 'system:authenticated'],
        resourceAttributes: { group: '', ...access },
      },
    },
  );
  return review.status.allowed;
}

const describeAccess = (a: Access) =>
  `${a.verb} ${a.group ? `${a.resource}.${a.group}` : a.resource}${a.subresource ? `/${a.subresource}` : ''}` +
  `${a.name ? ` ${a.name}` : ''}${a.namespace ? ` in ${a.namespace}` : ''}`;

describe("the operator's RBAC, as the chart renders it with default values", () => {
  const SA = `${RELEASE}-syncline`;
  const kinds = ['sources', 'models', 'destinations', 'syncs', 'sequences'];
  const ours = (a: Omit<Access, 'group'>): Access => ({ group: 'syncline.io', ...a });
  // Every call in the operator's code, where it is made.
  const needs = (namespace: string): Access[] => [
    // manager.ts: an informer (list + watch) per kind, and for the Jobs and Pods it created.
    ...kinds.flatMap((resource) => ['list', 'watch'].map((verb) => ours({ verb, resource, namespace }))),
    ...['list', 'watch'].map((verb) => ({ verb, group: 'batch', resource: 'jobs', namespace })),
    ...['list', 'watch'].map((verb) => ({ verb, resource: 'pods', namespace })),
    // cluster.ts: getObject('syncs'), setFinalizers('syncs'), patchAnnotations('syncs') (a Sequence's
    // steps), patchStatus of every kind.
    ours({ verb: 'get', resource: 'syncs', namespace }),
    ours({ verb: 'patch', resource: 'syncs', namespace }),
    ...kinds.map((resource) => ours({ verb: 'patch', resource, subresource: 'status', namespace })),
    // Jobs owned (blockOwnerDeletion) by Syncs, Sources and Destinations.
    ...['syncs', 'sources', 'destinations'].map((resource) =>
      ours({ verb: 'update', resource, subresource: 'finalizers', namespace }),
    ),
    // cluster.ts: createJob, getJob, deleteJob; createEvent, patchEvent.
    ...['create', 'get', 'delete'].map((verb) => ({ verb, group: 'batch', resource: 'jobs', namespace })),
    ...['create', 'patch'].map((verb) => ({ verb, resource: 'events', namespace })),
  ];
  // runtime/leader.ts: GET, POST and PUT of its Lease.
  const leaseNeeds = (): Access[] => [
    { verb: 'create', group: 'coordination.k8s.io', resource: 'leases', namespace: releaseNs },
    ...['get', 'update'].map((verb) => ({
      verb,
      group: 'coordination.k8s.io',
      resource: 'leases',
      name: `${RELEASE}-syncline`,
      namespace: releaseNs,
    })),
  ];
  const forbidden = (namespace: string): Access[] => [
    ...['get', 'list', 'watch'].map((verb) => ({ verb, resource: 'secrets', namespace })),
    ...['get', 'list', 'watch'].map((verb) => ({ verb, resource: 'configmaps', namespace })),
    { verb: 'get', resource: 'pods', subresource: 'log', namespace },
    { verb: 'get', resource: 'pods', namespace },
    { verb: 'create', resource: 'pods', namespace },
    { verb: 'update', group: 'batch', resource: 'jobs', namespace },
    ours({ verb: 'update', resource: 'syncs', namespace }),
    ours({ verb: 'create', resource: 'syncs', namespace }),
    ours({ verb: 'delete', resource: 'sources', namespace }),
    ours({ verb: 'update', resource: 'models', subresource: 'status', namespace }),
    ours({ verb: 'get', resource: 'sources', namespace }),
    ours({ verb: 'patch', resource: 'sequences', namespace }),
    ours({ verb: 'update', resource: 'sequences', subresource: 'finalizers', namespace }),
    { verb: 'create', group: 'events.k8s.io', resource: 'events', namespace },
    { verb: 'delete', resource: 'events', namespace },
    { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace },
    {
      verb: 'get',
      group: 'coordination.k8s.io',
      resource: 'leases',
      name: 'kube-scheduler',
      namespace: releaseNs,
    },
    {
      verb: 'patch',
      group: 'coordination.k8s.io',
      resource: 'leases',
      name: `${RELEASE}-syncline`,
      namespace: releaseNs,
    },
  ];

  beforeAll(async () => {
    const objects = parseManifests(await renderChart(undefined, { release: RELEASE, namespace: releaseNs }));
    const rbac = objects.filter(
      (o: K8sObject) =>
        (o.kind === 'ServiceAccount' && o.metadata.name === SA) ||
        (['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind) &&
          /-(operator|leader-election|api-auth)$/.test(o.metadata.name)),
    );
    expect(rbac.map((o) => o.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRole',
      'ClusterRoleBinding',
      'ClusterRoleBinding',
      'Role',
      'RoleBinding',
      'ServiceAccount',
    ]);
    const file = join(scratch, 'rbac.json');
    writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }));
    await kubectl('apply', '--server-side', '--field-manager=least-privilege-test', '-f', file);
  }, 120_000);

  // operator/api/kube.ts: the run API's TokenReview and SubjectAccessReview (cluster-scoped).
  const apiNeeds = (): Access[] => [
    { verb: 'create', group: 'authentication.k8s.io', resource: 'tokenreviews' },
    { verb: 'create', group: 'authorization.k8s.io', resource: 'subjectaccessreviews' },
  ];

  it('may make every call the operator makes, in any namespace', async () => {
    for (const access of [...needs(ns), ...needs(otherNs), ...leaseNeeds(), ...apiNeeds()])
      expect(await allowed(SA, releaseNs, access), describeAccess(access)).toBe(true);
  });

  it('may not read Secrets, ConfigMaps or pod logs, nor anything else it does not call', async () => {
    for (const access of [...forbidden(ns), ...forbidden(releaseNs)])
      expect(await allowed(SA, releaseNs, access), describeAccess(access)).toBe(false);
  });
});

describe("admin maximums and the namespace's diff-store prefix, enforced by the operator", () => {
  let manager: Manager;
  const config = defaultConfig({
    diffStore: { url: 's3://state/syncline', s3: { region: 'eu-west-1' } },
    diffStoreNamespaceSecret: 'syncline-diffstore',
    runner: {
      ...defaultConfig().runner,
      maxResources: { memory: '4Gi', 'ephemeral-storage': '20Gi' },
      maxActiveDeadlineSeconds: 3600,
    },
  });
  const sync = (name: string, spec: Record<string, unknown>) => ({
    kind: 'Sync',
    metadata: { name },
    spec: { modelRef: { name: 'customers' }, destinationRef: { name: 'crm' }, mode: 'upsert', ...spec },
  });

  beforeAll(async () => {
    const kc = loadKubeConfig(kubeconfigPath);
    const runtimeMetrics = new RuntimeMetrics({ defaultMetrics: false });
    manager = new Manager({
      kubeConfig: kc,
      config: { ...config, namespaces: [ns] },
      log: createLogger({ level: 'warn' }),
      runtimeMetrics,
      metrics: new SynclineMetrics(runtimeMetrics.registry),
      identity: 'least-privilege-test',
      secrets: secretResolver({}),
      capabilities: async () => httpCapabilities,
    });
    await manager.start();
    await kube.create('models', ns, {
      kind: 'Model',
      metadata: { name: 'customers' },
      spec: { sourceRef: { name: 'warehouse' }, query: 'SELECT id FROM customers', primaryKey: 'id' },
    });
    await kube.create('destinations', ns, {
      kind: 'Destination',
      metadata: { name: 'crm' },
      spec: { type: 'http', http: { url: 'http://127.0.0.1:9/contacts' } },
    });
  }, 120_000);

  afterAll(async () => {
    await manager?.stop();
  });

  it.each([
    [
      'more memory than the maximum',
      'too-big',
      { runner: { resources: { limits: { memory: '8Gi' } } } },
      'RunnerResourcesAboveMaximum',
      'spec.runner.resources.limits.memory is 8Gi, above the maximum of 4Gi',
    ],
    [
      'a longer deadline than the maximum',
      'too-long',
      { runner: { activeDeadlineSeconds: 7200 } },
      'RunnerDeadlineAboveMaximum',
      'spec.runner.activeDeadlineSeconds is 7200, above the maximum of 3600 s',
    ],
    [
      "another namespace's diff-store prefix",
      'elsewhere',
      { diffStore: { url: 's3://state/syncline/OTHER' } },
      'DiffStoreOutsideNamespace',
      'use s3://state/syncline/NS or a folder under it',
    ],
  ])(
    'a Sync asking for %s is Stalled, with an Event naming the limit, and gets no Job',
    async (_what, name, spec, reason, text) => {
      const fill = (s: string) => s.replaceAll('OTHER', otherNs).replaceAll('NS', ns);
      await kube.create(
        'syncs',
        ns,
        sync(name, JSON.parse(fill(JSON.stringify(spec))) as Record<string, unknown>),
      );
      const stalled = await waitForCondition(kube, 'syncs', ns, name, 'Stalled', 'True', reason);
      expect(condition(stalled, 'Ready')).toMatchObject({ status: 'False', reason });
      expect(condition(stalled, 'Stalled')?.message).toContain(fill(text));
      const event = await eventually('the Warning Event', async () =>
        (await kube.events(ns)).find((e) => e.involvedObject.name === name && e.reason === reason),
      );
      expect(event.type).toBe('Warning');
      expect(event.message).toContain(fill(text));
      expect(await kube.jobs(ns, `syncline.io/sync=${name}`)).toHaveLength(0);
    },
  );

  it("builds a runner Job the API server accepts: the namespace's Secret, /tmp and limits bounded", async () => {
    const meta = (name: string) => ({ name, namespace: ns, uid: `uid-${name}`, generation: 1 });
    const syncObject = {
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'Sync',
      metadata: meta('fits'),
      spec: {
        ...sync('fits', { runner: { resources: { requests: { memory: '1Gi' } } } }).spec,
        snapshotPolicy: 'retain',
        historyLimit: 10,
        diffStore: { url: `s3://state/syncline/${ns}/v2` },
      },
    } as unknown as Sync;
    const start = { key: 'm-test', trigger: 'manual' as const, fullResync: false, scheduledAt: new Date() };
    const plan = buildRunPlan({
      runId: runJobName('fits', start.key),
      sync: syncObject,
      model: {
        apiVersion: 'syncline.io/v1alpha1',
        kind: 'Model',
        metadata: meta('customers'),
        spec: { sourceRef: { name: 'warehouse' }, query: 'SELECT 1 AS id', primaryKey: 'id' },
      } as unknown as Model,
      source: {
        apiVersion: 'syncline.io/v1alpha1',
        kind: 'Source',
        metadata: meta('warehouse'),
        spec: {
          type: 'postgres',
          postgres: {
            host: 'db',
            port: 5432,
            database: 'app',
            user: 'u',
            password: { secretKeyRef: { name: 'pg', key: 'password' } },
          },
        },
      } as unknown as Source,
      destination: {
        apiVersion: 'syncline.io/v1alpha1',
        kind: 'Destination',
        metadata: meta('crm'),
        spec: { type: 'http', http: { url: 'http://127.0.0.1:9/contacts' } },
      } as unknown as Destination,
      start,
      diffStore: runnerDiffStore(config, syncObject),
    });
    const job = buildRunJob({ sync: syncObject, plan, start, config });
    delete job.metadata?.ownerReferences;
    const path = resourcePath({ group: 'batch', version: 'v1', plural: 'jobs', namespace: ns });
    interface PodSpec {
      volumes: unknown[];
      containers: Array<{
        resources: unknown;
        env: Array<{ valueFrom?: { secretKeyRef?: { name: string } } }>;
      }>;
    }
    const created = await kube.request<{ spec: { template: { spec: PodSpec } } }>(
      'POST',
      `${path}?dryRun=All&fieldValidation=Strict`,
      job,
    );
    expect(created.status, JSON.stringify(created.body).slice(0, 600)).toBe(201);
    const pod = created.body.spec.template.spec;
    expect(pod.volumes[0]).toEqual({ name: 'tmp', emptyDir: { sizeLimit: '20Gi' } });
    expect(pod.containers[0]?.resources).toEqual({
      requests: { memory: '1Gi' },
      limits: { memory: '4Gi', 'ephemeral-storage': '20Gi' },
    });
    const secretNames = (pod.containers[0]?.env ?? [])
      .map((e) => e.valueFrom?.secretKeyRef?.name)
      .filter(Boolean);
    expect(new Set(secretNames)).toEqual(new Set(['pg', 'syncline-diffstore']));
  });
});

describe("the chart's NetworkPolicy for runner pods", () => {
  it('is valid, selects only runner pods, and denies the API server addresses helm install looks up', async () => {
    const service = JSON.parse(
      await kubectl('get', 'service', 'kubernetes', '-n', 'default', '-o', 'json'),
    ) as {
      spec: { clusterIP: string };
    };
    // A real API server publishes its (non-loopback) addresses in the Endpoints `kubernetes`, and the
    // EndpointSlice controller mirrors them; this one listens on 127.0.0.1, which Endpoints may not hold, so
    // the test publishes an address of each kind as a cluster would.
    const endpoints = ['192.0.2.10', '192.0.2.11'];
    const published = join(scratch, 'endpoints.json');
    writeFileSync(
      published,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            apiVersion: 'v1',
            kind: 'Endpoints',
            metadata: { name: 'kubernetes', namespace: 'default' },
            subsets: [{ addresses: [{ ip: endpoints[0] }], ports: [{ name: 'https', port: 6443 }] }],
          },
          {
            apiVersion: 'discovery.k8s.io/v1',
            kind: 'EndpointSlice',
            metadata: {
              name: 'kubernetes-lp',
              namespace: 'default',
              labels: { 'kubernetes.io/service-name': 'kubernetes' },
            },
            addressType: 'IPv4',
            endpoints: [{ addresses: [endpoints[1]] }],
            ports: [{ name: 'https', port: 6443, protocol: 'TCP' }],
          },
        ],
      }),
    );
    await kubectl('apply', '-f', published);
    cleanups.push(() => kubectl('delete', '-f', published, '--ignore-not-found').then(() => undefined));
    const values = join(scratch, 'np-values.json');
    writeFileSync(
      values,
      JSON.stringify({
        watchNamespaces: [ns],
        crds: { enabled: false },
        runner: { networkPolicy: { enabled: true } },
      }),
    );
    // --dry-run=server: Helm renders with lookup against the cluster, as a real install does.
    const { stdout } = await helm([
      'install',
      'np',
      CHART_DIR,
      '-n',
      releaseNs,
      '--dry-run=server',
      '--kubeconfig',
      kubeconfigPath,
      '-f',
      values,
    ]);
    const manifest = stdout.slice(
      stdout.indexOf('---'),
      stdout.indexOf('NOTES:') > 0 ? stdout.indexOf('NOTES:') : undefined,
    );
    const policy = parseManifests(manifest).find((o) => o.kind === 'NetworkPolicy') as K8sObject & {
      spec: { egress: Array<{ to: Array<{ ipBlock?: { cidr: string; except?: string[] } }> }> };
    };
    expect(policy.metadata.namespace).toBe(ns);
    const except = policy.spec.egress[0]?.to.flatMap((t) => t.ipBlock?.except ?? []) ?? [];
    expect(except).toEqual(
      expect.arrayContaining([
        '169.254.169.254/32',
        'fd00:ec2::254/128',
        `${service.spec.clusterIP}/32`,
        ...endpoints.map((a) => `${a}/32`),
      ]),
    );
    const file = join(scratch, 'np.json');
    writeFileSync(file, JSON.stringify(policy));
    expect(
      await kubectl('apply', '--server-side', '--field-manager=least-privilege-test', '-f', file),
    ).toContain('networkpolicy.networking.k8s.io/np-syncline-runner serverside-applied');
  });
});
