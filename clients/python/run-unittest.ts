// Running a Python unittest suite from vitest: `npm test` runs the Python client's and the examples' tests.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

export interface PythonResult {
  code: number | null;
  /** stdout and stderr, in the order they came. */
  output: string;
}

/** Runs a Python command in the repository (no bytecode files written). */
export function python(
  args: string[],
  options: { executable?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<PythonResult> {
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

/** `python -m unittest discover -v -s <folder>`: fails the vitest test unless every test passed. */
export async function unittestSuite(
  folder: string,
  options: { executable?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ ran: number; output: string }> {
  const result = await python(['-m', 'unittest', 'discover', '-v', '-s', folder], options);
  expect(result.output, result.output).toMatch(/^OK( \(skipped=\d+\))?$/m);
  expect(result.code, result.output).toBe(0);
  const ran = Number(/^Ran (\d+) tests? in /m.exec(result.output)?.[1] ?? 0);
  return { ran, output: result.output };
}
