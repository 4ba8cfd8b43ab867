import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import {
  CONSOLE_DEBUG_LIMIT,
  CONSOLE_REQUEST_KEYS_LIMIT,
  type ConsoleRequest,
  type ConsoleRunDebug,
  type ConsoleStage,
} from '../../crds/index.ts';
import type { DiffStore } from '../../core/diffstore/index.ts';
import { describeError, SynclineError } from '../../core/errors.ts';
import { redact } from '../../core/redact.ts';
import { runSummary, type RunSummary } from '../../core/summary.ts';

/** What the debug view reads of one Sync's diff store (DiffStore, or a fake in tests). */
export type DebugStore = Pick<DiffStore, 'readRunSummary' | 'readRequestLog'>;

export interface DebugQuery {
  namespace: string;
  sync: string;
  id: string;
  /** Only the rejected rows and requests of this primary key. */
  key?: string;
  /** Most rejected rows and requests answered (CONSOLE_DEBUG_LIMIT). */
  limit?: number;
  /** A read of the store taking longer than this is given up. */
  timeoutMs?: number;
}

/** One line of a run's request log, as the runner writes it (runner/requestlog.ts RequestLogEntry). */
interface LoggedRequest {
  ts?: string;
  operation?: string;
  target?: string;
  keys?: string[];
  status?: number | string;
  latencyMs?: number;
  error?: string;
}

const STAGES = ['query', 'validate', 'diff', 'deliver', 'commit', 'total'] as const;

/**
 * What `kubectl syncline debug` shows of one run, read from the Sync's diff store: the run summary (counts,
 * stage timings, the rejected rows it names) and the request log, both filtered by primary key when one
 * is given and cut to `limit` entries each. Request and response bodies are left out: they carry row
 * payloads, and `get` on a Sync is a weaker right than reading the diff store.
 */
export async function readRunDebug(store: DebugStore, query: DebugQuery): Promise<ConsoleRunDebug> {
  const limit = query.limit ?? CONSOLE_DEBUG_LIMIT;
  const timeoutMs = query.timeoutMs ?? 10_000;
  const summary = await readSummary(store, query, timeoutMs);
  const gz = await fromStore('the request log', () =>
    withTimeout(store.readRequestLog(query.id), timeoutMs, 'the request log'),
  );
  const matching = summary.rejected.filter((r) => query.key === undefined || r.key === query.key);
  const requests = gz ? await readRequests(gz, query.key, limit) : { entries: [], more: false };
  return {
    namespace: query.namespace,
    sync: query.sync,
    id: query.id,
    ...(query.key !== undefined ? { key: query.key } : {}),
    result: summary.result,
    ...(summary.reason ? { reason: summary.reason } : {}),
    ...(summary.stage ? { stage: summary.stage } : {}),
    message: summary.message,
    startedAt: summary.startedAt,
    finishedAt: summary.finishedAt,
    fullResync: summary.fullResync,
    counts: summary.counts,
    stages: stagesOf(summary),
    rejected: matching.slice(0, limit),
    requestLogKept: gz !== undefined,
    requests: requests.entries,
    truncated: matching.length > limit || requests.more,
  };
}

async function readSummary(store: DebugStore, query: DebugQuery, timeoutMs: number): Promise<RunSummary> {
  const found = await fromStore('the run summary', () =>
    store.readRunSummary(query.id, { signal: AbortSignal.timeout(timeoutMs) }),
  );
  if (found === undefined)
    throw new SynclineError(
      'RunNotFound',
      `the diff store has no record of run ${query.id} of Sync ${query.namespace}/${query.sync}: it has not finished yet, or its runner never started`,
    );
  const parsed = runSummary.safeParse(found);
  if (!parsed.success)
    throw new SynclineError(
      'RunRecordUnreadable',
      `the run summary of ${query.id} is not one this operator reads (${parsed.error.issues[0]?.message ?? 'invalid'})`,
    );
  return parsed.data;
}

function stagesOf(summary: RunSummary): ConsoleStage[] {
  const stages: ConsoleStage[] = [];
  for (const stage of STAGES) {
    const ms = summary.timings[`${stage}Ms`];
    if (typeof ms === 'number' && Number.isFinite(ms)) stages.push({ stage, ms: Math.max(0, ms) });
  }
  return stages;
}

/**
 * The request log's entries (of `key`, when given), at most `limit`, reading the gzip'd JSON lines as a
 * stream: a bulk run's log holds every key it sent, so it is never decompressed whole.
 */
export async function readRequests(
  gz: Buffer,
  key: string | undefined,
  limit: number,
): Promise<{ entries: ConsoleRequest[]; more: boolean }> {
  const gunzip = createGunzip();
  const lines = createInterface({ input: Readable.from([gz]).pipe(gunzip), crlfDelay: Infinity });
  const entries: ConsoleRequest[] = [];
  let more = false;
  try {
    for await (const line of lines) {
      const entry = parseLine(line);
      if (!entry || (key !== undefined && !entry.keys?.includes(key))) continue;
      if (entries.length >= limit) {
        more = true;
        break;
      }
      entries.push(requestOf(entry));
    }
  } catch (error) {
    throw new SynclineError(
      'RunRecordUnreadable',
      `the request log is not valid gzip: ${describeError(error).message}`,
    );
  } finally {
    lines.close();
    gunzip.destroy();
  }
  return { entries, more };
}

function parseLine(line: string): LoggedRequest | undefined {
  if (line.trim() === '') return undefined;
  try {
    const entry = JSON.parse(line) as unknown;
    return entry && typeof entry === 'object' ? (entry as LoggedRequest) : undefined;
  } catch {
    return undefined; // a line cut short (a runner killed while writing): the others still read
  }
}

/**
 * A logged request as the console shows it. The runner redacted the target and the error (the run's secret
 * values, URL passwords and credential-like query parameters); credential-like headers are redacted once
 * more here, as a second line of defence.
 */
function requestOf(entry: LoggedRequest): ConsoleRequest {
  const target = redact(String(entry.target ?? ''), []);
  const space = target.indexOf(' ');
  const keys = Array.isArray(entry.keys) ? entry.keys.map(String) : [];
  return {
    ts: String(entry.ts ?? ''),
    operation: String(entry.operation ?? ''),
    method: space > 0 ? target.slice(0, space) : '',
    url: space > 0 ? target.slice(space + 1) : target,
    ...(entry.status !== undefined ? { status: entry.status } : {}),
    durationMs: Math.max(0, Number(entry.latencyMs) || 0),
    keys: keys.slice(0, CONSOLE_REQUEST_KEYS_LIMIT),
    keyCount: keys.length,
    ...(entry.error !== undefined ? { error: redact(String(entry.error), []) } : {}),
  };
}

/** A read of the diff store; its failure is RunRecordUnreadable, naming what failed and why. */
async function fromStore<T>(what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    const { reason, message } = describeError(error, 'StorageError');
    throw new SynclineError(
      'RunRecordUnreadable',
      `could not read ${what} from the diff store (${reason}): ${message}`,
      {
        cause: error,
      },
    );
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new SynclineError('StorageUnreachable', `reading ${what} took longer than ${ms / 1000} s`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
