// Bulk API 2.0 ingest jobs: create the job (CSV, lineEnding LF), upload the rows once, mark it
// UploadComplete, poll its state with backoff, then read successfulResults, failedResults and
// unprocessedrecords (paged by Sforce-Locator) and map every result row back to the item it answers.
// Results do not come back in input order: rows are matched by their key column (Id for update and
// delete, the external id for upsert, case-insensitively) or, for an insert, by the whole row as sent.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ItemFailure } from '../saas/batches.ts';
import { ApiError, type SaasClient } from '../saas/client.ts';
import { failureOf, fatalError } from '../saas/results.ts';

export type BulkOperation = 'insert' | 'update' | 'upsert' | 'delete';

/** One row of a job: its cells (unquoted text by column; absent = '' = leave the field as it is). */
export interface BulkRow {
  cells: Record<string, string>;
  keys: string;
}

export type BulkOutcome = { ok: true; recordId?: string } | ItemFailure;

export interface BulkJobRequest {
  object: string;
  operation: BulkOperation;
  externalIdFieldName?: string;
  rows: BulkRow[];
  signal: AbortSignal;
  /** Poll backoff (ms): first wait, growth factor, cap; and the longest a job may take. */
  poll?: { firstMs: number; factor: number; capMs: number; timeoutMs: number };
}

const DEFAULT_POLL = { firstMs: 250, factor: 1.5, capMs: 10_000, timeoutMs: 60 * 60_000 };

/** RFC 4180 CSV text (LF or CRLF) as rows of cells. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else cell += c;
      i++;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      if (c === '\r' && text[i + 1] === '\n') i++;
    } else cell += c;
    i++;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

export const quoteCell = (text: string): string =>
  text === '' ? '' : /[",\n\r]/.test(text) || text !== text.trim() ? `"${text.replaceAll('"', '""')}"` : text;

/** The columns of a job (every column some row sets), the key column first when there is one. */
export function columnsOf(rows: BulkRow[], key: string | undefined): string[] {
  const seen = new Set<string>(key ? [key] : []);
  for (const row of rows) for (const column of Object.keys(row.cells)) seen.add(column);
  return [...seen];
}

/** The CSV of a job: header, then one LF-terminated line per row. */
export function csvOf(columns: string[], rows: BulkRow[]): string {
  const lines = [columns.map(quoteCell).join(',')];
  for (const row of rows) lines.push(columns.map((c) => quoteCell(row.cells[c] ?? '')).join(','));
  return `${lines.join('\n')}\n`;
}

interface JobInfo {
  id: string;
  state: string;
  errorMessage?: string;
  numberRecordsProcessed?: number;
  numberRecordsFailed?: number;
}

/** Run one ingest job for `rows`; one outcome per row, in the rows' order. */
export async function runBulkJob(client: SaasClient, request: BulkJobRequest): Promise<BulkOutcome[]> {
  const { rows, operation } = request;
  const key =
    operation === 'update' || operation === 'delete'
      ? 'Id'
      : operation === 'upsert'
        ? request.externalIdFieldName
        : undefined;
  const columns = columnsOf(rows, key);
  const logKeys = rows.slice(0, 50).map((r) => r.keys);
  let job: JobInfo | undefined;
  try {
    const created = await client.request<JobInfo>('POST', '/jobs/ingest', {
      body: {
        object: request.object,
        operation,
        ...(operation === 'upsert' ? { externalIdFieldName: request.externalIdFieldName } : {}),
        contentType: 'CSV',
        lineEnding: 'LF',
        columnDelimiter: 'COMMA',
      },
      operation: `bulk ${operation}`,
      keys: logKeys,
    });
    job = created.json as JobInfo;
    await client.request('PUT', `/jobs/ingest/${job.id}/batches`, {
      body: csvOf(columns, rows),
      headers: { 'Content-Type': 'text/csv' },
      operation: `bulk ${operation}`,
      keys: logKeys,
    });
    await client.request('PATCH', `/jobs/ingest/${job.id}`, {
      body: { state: 'UploadComplete' },
      operation: `bulk ${operation}`,
    });
  } catch (error) {
    // A job created but not uploaded or closed is aborted, not left Open (its rows go again).
    if (job) await abortJob(client, job.id);
    const fatal = fatalError(error, 'Salesforce');
    if (fatal) throw fatal;
    const failure = failureOf(error);
    return rows.map(() => failure);
  }
  const poll = request.poll ?? DEFAULT_POLL;
  const started = Date.now();
  let wait = poll.firstMs;
  for (;;) {
    try {
      await sleep(wait, undefined, { signal: request.signal });
    } catch {
      await abortJob(client, job.id);
      return rows.map(() => ({ ok: false, reason: 'not sent: the run was stopped', retryable: true }));
    }
    wait = Math.min(poll.capMs, wait * poll.factor);
    try {
      job = (await client.request<JobInfo>('GET', `/jobs/ingest/${job.id}`, { operation: 'bulk poll' }))
        .json as JobInfo;
    } catch (error) {
      const fatal = fatalError(error, 'Salesforce');
      if (fatal) throw fatal;
      if (error instanceof ApiError && error.retryable && !error.dailyLimit) continue;
      // The job may still finish; its rows are sent again next time (upserts and updates are idempotent).
      const failure = failureOf(error);
      return rows.map(() => failure);
    }
    if (['JobComplete', 'Failed', 'Aborted'].includes(job.state)) break;
    if (Date.now() - started > poll.timeoutMs) {
      await abortJob(client, job.id);
      break;
    }
  }
  return collect(client, job, rows, columns, key);
}

