import { spawn, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ensureGoTool } from '../stack/build.ts';
import { REPO_DIR } from '../stack/paths.ts';
import { run } from '../stack/process.ts';
import { VERSIONS } from '../stack/versions.ts';

export const CHART_DIR = join(REPO_DIR, 'charts', 'syncline');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [key: string]: unknown;
}

/** helm, built with `go install` at the version pinned in test/stack/versions.json. */
export async function ensureHelm(): Promise<string> {
  return ensureGoTool('helm');
}

/** Runs helm with its own empty config and cache folders, so nothing from the user's setup leaks in. */
export async function helm(
  args: string[],
  options: { allowFailure?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const binary = await ensureHelm();
  const home = mkdtempSync(join(tmpdir(), 'syncline-helm-'));
  const env = {
    ...process.env,
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  try {
    const result = await run(binary, args, { env });
    return { code: 0, ...result };
  } catch (error) {
    if (!options.allowFailure) throw error;
    return { code: 1, stdout: '', stderr: (error as Error).message };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** `--kube-version` for helm template: the Kubernetes version the test stack runs. */
export const KUBE_VERSION = VERSIONS.kubernetes.version;

/** Writes values to a temp file and returns helm's `-f` arguments. */
export function valuesArgs(values: Record<string, unknown> | undefined): {
  args: string[];
  cleanup: () => void;
} {
  if (!values) return { args: [], cleanup: () => {} };
  const dir = mkdtempSync(join(tmpdir(), 'syncline-values-'));
  const file = join(dir, 'values.yaml');
  writeFileSync(file, JSON.stringify(values));
  return { args: ['-f', file], cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `helm template` of the chart; returns the manifest text. */
export async function renderChart(
  values?: Record<string, unknown>,
  { release = 'syncline', namespace = 'syncline-system' }: { release?: string; namespace?: string } = {},
): Promise<string> {
  const { args, cleanup } = valuesArgs(values);
  try {
    const { stdout } = await helm([
      'template',
      release,
      CHART_DIR,
      '--namespace',
      namespace,
      '--kube-version',
      KUBE_VERSION,
      ...args,
    ]);
    return stdout;
  } finally {
    cleanup();
  }
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0)
        throw new Error(`invalid YAML from helm template: ${doc.errors[0]?.message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((obj): obj is K8sObject => obj !== null && typeof obj === 'object');
}

export function find(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (!found)
    throw new Error(
      `no ${kind}${name ? ` ${name}` : ''} in: ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`,
    );
  return found;
}

/** Values that switch on everything optional, for the non-default renders. */
export const FULL_VALUES = {
  watchNamespaces: ['team-a', 'team-b'],
  replicaCount: 3,
  image: { repository: 'registry.example.com/syncline', digest: `sha256:${'a'.repeat(64)}` },
  diffStore: {
    url: 's3://syncline-state/prod',
    s3: {
      region: 'eu-west-1',
      accessKeyIdSecretRef: { name: 'syncline-store', key: 'accessKeyId' },
      secretAccessKeySecretRef: { name: 'syncline-store', key: 'secretAccessKey' },
    },
    namespaceSecret: 'syncline-diffstore',
  },
  runner: {
    resources: {
      requests: { cpu: '500m', memory: '1Gi', 'ephemeral-storage': '2Gi' },
      limits: { memory: '4Gi', 'ephemeral-storage': '20Gi' },
    },
    maxResources: { cpu: '4', memory: '8Gi', 'ephemeral-storage': '50Gi' },
    activeDeadlineSeconds: 7200,
    maxActiveDeadlineSeconds: 14400,
    memoryLimit: '3GB',
    env: { TZ: 'Europe/Paris' },
    serviceAccount: {
      annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/syncline-runner' },
      namespaceAnnotations: {
        'team-b': { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/syncline-team-b' },
      },
    },
    networkPolicy: {
      enabled: true,
      apiServerCIDRs: ['10.96.0.1', '172.18.0.2/32', 'fd00:10:96::1'],
    },
  },
  serviceAccount: {
    annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/syncline-operator' },
  },
  metrics: {
    serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
    prometheusRule: { enabled: true, disabledAlerts: ['SynclineRunSlow'], alertLabels: { team: 'data' } },
    dashboard: { enabled: true },
  },
};

/** Runs a command to completion and returns its exit code and output, whatever the code. */
export function exec(
  command: string,
  args: string[],
  options: SpawnOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}
