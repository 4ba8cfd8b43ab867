// Runs `node operator/main.ts` as a child process, as a Deployment would, and reads its JSON logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_DIR } from '../stack/paths.ts';

export interface OperatorProcess {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  /** The /metrics, /healthz, /readyz port, once the operator said it started. */
  port(): Promise<number>;
  /** The run API port, once it listens. */
  apiPort(): Promise<number>;
  metrics(): Promise<string>;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
  exited(): boolean;
}

export function nodeBinary(): string {
  const local = join(REPO_DIR, 'node_modules/.bin/node');
  return existsSync(local) ? local : process.execPath;
}

export function startOperator(args: string[], env: Record<string, string> = {}): OperatorProcess {
  // The run API on a free port unless the test says otherwise: several operators run side by side.
  const apiArgs = args.some((a) => a === '--api-port' || a === '--no-api') ? [] : ['--api-port', '0'];
  const child = spawn(nodeBinary(), [join(REPO_DIR, 'operator/main.ts'), ...args, ...apiArgs], {
    cwd: REPO_DIR,
    env: { ...process.env, SYNCLINE_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let exitCode: number | null | undefined;
  const exit = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => resolve((exitCode = code))),
  );
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ msg: line });
    }
  });
  createInterface({ input: child.stderr! }).on('line', (line) => logs.push({ level: 'stderr', msg: line }));
  const port = async (): Promise<number> => {
    for (let i = 0; i < 300; i++) {
      const started = logs.find((l) => l['msg'] === 'operator started');
      if (started) return Number(started['port']);
      if (exitCode !== undefined) throw new Error(`operator exited: ${JSON.stringify(logs.slice(-10))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`operator did not start: ${JSON.stringify(logs.slice(-10))}`);
  };
  const apiPort = async (): Promise<number> => {
    for (let i = 0; i < 300; i++) {
      const listening = logs.find((l) => l['msg'] === 'run API listening');
      if (listening) return Number(listening['port']);
      if (exitCode !== undefined) throw new Error(`operator exited: ${JSON.stringify(logs.slice(-10))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the run API did not start: ${JSON.stringify(logs.slice(-10))}`);
  };
  return {
    child,
    logs,
    port,
    apiPort,
    metrics: async () => (await fetch(`http://127.0.0.1:${await port()}/metrics`)).text(),
    stop: async () => {
      if (exitCode === undefined) child.kill('SIGTERM');
      return exit;
    },
    kill: async () => {
      if (exitCode === undefined) child.kill('SIGKILL');
      await exit;
    },
    exited: () => exitCode !== undefined,
  };
}

/** The value of one sample of a Prometheus text exposition, matched by name and label substrings. */
export function sample(text: string, name: string, ...labels: string[]): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labels.every((l) => line.includes(l))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}
