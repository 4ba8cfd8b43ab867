import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { CACHE_DIR, STACK_DIR } from './paths.ts';
import { run } from './process.ts';
import { VERSIONS, type GoTool } from './versions.ts';

const KUBE_MODULE_DIR = join(STACK_DIR, 'kube');

/** Go's module and build caches stay in the user's default locations, so they survive between runs. */
function goEnv(): NodeJS.ProcessEnv {
  return { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=readonly', GOTOOLCHAIN: 'local' };
}

async function withBuildLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(CACHE_DIR, { recursive: true });
  const release = await lockfile.lock(CACHE_DIR, {
    lockfilePath: join(CACHE_DIR, 'build.lock'),
    retries: { retries: 600, minTimeout: 1000, maxTimeout: 1000 },
    stale: 60_000,
  });
  try {
    return await fn();
  } finally {
    await release();
  }
}

export interface KubeBinaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
}

function assertWrapperModuleMatchesVersions(goMod: string): void {
  const { kubernetes, etcd } = VERSIONS;
  const wanted = [
    `${kubernetes.module} v${kubernetes.version}`,
    `${etcd.module} v${etcd.version}`,
    `k8s.io/api => k8s.io/api ${kubernetes.stagingVersion}`,
  ];
  for (const line of wanted) {
    if (!goMod.includes(line)) {
      throw new Error(
        `test/stack/kube/go.mod does not match versions.json (missing "${line}"): run npm run stack -- regenerate`,
      );
    }
  }
}

/**
 * Build etcd, kube-apiserver and kube-controller-manager from the Go module proxy, in one `go build`
 * of the wrapper module in test/stack/kube (see its go.mod for why a wrapper is needed). Binaries are
 * cached by the hash of go.mod and go.sum; Go's own caches make a rebuild after a version bump quick.
 */
export async function ensureKubeBinaries(log: (line: string) => void = () => {}): Promise<KubeBinaries> {
  const goMod = readFileSync(join(KUBE_MODULE_DIR, 'go.mod'), 'utf8');
  assertWrapperModuleMatchesVersions(goMod);
  const hash = createHash('sha256')
    .update(goMod)
    .update(readFileSync(join(KUBE_MODULE_DIR, 'go.sum')))
    .digest('hex')
    .slice(0, 12);
  const dir = join(CACHE_DIR, `kube-${VERSIONS.kubernetes.version}-${hash}`);
  const binaries: KubeBinaries = {
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
  };
  if (Object.values(binaries).every((path) => existsSync(path))) return binaries;
  return withBuildLock(async () => {
    if (Object.values(binaries).every((path) => existsSync(path))) return binaries;
    const { version } = VERSIONS.kubernetes;
    const [major, minor] = version.split('.');
    const ldflags = ['-s', '-w'];
    for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
      ldflags.push(
        `-X ${pkg}.gitVersion=v${version}`,
        `-X ${pkg}.gitMajor=${major}`,
        `-X ${pkg}.gitMinor=${minor}`,
        `-X ${pkg}.gitTreeState=clean`,
      );
    }
    const staging = join(dir, '.staging');
    mkdirSync(staging, { recursive: true });
    log(
      `building kube-apiserver, kube-controller-manager and etcd ${VERSIONS.etcd.version} (v${version}); the first build takes a few minutes`,
    );
    const started = Date.now();
    await run(
      'go',
      [
        'build',
        '-trimpath',
        '-ldflags',
        ldflags.join(' '),
        '-o',
        staging + '/',
        `${VERSIONS.kubernetes.module}/cmd/kube-apiserver`,
        `${VERSIONS.kubernetes.module}/cmd/kube-controller-manager`,
        VERSIONS.etcd.module,
      ],
      { cwd: KUBE_MODULE_DIR, env: goEnv() },
    );
    // etcd's main package is its module root, go.etcd.io/etcd/server/v3: go names that binary `server`.
    await run('mv', [join(staging, 'kube-apiserver'), binaries.kubeApiserver]);
    await run('mv', [join(staging, 'kube-controller-manager'), binaries.kubeControllerManager]);
    await run('mv', [join(staging, 'server'), binaries.etcd]);
    log(`built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return binaries;
  });
}

/** `go install` a tool pinned in versions.json (goTools) into the cache; returns the binary's path. */
export async function ensureGoTool(name: string, log: (line: string) => void = () => {}): Promise<string> {
  const tool: GoTool | undefined = VERSIONS.goTools[name];
  if (!tool) throw new Error(`no Go tool "${name}" in test/stack/versions.json`);
  const dir = join(CACHE_DIR, 'tools', `${name}-${tool.version}`);
  const binary = join(dir, tool.binary);
  if (existsSync(binary)) return binary;
  return withBuildLock(async () => {
    if (existsSync(binary)) return binary;
    log(`building ${name} ${tool.version} with go install`);
    const pkg = tool.package ?? tool.module;
    await run('go', ['install', '-trimpath', '-ldflags', '-s -w', `${pkg}@${tool.version}`], {
      env: { ...goEnv(), GOFLAGS: '', GOBIN: dir },
    });
    if (!existsSync(binary)) throw new Error(`go install ${pkg} did not produce ${tool.binary}`);
    return binary;
  });
}
