import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, run, startProcess, waitFor, type ManagedProcess } from './process.ts';
import { VERSIONS } from './versions.ts';

/** Debian tools the stack installs with apt-get when missing (pinned in versions.json). */
interface DebianTools {
  prometheus: { debianPackage: string };
  lua: { debianPackage: string; binary: string };
}
const DEBIAN = VERSIONS as unknown as DebianTools;

/** Install a Debian package when `binary` is missing; returns the binary's path. */
export async function ensureDebianTool(debianPackage: string, binary: string): Promise<string> {
  const path = binary.startsWith('/') ? binary : `/usr/bin/${binary}`;
  if (existsSync(path)) return path;
  if (process.getuid?.() !== 0) {
    throw new Error(`${binary} is not installed: sudo apt-get install ${debianPackage}`);
  }
  await run('apt-get', ['update', '-q']);
  await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', debianPackage], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (!existsSync(path)) throw new Error(`apt-get install ${debianPackage} did not install ${path}`);
  return path;
}

/** promtool, from Debian's `prometheus` package. */
export async function ensurePromtool(): Promise<string> {
  return ensureDebianTool(DEBIAN.prometheus.debianPackage, 'promtool');
}

/** The Lua interpreter Argo CD's health checks are tested with (5.1, as gopher-lua implements). */
export async function ensureLua(): Promise<string> {
  return ensureDebianTool(DEBIAN.lua.debianPackage, DEBIAN.lua.binary);
}

export interface ScrapeTarget {
  job: string;
  /** host:port */
  address: string;
  path?: string;
}

export interface PrometheusServer {
  url: string;
  /** An instant query; returns the result vector. */
  query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  stop(): Promise<void>;
}

/**
 * A real Prometheus (Debian's package) on a free loopback port, scraping `targets` every
 * `scrapeIntervalSeconds`, with its TSDB in a temp folder removed on stop.
 */
export async function startPrometheus(options: {
  targets: ScrapeTarget[];
  scrapeIntervalSeconds?: number;
  ruleFiles?: string[];
  logDir?: string;
}): Promise<PrometheusServer> {
  await ensureDebianTool(DEBIAN.prometheus.debianPackage, 'prometheus');
  const dir = mkdtempSync(join(tmpdir(), 'syncline-prometheus-'));
  const interval = `${options.scrapeIntervalSeconds ?? 1}s`;
  const config = {
    global: { scrape_interval: interval, evaluation_interval: interval },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: options.targets.map((t) => ({
      job_name: t.job,
      metrics_path: t.path ?? '/metrics',
      static_configs: [{ targets: [t.address] }],
    })),
  };
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, JSON.stringify(config, null, 2)); // JSON is YAML
  const port = await freePort();
  const server: ManagedProcess = startProcess(
    `prometheus-${port}`,
    '/usr/bin/prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { logDir: options.logDir ?? dir },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'Prometheus',
    async () => {
      if (server.exited()) throw new Error(`prometheus exited; see ${server.logFile}`);
      return (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) })).ok;
    },
    { timeoutMs: 60_000, describe: () => `see ${server.logFile}` },
  );
  return {
    url,
    async query(expr) {
      const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await response.json()) as {
        status: string;
        error?: string;
        data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
      };
      if (body.status !== 'success')
        throw new Error(`query ${expr} failed: ${body.error ?? response.status}`);
      return body.data?.result ?? [];
    },
    async stop() {
      await server.stop();
      if (!options.logDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