const ABORT_ATTEMPTS = 5;
const ABORT_RETRY_BASE_MS = 200;

async function abortJob(client: SaasClient, id: string): Promise<void> {
  // Aborting twice is harmless, so a transient failure is tried again; after that it is best effort: the
  // rows' results already say what happened, Salesforce deletes jobs left open after 7 days, and the
  // requests and their failures are in the request log.
  for (let attempt = 0; attempt < ABORT_ATTEMPTS; attempt++) {
    if (attempt > 0) await sleep(ABORT_RETRY_BASE_MS * 2 ** (attempt - 1));
    try {
      await client.request('PATCH', `/jobs/ingest/${id}`, {
        body: { state: 'Aborted' },
        operation: 'bulk abort',
      });
      return;
    } catch (error) {
      if (!(error instanceof ApiError) || !error.retryable || error.dailyLimit) return;
    }
  }
}

/** Every result page of one kind, as rows (header first). */
async function results(client: SaasClient, jobId: string, kind: string): Promise<string[][]> {
  const all: string[][] = [];
  let locator: string | undefined;
  for (;;) {
    const response = await client.request('GET', `/jobs/ingest/${jobId}/${kind}/`, {
      query: { maxRecords: 50_000, ...(locator ? { locator } : {}) },
      headers: { Accept: 'text/csv' },
      operation: 'bulk results',
    });
    const rows = parseCsv(response.text);
    if (all.length === 0) all.push(...rows);
    else all.push(...rows.slice(1));
    const next = response.headers.get('sforce-locator');
    if (!next || next === 'null') return all;
    locator = next;
  }
}

async function collect(
  client: SaasClient,
  job: JobInfo,
  rows: BulkRow[],
  columns: string[],
  key: string | undefined,
): Promise<BulkOutcome[]> {
  // Items by the text that identifies their result row; several items can share it (identical inserts).
  const signature = (cells: string[]): string =>
    key === undefined ? cells.join('\u0000') : (cells[0] ?? '').toLowerCase();
  const pending = new Map<string, number[]>();
  rows.forEach((row, index) => {
    const id = signature(columns.map((c) => row.cells[c] ?? ''));
    const list = pending.get(id) ?? [];
    list.push(index);
    pending.set(id, list);
  });
  const outcomes: (BulkOutcome | undefined)[] = new Array<BulkOutcome | undefined>(rows.length);
  const assign = (cells: string[], outcome: BulkOutcome): void => {
    const list = pending.get(signature(cells));
    const index = list?.shift();
    if (index !== undefined) outcomes[index] = outcome;
  };
  const jobNote = `Bulk API job ${job.id} (${job.state}${job.errorMessage ? `: ${job.errorMessage}` : ''})`;
  try {
    const ok = await results(client, job.id, 'successfulResults');
    const head = ok[0] ?? [];
    const idAt = head.indexOf('sf__Id');
    const offset = head.length - columns.length;
    for (const r of ok.slice(1)) {
      const id = r[idAt];
      assign(r.slice(offset), id ? { ok: true, recordId: id } : { ok: true });
    }
    const failed = await results(client, job.id, 'failedResults');
    const fhead = failed[0] ?? [];
    const errAt = fhead.indexOf('sf__Error');
    const foffset = fhead.length - columns.length;
    for (const r of failed.slice(1))
      assign(r.slice(foffset), {
        ok: false,
        reason: `Salesforce refused the row: ${(r[errAt] ?? 'no message').replace(/\s*--\s*$/, '')}`,
        retryable: /UNABLE_TO_LOCK_ROW|SERVER_UNAVAILABLE|REQUEST_RUNNING_TOO_LONG/.test(r[errAt] ?? ''),
      });
    const unprocessed = await results(client, job.id, 'unprocessedrecords');
    for (const r of unprocessed.slice(1))
      assign(r, { ok: false, reason: `not processed by ${jobNote}; sent again`, retryable: true });
  } catch (error) {
    const fatal = fatalError(error, 'Salesforce');
    if (fatal) throw fatal;
    const failure = failureOf(error);
    return rows.map((_, i) => outcomes[i] ?? failure);
  }
  return rows.map(
    (_, i) =>
      outcomes[i] ?? { ok: false, reason: `${jobNote} answered no result for this row`, retryable: true },
  );
}
