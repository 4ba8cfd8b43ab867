import type { KubeConfig } from '@kubernetes/client-node';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { SynclineError } from '../../core/errors.ts';

/** What the runtime needs of a kubeconfig: where the API server is, and how to authenticate to it. */
export type KubeAccess = Pick<KubeConfig, 'getCurrentCluster' | 'applyToHTTPSOptions'>;

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const TOKEN_REREAD_MS = 60_000;

interface NamedEntry<T> {
  name: string;
  [key: string]: unknown;
  value?: T;
}

interface ClusterEntry {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
  'proxy-url'?: string;
}

interface UserEntry {
  token?: string;
  tokenFile?: string;
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  exec?: unknown;
  'auth-provider'?: unknown;
  username?: string;
  password?: string;
}

interface KubeConfigFile {
  'current-context'?: string;
  contexts?: (NamedEntry<unknown> & { context?: { cluster?: string; user?: string } })[];
  clusters?: (NamedEntry<unknown> & { cluster?: ClusterEntry })[];
  users?: (NamedEntry<unknown> & { user?: UserEntry })[];
}

interface StaticAccess {
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecure?: boolean;
  serverName?: string;
  token?: string;
  tokenFile?: string;
}

/**
 * A kubeconfig with static credentials (client certificates, a token or a token file, as in-cluster
 * service accounts and most kubeconfigs have), read without client-node. Loading client-node costs the
 * operator process ~80 MB of its memory (its generated API models), and the runtime needs only the
 * server and the credentials; kubeconfigs with exec plugins or auth providers still go through
 * client-node's KubeConfig, loaded only then.
 */
class StaticKubeAccess implements KubeAccess {
  private readonly access: StaticAccess;
  private cachedToken: { value: string; readAt: number } | undefined;

  constructor(access: StaticAccess) {
    this.access = access;
  }

  getCurrentCluster(): ReturnType<KubeConfig['getCurrentCluster']> {
    return {
      name: 'current',
      server: this.access.server,
      skipTLSVerify: this.access.insecure ?? false,
      ...(this.access.serverName ? { tlsServerName: this.access.serverName } : {}),
    };
  }

  private token(): string | undefined {
    if (this.access.token) return this.access.token;
    if (!this.access.tokenFile) return undefined;
    // Projected service-account tokens are rotated on disk: read the file again now and then.
    const now = Date.now();
    if (!this.cachedToken || now - this.cachedToken.readAt > TOKEN_REREAD_MS) {
      this.cachedToken = { value: readFileSync(this.access.tokenFile, 'utf8').trim(), readAt: now };
    }
    return this.cachedToken.value;
  }

  applyToHTTPSOptions(options: Parameters<KubeConfig['applyToHTTPSOptions']>[0]): Promise<void> {
    const target = options as Record<string, unknown> & { headers?: Record<string, unknown> };
    const { ca, cert, key, insecure, serverName } = this.access;
    if (ca) target['ca'] = ca;
    if (cert) target['cert'] = cert;
    if (key) target['key'] = key;
    if (insecure) target['rejectUnauthorized'] = false;
    if (serverName) target['servername'] = serverName;
    const token = this.token();
    if (token) target.headers = { ...target.headers, Authorization: `Bearer ${token}` };
    return Promise.resolve();
  }
}

function readMaterial(data: string | undefined, file: string | undefined, base: string): Buffer | undefined {
  if (data) return Buffer.from(data, 'base64');
  if (file) return readFileSync(isAbsolute(file) ? file : join(base, file));
  return undefined;
}

/** The static access of a kubeconfig file; undefined when it needs client-node (exec, auth providers...). */
function staticAccessFromFile(path: string): StaticAccess | undefined {
  let config: KubeConfigFile;
  try {
    config = parse(readFileSync(path, 'utf8')) as KubeConfigFile;
  } catch (error) {
    throw new SynclineError('KubeConfigInvalid', `cannot read the kubeconfig ${path}: ${String(error)}`);
  }
  const contextName = config['current-context'];
  const context = config.contexts?.find((c) => c.name === contextName)?.context;
  const cluster = config.clusters?.find((c) => c.name === context?.cluster)?.cluster;
  const user = config.users?.find((u) => u.name === context?.user)?.user ?? {};
  if (!context || !cluster?.server) return undefined;
  if (user.exec || user['auth-provider'] || user.username || cluster['proxy-url']) return undefined;
  const base = dirname(path);
  const ca = readMaterial(cluster['certificate-authority-data'], cluster['certificate-authority'], base);
  const cert = readMaterial(user['client-certificate-data'], user['client-certificate'], base);
  const key = readMaterial(user['client-key-data'], user['client-key'], base);
  return {
    server: cluster.server,
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(cluster['insecure-skip-tls-verify'] ? { insecure: true } : {}),
    ...(cluster['tls-server-name'] ? { serverName: cluster['tls-server-name'] } : {}),
    ...(user.token ? { token: user.token } : {}),
    ...(user.tokenFile
      ? { tokenFile: isAbsolute(user.tokenFile) ? user.tokenFile : join(base, user.tokenFile) }
      : {}),
  };
}

function inClusterAccess(env: NodeJS.ProcessEnv): StaticAccess | undefined {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  const tokenFile = join(SERVICE_ACCOUNT_DIR, 'token');
  if (!host || !port || !existsSync(tokenFile)) return undefined;
  const caFile = join(SERVICE_ACCOUNT_DIR, 'ca.crt');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ...(existsSync(caFile) ? { ca: readFileSync(caFile) } : {}),
    tokenFile,
  };
}

/**
 * Loads the kubeconfig as client-node's `loadFromFile` / `loadFromDefault` would (a path; else
 * $KUBECONFIG, ~/.kube/config, then the in-cluster service account), without loading client-node unless
 * the credentials need it.
 */
export async function loadKubeAccess(
  path?: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<KubeAccess> {
  const fallback = async (): Promise<KubeAccess> => {
    const { KubeConfig: ClientKubeConfig } = await import('@kubernetes/client-node');
    const kubeConfig = new ClientKubeConfig();
    if (path) kubeConfig.loadFromFile(path);
    else kubeConfig.loadFromDefault();
    return kubeConfig;
  };
  const envPath = env['KUBECONFIG'];
  const file =
    path ??
    (envPath
      ? envPath.includes(':')
        ? undefined
        : envPath
      : existsSync(join(homedir(), '.kube', 'config'))
        ? join(homedir(), '.kube', 'config')
        : undefined);
  if (file) {
    const access = staticAccessFromFile(file);
    return access ? new StaticKubeAccess(access) : fallback();
  }
  if (!envPath) {
    const access = inClusterAccess(env);
    if (access) return new StaticKubeAccess(access);
  }
  return fallback();
}
