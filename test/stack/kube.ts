import { KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureKubeBinaries, type KubeBinaries } from './build.ts';
import { REPO_DIR } from './paths.ts';
import { freePort, run, startProcess, waitFor, type ManagedProcess } from './process.ts';

export interface KubeStack {
  /** Admin kubeconfig (bearer token, cluster CA) for kubectl and clients. */
  kubeconfigPath: string;
  server: string;
  token: string;
  caFile: string;
  dir: string;
  kubeConfig(): KubeConfig;
  /** Stop only the API server (etcd keeps the data), to test watch disruption. */
  stopApiServer(): Promise<void>;
  startApiServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface KubeStackOptions {
  /** Also run kube-controller-manager (Jobs, garbage collection of owned objects, namespaces, ...). */
  controllerManager?: boolean;
  /** Apply crds/*.yaml and wait until they are Established. */
  installCrds?: boolean;
  logDir?: string;
  log?: (line: string) => void;
  /**
   * Write the API server's audit log (JSON lines) to this file: every request to Syncline objects and to
   * Jobs with its request and response bodies, the other writes without. Off unless given; the kube
   * project's global setup passes SYNCLINE_KUBE_AUDIT_LOG, to read the exact order of writes of a flaky
   * test.
   */
  auditLogPath?: string;
}

/** The audit policy of `auditLogPath`: bodies for what the operator reconciles, metadata for writes. */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: RequestResponse
    resources:
      - group: syncline.io
      - group: batch
        resources: [jobs]
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
`;

/** Controllers that make Jobs and owner references behave as on a real cluster; nothing node-related. */
const CONTROLLERS = [
  'job-controller',
  'garbage-collector-controller',
  'namespace-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'ttl-after-finished-controller',
  'root-ca-certificate-publisher-controller',
  'clusterrole-aggregation-controller',
];

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd });
}

/** A throwaway CA, a serving certificate for 127.0.0.1/localhost, and the service-account signing key. */
async function makePki(dir: string): Promise<void> {
  await openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '30',
      '-subj',
      '/CN=syncline-test-ca',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
    ],
    dir,
  );
  writeFileSync(
    join(dir, 'san.cnf'),
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1',
    ].join('\n'),
  );
  await openssl(
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=kube-apiserver',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
    ],
    dir,
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '30',
      '-extfile',
      'san.cnf',
      '-out',
      'server.crt',
    ],
    dir,
  );
  await openssl(['genrsa', '-out', 'sa.key', '2048'], dir);
  await openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
}

function kubeconfigYaml(server: string, caFile: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: syncline-test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority: ${caFile}`,
    'users:',
    '- name: admin',
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: syncline-test',
    '  context: {cluster: syncline-test, user: admin}',
    'current-context: syncline-test',
    '',
  ].join('\n');
}

function httpsGet(url: string, caFile: string, token: string, ca: Buffer | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { authorization: `Bearer ${token}` }, ca, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`timeout on ${url} (${caFile})`)));
    req.end();
  });
}

/**
 * A real Kubernetes control plane on loopback, started the way controller-runtime's envtest does it:
 * etcd, kube-apiserver (RBAC on, a static admin token in system:masters) and, optionally,
 * kube-controller-manager. Everything is built from source by build.ts and cached.
 */
