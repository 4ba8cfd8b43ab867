// One sync as `syncline job` in a child process, as the benchmarks measure it: its summary, wall time
// and peak resident memory (VmHWM: Node and DuckDB together).
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunSummary } from '../core/summary.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));

export function vmHwmKb(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined; // the process has exited
  }
}

export interface JobRun {
  summary: RunSummary;
  wallMs: number;
  peakMb: number;
}

/** Runs `plan` (written to `<dir>/<name>.json`) with `env` added (secrets); throws when the run fails. */
export async function runSyncJob(
  plan: unknown,
  options: { dir: string; name: string; env: Record<string, string> },
): Promise<JobRun> {
  const planFile = join(options.dir, `${options.name}.json`);
  writeFileSync(planFile, JSON.stringify(plan));
  const termination = join(options.dir, `${options.name}.termination`);
  const started = performance.now();
  const child = spawn(process.execPath, [join(REPO, 'bin', 'syncline.mjs'), 'job', '--plan', planFile], {
    env: {
      ...process.env,
      ...options.env,
      SYNCLINE_TERMINATION_LOG: termination,
      SYNCLINE_LOG_LEVEL: process.env['SYNCLINE_LOG_LEVEL'] ?? 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  let peakKb = 0;
  const sampler = setInterval(() => {
    peakKb = Math.max(peakKb, vmHwmKb(child.pid as number) ?? 0);
  }, 20);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearInterval(sampler);
  const wallMs = performance.now() - started;
  const summary = JSON.parse(readFileSync(termination, 'utf8')) as RunSummary;
  if (code !== 0) throw new Error(`sync ${options.name} failed: ${summary.reason}: ${summary.message}`);
  return { summary, wallMs, peakMb: peakKb / 1024 };
}
