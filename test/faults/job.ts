// `syncline job --plan FILE` as a real process, stopped by a signal a chosen time after delivery began.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(REPO, 'bin', 'syncline.mjs');

export interface Kill {
  signal: 'SIGKILL' | 'SIGTERM';
  /** Delay after the job logged `phase Delivering`. */
  afterMs: number;
}

export interface JobResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The signal was sent while the job was delivering (after `phase Delivering`, before `phase Committing`). */
  landedInDelivery: boolean;
  /** A signal was sent at all (during delivery, or later while the job committed). */
  signalSent: boolean;
  deliveryStarted: boolean;
  /** From `phase Delivering` to `phase Committing`, when the job got that far. */
  deliveryMs: number | undefined;
  ms: number;
  output: string;
}

export interface JobEnv {
  work: string;
  pgPassword: string;
  /** More environment for the job (secrets of other destinations: SYNCLINE_SECRET_<NAME>__<KEY>). */
  env?: Record<string, string>;
}

let counter = 0;

export function writePlan(work: string, plan: unknown): string {
  const file = join(work, `plan-${++counter}.json`);
  writeFileSync(file, JSON.stringify(plan));
  return file;
}

export interface JobHooks {
  /** Called once, when the job logs `phase Delivering`. */
  onDelivering?: () => void;
  /**
   * Called at `phase Delivering`: the kill's delay then counts from when the promise resolves (e.g. the
   * destination saw the job's first write) instead of from the log line.
   */
  killFrom?: () => Promise<void>;
}

export function runJob(env: JobEnv, plan: unknown, kill?: Kill, hooks: JobHooks = {}): Promise<JobResult> {
  const file = writePlan(env.work, plan);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'job', '--plan', file], {
      cwd: REPO,
      env: {
        ...process.env,
        TMPDIR: env.work,
        SYNCLINE_SECRET_PG__PASSWORD: env.pgPassword,
        SYNCLINE_TERMINATION_LOG: join(env.work, 'termination'),
        SYNCLINE_LOG_LEVEL: 'info',
        ...env.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let deliveryStarted = false;
    let landedInDelivery = false;
    let signalSent = false;
    let exited = false;
    let deliveringAt = 0;
    let deliveryMs: number | undefined;
    const fire = (signal: Kill['signal']) => {
      if (exited) return;
      landedInDelivery = !output.includes('phase Committing');
      signalSent = child.kill(signal);
    };
    child.stdout.on('data', (data: Buffer) => {
      output += data.toString();
      if (!deliveryStarted && output.includes('phase Delivering')) {
        deliveryStarted = true;
        deliveringAt = Date.now();
        hooks.onDelivering?.();
        if (kill) {
          const arm = () => setTimeout(() => fire(kill.signal), kill.afterMs);
          if (hooks.killFrom) void hooks.killFrom().then(arm);
          else arm();
        }
      }
      if (deliveryStarted && deliveryMs === undefined && output.includes('phase Committing'))
        deliveryMs = Date.now() - deliveringAt;
    });
    child.stderr.on('data', (data: Buffer) => (output += data.toString()));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      exited = true;
      resolve({
        code,
        signal,
        landedInDelivery,
        signalSent,
        deliveryStarted,
        deliveryMs,
        ms: Date.now() - started,
        output,
      });
    });
  });
}
