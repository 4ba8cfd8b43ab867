import { createWriteStream, type WriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { createGzip, type Gzip } from 'node:zlib';
import type { DebugRequest } from '../core/connectors.ts';
import { redact } from '../core/redact.ts';
import { truncate } from '../core/text.ts';

/** Bodies are cut to this many characters in the request log. */
export const BODY_LIMIT = 4096;
/** Keys kept per entry: more than any batch the engine builds unless a Sync asks for larger ones. */
export const KEYS_LIMIT = 100_000;

/**
 * The start of a body, redacted and cut to BODY_LIMIT, with the size of what was cut. Redacted before it
 * is cut, since a cut could split a secret into parts no pattern recognises; but only the part that can
 * reach the limit is redacted (a Bulk CSV upload is megabytes): the limit, and a margin longer than any
 * encoding of the longest secret (JSON escapes make a character up to 6), so a secret that starts inside
 * the limit is whole in what is redacted.
 */
export function redactedPrefix(text: string, secrets: readonly string[]): string {
  const longest = secrets.reduce((max, s) => Math.max(max, s.length), 0);
  const reach = BODY_LIMIT + 1024 + 6 * longest;
  if (text.length <= reach) return truncate(redact(text, secrets), BODY_LIMIT);
  const head = redact(text.slice(0, reach), secrets);
  return `${head.slice(0, BODY_LIMIT)}… [${text.length - BODY_LIMIT} more characters]`;
}

/** One line of a run's request log. */
export interface RequestLogEntry extends DebugRequest {
  ts: string;
  runId: string;
}

/** The live debugger's record of a run: gzip JSON lines, one per request a destination connector made. */
export class RequestLog {
  readonly file: string;
  private readonly out: WriteStream;
  private readonly gzip: Gzip;
  private readonly secrets: () => Iterable<string>;
  private readonly runId: string;
  entries = 0;

  constructor(file: string, runId: string, secrets: () => Iterable<string>) {
    this.file = file;
    this.runId = runId;
    this.secrets = secrets;
    // The fastest level: a bulk run records every key it delivers, and the log is read rarely.
    this.gzip = createGzip({ level: 1 });
    this.out = createWriteStream(file);
    this.gzip.pipe(this.out);
  }

  record(request: DebugRequest): void {
    const secrets = [...this.secrets()];
    const clean = (s: string | undefined) => (s === undefined ? undefined : redactedPrefix(s, secrets));
    const entry: RequestLogEntry = {
      ts: new Date().toISOString(),
      runId: this.runId,
      operation: request.operation,
      target: clean(request.target) as string,
      keys: request.keys.slice(0, KEYS_LIMIT),
      latencyMs: request.latencyMs,
      ...(request.status === undefined ? {} : { status: request.status }),
      ...(request.requestBody === undefined ? {} : { requestBody: clean(request.requestBody) }),
      ...(request.responseBody === undefined ? {} : { responseBody: clean(request.responseBody) }),
      ...(request.error === undefined ? {} : { error: clean(request.error) }),
    };
    this.gzip.write(`${JSON.stringify(entry)}\n`);
    this.entries++;
  }

  async close(): Promise<void> {
    this.gzip.end();
    await finished(this.out);
  }
}

/** Parse a request log (gunzipped text) and keep the entries that touch `key`, when given. */
export function filterRequestLog(text: string, key?: string): RequestLogEntry[] {
  const entries: RequestLogEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const entry = JSON.parse(line) as RequestLogEntry;
    if (key === undefined || entry.keys.includes(key)) entries.push(entry);
  }
  return entries;
}
