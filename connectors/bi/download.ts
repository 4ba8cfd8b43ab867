// A BI tool's results, streamed to a local file as they arrive (bounded memory: the body is never held
// whole), with the retries a read gets: 429 (Retry-After), 5xx and network failures, a few times.
import { createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { SynclineError } from '../../core/errors.ts';
import { redactSecrets } from '../../core/redact.ts';
import { readBodyStart } from '../shared/http-body.ts';
import { ApiError, parseRetryAfter } from '../saas/client.ts';

export interface DownloadRequest {
  vendor: string;
  method: 'GET' | 'POST';
  url: string;
  /** Headers of each attempt (a fresh access token each time). */
  headers: () => Promise<Record<string, string>>;
  body?: string;
  file: string;
  signal: AbortSignal;
  timeoutMs: number;
  /** Called once after a 401: renew the session; false when it cannot be renewed. */
  renew?: () => Promise<boolean>;
  /** Every credential, for redaction of error bodies. */
  secrets: () => string[];
  retries?: number;
  baseDelayMs?: number;
}

/** Downloads the body to `file`; returns its size in bytes. Errors are ApiErrors, like the client's. */
export async function downloadToFile(req: DownloadRequest): Promise<number> {
  const retries = req.retries ?? 3;
  let renewed = false;
  for (let attempt = 0; ; attempt++) {
    try {
      return await once(req);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.unauthorized && !renewed && req.renew) {
        renewed = true;
        if (await req.renew()) continue;
      }
      if (!error.retryable || attempt >= retries || req.signal.aborted) throw error;
      const wait = Math.max(error.retryAfterMs ?? 0, (req.baseDelayMs ?? 250) * 2 ** attempt);
      await sleep(Math.min(wait, 60_000), undefined, { signal: req.signal });
    }
  }
}

async function once(req: DownloadRequest): Promise<number> {
  const what = `${req.method} ${new URL(req.url).pathname}`;
  let response: Response;
  try {
    response = await fetch(req.url, {
      method: req.method,
      headers: await req.headers(),
      ...(req.body === undefined ? {} : { body: req.body }),
      redirect: 'manual',
      signal: AbortSignal.any([req.signal, AbortSignal.timeout(req.timeoutMs)]),
    });
  } catch (error) {
    if (req.signal.aborted) throw error;
    throw new ApiError(`${req.vendor}: ${what} failed: ${describe(error)}`, { retryable: true });
  }
  if (!response.ok) {
    const text = redactSecrets(await readBodyStart(response, 4096), req.secrets()).trim();
    const status = response.status;
    throw new ApiError(
      `${req.vendor} answered HTTP ${status} to ${what}: ${text.slice(0, 500) || '(no body)'}`,
      {
        status,
        retryable: status === 429 || status === 408 || status >= 500,
        retryAfterMs: parseRetryAfter(response.headers.get('retry-after')),
        unauthorized: status === 401,
        body: text,
      },
    );
  }
  if (!response.body) return 0;
  let bytes = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(response.body as never), count, createWriteStream(req.file));
  } catch (error) {
    if (req.signal.aborted) throw error;
    // The status line said 200, then the body stopped: the results are incomplete. Not retried here:
    // the run fails, and the next run reads the question again.
    throw new SynclineError(
      'BiResultsIncomplete',
      `${req.vendor}'s answer to ${what} ended after ${bytes} bytes (${describe(error)}); nothing was staged`,
    );
  }
  return bytes;
}

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
  if ((error as { name?: string } | null)?.name === 'TimeoutError') return 'timed out';
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}
