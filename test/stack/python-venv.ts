import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { CACHE_DIR } from './paths.ts';
import { run } from './process.ts';

/**
 * A Python virtual environment under the stack cache with `pins` (`name==version`) installed from PyPI,
 * made once (under a lock: test files may ask at the same time) and kept, one per set of pins; returns
 * the path of its `python`.
 */
export async function ensurePythonVenv(
  name: string,
  pins: string[],
  log: (line: string) => void = () => {},
  python = 'python3',
): Promise<string> {
  const venv = join(CACHE_DIR, `${name}-${pins.join('-').replaceAll('==', '-')}`);
  const executable = join(venv, 'bin', 'python');
  // Written last: a venv whose install was cut short is made again.
  const done = join(venv, '.installed');
  if (existsSync(done)) return executable;
  mkdirSync(CACHE_DIR, { recursive: true });
  const release = await lockfile.lock(CACHE_DIR, {
    lockfilePath: join(CACHE_DIR, `${name}.lock`),
    retries: { retries: 600, minTimeout: 1000, maxTimeout: 1000 },
    stale: 60_000,
  });
  try {
    if (existsSync(done)) return executable;
    log(`creating a Python venv with ${pins.join(', ')}`);
    rmSync(venv, { recursive: true, force: true });
    await run(python, ['-m', 'venv', venv]);
    await run(join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', ...pins]);
    writeFileSync(done, '');
    return executable;
  } finally {
    await release();
  }
}
