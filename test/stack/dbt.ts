import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { CACHE_DIR } from './paths.ts';
import { run } from './process.ts';
import { VERSIONS } from './versions.ts';

interface DbtVersions {
  python: string;
  packages: Record<string, string>;
}

function dbtVersions(): DbtVersions {
  const entry = (VERSIONS as unknown as { dbt?: DbtVersions }).dbt;
  if (!entry) throw new Error('test/stack/versions.json has no "dbt" entry');
  return entry;
}

/**
 * A Python virtual environment under the stack cache with dbt-core and the Postgres adapter installed from
 * PyPI at the pinned versions; returns the path of its `dbt` executable.
 */
export async function ensureDbt(log: (line: string) => void = () => {}): Promise<string> {
  const { python, packages } = dbtVersions();
  const pins = Object.entries(packages).map(([name, version]) => `${name}==${version}`);
  const venv = join(CACHE_DIR, `dbt-${pins.join('-').replaceAll('==', '-')}`);
  const dbt = join(venv, 'bin', 'dbt');
  if (existsSync(dbt)) return dbt;
  mkdirSync(CACHE_DIR, { recursive: true });
  const release = await lockfile.lock(CACHE_DIR, {
    lockfilePath: join(CACHE_DIR, 'dbt.lock'),
    retries: { retries: 600, minTimeout: 1000, maxTimeout: 1000 },
    stale: 60_000,
  });
  try {
    if (existsSync(dbt)) return dbt;
    log(`creating a Python venv with ${pins.join(', ')}`);
    rmSync(venv, { recursive: true, force: true });
    await run(python, ['-m', 'venv', venv]);
    await run(join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', ...pins]);
    return dbt;
  } finally {
    await release();
  }
}

/** Run dbt in a project folder with its profiles in `profilesDir`; fails with dbt's output. */
export async function runDbt(
  args: string[],
  options: { projectDir: string; profilesDir: string; env?: NodeJS.ProcessEnv },
): Promise<string> {
  const dbt = await ensureDbt();
  const { stdout } = await run(
    dbt,
    [...args, '--project-dir', options.projectDir, '--profiles-dir', options.profilesDir],
    {
      cwd: options.projectDir,
      env: { ...process.env, DBT_SEND_ANONYMOUS_USAGE_STATS: 'false', DO_NOT_TRACK: '1', ...options.env },
    },
  );
  return stdout;
}
