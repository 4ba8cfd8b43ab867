// The Python client's own tests (unittest, against a fake run API in a thread), run as part of `npm test`.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** Runs a Python command in the repository; resolves with its exit code and its output, both streams. */
export function python(
  args: string[],
  options: { executable?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(options.executable ?? 'python3', args, {
      cwd: REPO,
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** The number of tests unittest ran, from its summary line; fails the test when it ran none or failed. */
export function ranTests(result: { code: number | null; output: string }): number {
  expect(result.output, result.output).toMatch(/^OK( \(skipped=\d+\))?$/m);
  expect(result.code, result.output).toBe(0);
  return Number(/^Ran (\d+) tests? in /m.exec(result.output)?.[1] ?? 0);
}

describe('the Python client (clients/python)', () => {
  it('passes its unittest suite against a fake run API', async () => {
    const result = await python(['-m', 'unittest', 'discover', '-v', '-s', 'clients/python/tests']);
    expect(ranTests(result)).toBeGreaterThanOrEqual(20);
    expect(result.output).toMatch(/test_tls_with_a_ca_file .* ok$/m);
  }, 120_000);
});
