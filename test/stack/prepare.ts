// Install and build everything the test suite runs, one step at a time, before the tests start: apt
// installs cannot run side by side, and a build is better paid once, up front, than inside a test's timeout.
import { existsSync } from 'node:fs';
import { ensureHelm } from '../chart/helm.ts';
import { ensureHadolint } from '../image/hadolint.ts';
import { buildBigQueryEmulator } from './bigquery.ts';
import { ensureGoTool, ensureKubeBinaries } from './build.ts';
import { ensureChromium } from './chromium.ts';
import { ensureDbt } from './dbt.ts';
import { ensureOrchestratorVenv } from './orchestrators.ts';
import { ensureMysqlInstalled } from './mysql.ts';
import { ensureSshdInstalled } from './sshd.ts';
import { ensurePostgresInstalled } from './postgres.ts';
import { run } from './process.ts';
import { ensureLua, ensurePromtool } from './prometheus.ts';
import { VERSIONS } from './versions.ts';

interface DebianNeed {
  debianPackage: string;
  /** Present when the package is installed. */
  probe: string;
}

function debianNeeds(): DebianNeed[] {
  const v = VERSIONS as unknown as {
    postgres: { debianPackage: string; major: number };
    mysql: { debianPackage: string };
    prometheus: { debianPackage: string };
    lua: { debianPackage: string; binary: string };
    chromium: { debianPackage: string; binary: string };
    sshd: { debianPackage: string };
  };
  return [
    { debianPackage: v.postgres.debianPackage, probe: `/usr/lib/postgresql/${v.postgres.major}/bin/initdb` },
    { debianPackage: v.mysql.debianPackage, probe: '/usr/bin/mariadb-install-db' },
    { debianPackage: v.prometheus.debianPackage, probe: '/usr/bin/promtool' },
    { debianPackage: v.lua.debianPackage, probe: `/usr/bin/${v.lua.binary}` },
    { debianPackage: v.chromium.debianPackage, probe: `/usr/bin/${v.chromium.binary}` },
    { debianPackage: v.sshd.debianPackage, probe: '/usr/sbin/sshd' },
  ];
}

async function timed(what: string, log: (line: string) => void, step: () => Promise<unknown>): Promise<void> {
  const started = Date.now();
  await step();
  log(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

export async function prepareStack(log: (line: string) => void): Promise<void> {
  const missing = debianNeeds().filter((need) => !existsSync(need.probe));
  if (missing.length > 0) {
    if (process.getuid?.() !== 0) {
      throw new Error(
        `missing Debian packages: sudo apt-get install ${missing.map((m) => m.debianPackage).join(' ')}`,
      );
    }
    await timed(`apt-get install ${missing.map((m) => m.debianPackage).join(' ')}`, log, async () => {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      await run('apt-get', ['update', '-q'], { env });
      await run(
        'apt-get',
        ['install', '-y', '-q', '--no-install-recommends', ...missing.map((m) => m.debianPackage)],
        { env },
      );
    });
  }
  await ensurePostgresInstalled(log);
  await ensureMysqlInstalled();
  await ensureSshdInstalled();
  await ensurePromtool();
  await ensureLua();
  await ensureChromium();
  await timed('etcd, kube-apiserver, kube-controller-manager', log, () => ensureKubeBinaries(log));
  for (const name of Object.keys(VERSIONS.goTools)) {
    await timed(`go tool ${name}`, log, () => ensureGoTool(name, log));
  }
  await timed('helm', log, () => ensureHelm());
  await timed('dbt', log, () => ensureDbt(log));
  await timed('python venv of the orchestrator examples (dagster)', log, () => ensureOrchestratorVenv(log));
  await timed('hadolint', log, () => ensureHadolint());
  // Last: the longest build (C++ through cgo, about 20 minutes cold on 2 cores), cached afterwards.
  await timed('bigquery-emulator', log, () => buildBigQueryEmulator(log));
}
