// A files Model's query, run where it can read the Source's files and nothing else (sandbox-child.ts): in
// a child process whose working folder is the Source folder (so relative paths resolve against it, as
// DuckDB's allowed_directories checks them against the working folder), with DuckDB's external access
// off except that folder and its configuration locked. The model comes back as a DuckDB database file,
// which keeps every type exactly; the engine's connection copies it into the staged table.
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DuckDBConnection } from '@duckdb/node-api';
import { SynclineError } from '../../core/errors.ts';
import { MODEL_NOT_READ_ONLY, modelNotReadOnly } from '../shared/read-only.ts';
import { quoteIdent, quoteLiteral } from '../shared/sql.ts';
import type { StageRequest } from '../../core/connectors.ts';
import type { SandboxAnswer, SandboxJob } from './sandbox-child.ts';

const CHILD = fileURLToPath(new URL('./sandbox-child.ts', import.meta.url));

async function setting(duck: DuckDBConnection, name: string): Promise<string> {
  const reader = await duck.runAndReadAll(`SELECT current_setting(${quoteLiteral(name)})::VARCHAR AS v`);
  return String(reader.getRowObjectsJS()[0]?.v);
}

/** Run the job in the child; its answer, or a SourceQueryFailed when it ended without one. */
function runChild(job: SandboxJob, signal: AbortSignal): Promise<SandboxAnswer> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD], { cwd: job.folder, env: {}, stdio: 'pipe' });
    let out = '';
    let err = '';
    const onAbort = () => child.kill('SIGKILL');
    signal.addEventListener('abort', onAbort, { once: true });
    child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (err = (err + text).slice(-2000)));
    child.on('error', (error) =>
      reject(
        new SynclineError(
          'SourceQueryFailed',
          `cannot start the process that runs the model query: ${error.message}`,
          { cause: error },
        ),
      ),
    );
    child.on('close', (code, killed) => {
      signal.removeEventListener('abort', onAbort);
      if (signal.aborted) return reject(signal.reason);
      try {
        resolve(JSON.parse(out) as SandboxAnswer);
      } catch {
        const how = killed ? `was killed by ${killed}` : `exited with code ${code}`;
        const last = err.trim().split('\n').at(-1) ?? '';
        reject(new SynclineError('SourceQueryFailed', `the process running the model query ${how}: ${last}`));
      }
    });
    child.stdin.end(JSON.stringify(job));
  });
}

/**
 * Create table `table` on `duck` from `query`, run over the files in `folder` only. `name` replaces the
 * folder's local path in messages (a bucket's URL when the files were downloaded).
 */
export async function stageSandboxedQuery(options: {
  duck: DuckDBConnection;
  table: string;
  query: string;
  folder: string;
  name: string;
  scratch: string;
  signal: AbortSignal;
  labels: StageRequest['labels'];
}): Promise<void> {
  const { duck, table, scratch } = options;
  mkdirSync(join(scratch, 'spill'), { recursive: true });
  const database = join(scratch, 'model.duckdb');
  const alias = quoteIdent(`files_query_${table}`);
  try {
    const answer = await runChild(
      {
        query: options.query,
        folder: options.folder,
        database,
        spill: join(scratch, 'spill'),
        memoryLimit: await setting(duck, 'memory_limit'),
        threads: await setting(duck, 'threads'),
      },
      options.signal,
    );
    if (!answer.ok) {
      const message = answer.message.replaceAll(options.folder, options.name);
      if (answer.reason === MODEL_NOT_READ_ONLY) throw modelNotReadOnly(options.labels, 'DuckDB', message);
      throw new SynclineError(answer.reason, message);
    }
    await duck.run(`ATTACH ${quoteLiteral(database)} AS ${alias} (READ_ONLY)`);
    try {
      await duck.run(`CREATE TABLE ${quoteIdent(table)} AS SELECT * FROM ${alias}.main.model`);
    } finally {
      await duck.run(`DETACH ${alias}`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
