// One HTTP request of the http destination, and what its outcome means for the rows it carried.
import { readBodyStart } from '../shared/http-body.ts';
import type { RowResult } from '../../core/connectors.ts';
import { truncate } from '../../core/text.ts';

export const REASON_BODY_LIMIT = 500;
export const DEBUG_BODY_LIMIT = 4096;
const READ_LIMIT = 64 * 1024;

/** Retry-After is either delay-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The start of a response body; a huge body is not read to its end. */
export function readBody(response: Response): Promise<string> {
  return readBodyStart(response, READ_LIMIT);
}

/** 429, 408, 425 and 5xx are worth retrying; other 4xx reject the rows. */
export function resultOfStatus(
  status: number,
  statusText: string,
  body: string,
  retryAfter: string | null,
): RowResult {
  if (status >= 200 && status < 300) return { ok: true };
  const reason = `HTTP ${status}${statusText ? ` ${statusText}` : ''}${body ? `: ${truncate(body.trim(), REASON_BODY_LIMIT)}` : ''}`;
  if (status === 429 || status === 408 || status === 425 || status >= 500) {
    const retryAfterMs = parseRetryAfter(retryAfter);
    return retryAfterMs === undefined
      ? { ok: false, reason, retryable: true }
      : { ok: false, reason, retryable: true, retryAfterMs };
  }
  if (status >= 300 && status < 400) {
    return {
      ok: false,
      reason: `${reason} (redirects are not followed: set the final URL)`,
      retryable: false,
    };
  }
  return { ok: false, reason, retryable: false };
}

/** A request that got no response: a timeout or a connection failure, all retryable. */
export function resultOfError(error: unknown, timeoutMs: number): RowResult & { ok: false } {
  const name = (error as { name?: string } | null)?.name;
  if (name === 'TimeoutError') {
    return { ok: false, reason: `no response within ${timeoutMs / 1000}s (timeoutSeconds)`, retryable: true };
  }
  if (name === 'AbortError') return { ok: false, reason: 'the run was cancelled', retryable: true };
  const cause = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
  const code = cause?.code;
  const detail = cause?.message ?? (error instanceof Error ? error.message : String(error));
  return { ok: false, reason: `request failed${code ? ` (${code})` : ''}: ${detail}`, retryable: true };
}