export async function startKube(options: KubeStackOptions = {}): Promise<KubeStack> {
  const log = options.log ?? (() => {});
  const binaries: KubeBinaries = await ensureKubeBinaries(log);
  const dir = mkdtempSync(join(tmpdir(), 'syncline-kube-'));
  const logDir = options.logDir ?? join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  await makePki(dir);
  const token = randomBytes(24).toString('hex');
  writeFileSync(join(dir, 'tokens.csv'), `${token},syncline-admin,syncline-admin,"system:masters"\n`, {
    mode: 0o600,
  });
  const caFile = join(dir, 'ca.crt');
  const { readFileSync } = await import('node:fs');
  const ca = readFileSync(caFile);

  const [etcdClientPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
  const etcd = startProcess(
    'etcd',
    binaries.etcd,
    [
      '--data-dir',
      join(dir, 'etcd'),
      '--listen-client-urls',
      etcdUrl,
      '--advertise-client-urls',
      etcdUrl,
      '--listen-peer-urls',
      `http://127.0.0.1:${etcdPeerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${etcdPeerPort}`,
      '--initial-cluster',
      `default=http://127.0.0.1:${etcdPeerPort}`,
      '--unsafe-no-fsync',
      '--log-level',
      'warn',
    ],
    { logDir },
  );
  await waitFor(
    'etcd',
    async () => {
      if (etcd.exited()) throw new Error(`etcd exited; see ${etcd.logFile}`);
      const res = await fetch(`${etcdUrl}/health`);
      return res.ok;
    },
    { timeoutMs: 30_000 },
  );

  const server = `https://127.0.0.1:${apiPort}`;
  const apiArgs = [
    '--etcd-servers',
    etcdUrl,
    '--bind-address',
    '127.0.0.1',
    '--advertise-address',
    '127.0.0.1',
    '--secure-port',
    String(apiPort),
    '--tls-cert-file',
    join(dir, 'server.crt'),
    '--tls-private-key-file',
    join(dir, 'server.key'),
    '--client-ca-file',
    caFile,
    '--token-auth-file',
    join(dir, 'tokens.csv'),
    '--authorization-mode',
    'RBAC',
    '--service-account-issuer',
    'https://kubernetes.default.svc.cluster.local',
    '--service-account-key-file',
    join(dir, 'sa.pub'),
    '--service-account-signing-key-file',
    join(dir, 'sa.key'),
    '--service-cluster-ip-range',
    '10.0.0.0/24',
    '--allow-privileged=false',
    '--enable-priority-and-fairness=false',
    '--storage-media-type',
    'application/json',
    '--v',
    '1',
  ];
  if (options.auditLogPath) {
    writeFileSync(join(dir, 'audit-policy.yaml'), AUDIT_POLICY);
    apiArgs.push(
      '--audit-policy-file',
      join(dir, 'audit-policy.yaml'),
      '--audit-log-path',
      options.auditLogPath,
      '--audit-log-format',
      'json',
      '--audit-log-mode',
      'blocking',
    );
  }
  let apiserver: ManagedProcess | undefined;
  const startApiServer = async () => {
    apiserver = startProcess('kube-apiserver', binaries.kubeApiserver, apiArgs, { logDir });
    const current = apiserver;
    await waitFor(
      'kube-apiserver',
      async () => {
        if (current.exited()) throw new Error(`kube-apiserver exited; see ${current.logFile}`);
        return (await httpsGet(`${server}/readyz`, caFile, token, ca)) === 200;
      },
      { timeoutMs: 120_000, intervalMs: 250 },
    );
  };
  await startApiServer();

  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfigYaml(server, caFile, token), { mode: 0o600 });

  let controllerManager: ManagedProcess | undefined;
  if (options.controllerManager ?? true) {
    controllerManager = startProcess(
      'kube-controller-manager',
      binaries.kubeControllerManager,
      [
        '--kubeconfig',
        kubeconfigPath,
        '--authentication-kubeconfig',
        kubeconfigPath,
        '--authorization-kubeconfig',
        kubeconfigPath,
        '--controllers',
        CONTROLLERS.join(','),
        '--service-account-private-key-file',
        join(dir, 'sa.key'),
        '--root-ca-file',
        caFile,
        '--use-service-account-credentials=false',
        '--leader-elect=false',
        '--bind-address',
        '127.0.0.1',
        '--secure-port',
        String(await freePort()),
        '--concurrent-job-syncs',
        '10',
        '--v',
        '1',
      ],
      { logDir },
    );
  }

  if (options.installCrds ?? true) {
    await installCrds(kubeconfigPath);
  }

  return {
    kubeconfigPath,
    server,
    token,
    caFile,
    dir,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfigPath);
      return kc;
    },
    async stopApiServer() {
      await apiserver?.stop();
    },
    startApiServer,
    async stop() {
      await controllerManager?.stop();
      await apiserver?.stop();
      await etcd.stop();
      if (!options.logDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Apply every CRD in crds/ server-side and wait until each is Established. */
export async function installCrds(kubeconfigPath: string): Promise<void> {
  const crdDir = join(REPO_DIR, 'crds');
  const files = readdirSync(crdDir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(crdDir, f));
  const env = { ...process.env, KUBECONFIG: kubeconfigPath };
  await run('kubectl', ['apply', '--server-side', '--force-conflicts', ...files.flatMap((f) => ['-f', f])], {
    env,
  });
  await run(
    'kubectl',
    ['wait', '--for=condition=Established', '--timeout=60s', ...files.flatMap((f) => ['-f', f])],
    { env },
  );
}
