import { constants, gunzipSync } from 'node:zlib';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { DiffStore } from '../../core/diffstore/index.ts';
import { SynclineError } from '../../core/errors.ts';
import type { RequestLogEntry } from '../requestlog.ts';
import { describeSummary } from '../report.ts';
import { secretResolver } from '../../core/secrets.ts';
import { openBlobStore } from '../../core/storage/index.ts';
import { runSummary, type RunSummary } from '../../core/summary.ts';

export interface DebugOptions {
  stateDir: string;
  key?: string;
  namespace: string;
  output: 'text' | 'json';
}

const requestLogEntry = z
  .object({
    ts: z.string(),
    runId: z.string(),
    operation: z.string(),
    target: z.string(),
    keys: z.array(z.string()),
    status: z.union([z.number(), z.string()]).optional(),
    latencyMs: z.number(),
    requestBody: z.string().optional(),
    responseBody: z.string().optional(),
    error: z.string().optional(),
  })
  .loose();

function corrupt(what: string, url: string, detail: string): SynclineError {
  return new SynclineError(
    'DiffStoreCorrupt',
    `the ${what} ${url} is corrupt (${detail}): it was cut off or changed by something other than Syncline; ` +
      'delete it, and run the Sync again for a new one',
  );
}

async function readSummary(store: DiffStore, runId: string, url: string): Promise<RunSummary | undefined> {
  const json = await store.readRunSummary(runId); // a file that is not JSON fails here, naming it
  if (json === undefined) return undefined;
  const parsed = runSummary.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw corrupt('run summary', url, `${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** The entries of a request log that can be read, and what is wrong with the rest. */
export function parseRequestLog(
  gz: Buffer,
  key: string | undefined,
): { entries: RequestLogEntry[]; problem?: string } {
  let text: string;
  let problem: string | undefined;
  try {
    text = gunzipSync(gz).toString('utf8');
  } catch (error) {
    problem = `not a complete gzip stream: ${(error as Error).message}`;
    // What was written before the damage: a truncated log still has its first requests.
    try {
      text = gunzipSync(gz, { finishFlush: constants.Z_SYNC_FLUSH }).toString('utf8');
    } catch {
      return { entries: [], problem };
    }
  }
  const entries: RequestLogEntry[] = [];
  const lines = text.split('\n');
  for (const [index, line] of lines.entries()) {
    if (line.trim() === '') continue;
    let entry: z.infer<typeof requestLogEntry>;
    try {
      entry = requestLogEntry.parse(JSON.parse(line));
    } catch {
      problem ??= `line ${index + 1} is not a request log entry`;
      continue;
    }
    if (key === undefined || entry.keys.includes(key)) entries.push(entry as RequestLogEntry);
  }
  return problem === undefined ? { entries } : { entries, problem };
}

function printText(
  out: (line: string) => void,
  id: string,
  summary: RunSummary,
  rejected: RunSummary['rejected'],
  requests: RequestLogEntry[],
  options: DebugOptions & { logKept: boolean },
): void {
  out(`run ${id}`);
  out(describeSummary(summary));
  for (const r of rejected) out(`  rejected ${r.operation} ${r.key}: ${r.reason}`);
  if (!options.logKept)
    out('  no request log kept for this run (none recorded, or older than the retention)');
  else
    out(`  ${requests.length} request(s)${options.key === undefined ? '' : ` touching key ${options.key}`}:`);
  for (const r of requests) {
    out(
      `  ${r.ts} ${r.operation} ${r.target} -> ${r.status ?? r.error ?? '?'} in ${r.latencyMs} ms (keys: ${r.keys.slice(0, 5).join(', ')}${r.keys.length > 5 ? ', …' : ''})`,
    );
    if (r.requestBody) out(`    request: ${r.requestBody}`);
    if (r.responseBody) out(`    response: ${r.responseBody}`);
    if (r.error) out(`    error: ${r.error}`);
  }
}

/** `syncline debug`: a run's summary and request log, optionally only what touched one key. */
export async function debugRun(
  sync: string,
  runId: string | undefined,
  options: DebugOptions,
  out: (line: string) => void,
): Promise<number> {
  const blob = openBlobStore(
    /^(s3|gs|file):\/\//.test(options.stateDir)
      ? options.stateDir
      : pathToFileURL(resolve(options.stateDir)).href,
    { secrets: secretResolver(process.env) },
  );
  const store = new DiffStore(blob, options.namespace, sync);
  const runs = await store.listRuns();
  const id = runId ?? runs[0]?.runId;
  if (!id)
    throw new SynclineError('RunNotFound', `no runs of Sync ${options.namespace}/${sync} in ${store.url}`);
  // The diff store's layout: runs/<id>.json beside runs/<id>.requests.jsonl.gz.
  const summary = await readSummary(store, id, `${store.url}runs/${id}.json`);
  if (!summary) {
    const recent = runs.slice(0, 5).map((r) => r.runId);
    throw new SynclineError(
      'RunNotFound',
      `no run ${id} of Sync ${options.namespace}/${sync}; recent runs: ${recent.join(', ') || 'none'}`,
    );
  }
  const logUrl = `${store.url}runs/${id}.requests.jsonl.gz`;
  const gz = await store.readRequestLog(id);
  const log = gz ? parseRequestLog(gz, options.key) : { entries: [] };
  const rejected = summary.rejected.filter((r) => options.key === undefined || r.key === options.key);
  if (options.output === 'json') {
    out(
      JSON.stringify({
        summary,
        rejected,
        requests: log.entries,
        requestLogKept: gz !== undefined,
        ...(log.problem ? { requestLogProblem: log.problem } : {}),
      }),
    );
  } else {
    printText(out, id, summary, rejected, log.entries, { ...options, logKept: gz !== undefined });
  }
  if (log.problem) {
    const error = corrupt('request log', logUrl, log.problem);
    throw new SynclineError(
      error.reason,
      `${error.message}; the ${log.entries.length} request(s) read before the damage are shown above`,
    );
  }
  return 0;
}
