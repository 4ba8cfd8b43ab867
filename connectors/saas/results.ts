// A failed request as the rows it carried see it (RowResult), and the errors that end a writer's work.
import { SynclineError } from '../../core/errors.ts';
import { ApiError } from './client.ts';
import type { ItemFailure } from './batches.ts';

/** The reason of a row the daily quota kept from being sent: names the catalogued reason first. */
export function dailyLimitFailure(error: ApiError): ItemFailure {
  const reason = new SynclineError('DailyLimitReached', error.message);
  return { ok: false, reason: `${reason.reason}: ${reason.message}`, retryable: false };
}

/** A row failure for any error a request ended with. */
export function failureOf(error: unknown): ItemFailure {
  if (error instanceof ApiError) {
    if (error.dailyLimit) return dailyLimitFailure(error);
    return error.retryAfterMs === undefined
      ? { ok: false, reason: error.message, retryable: error.retryable }
      : { ok: false, reason: error.message, retryable: error.retryable, retryAfterMs: error.retryAfterMs };
  }
  const message = error instanceof Error ? error.message : String(error);
  const retryable = (error as { retryable?: boolean } | null)?.retryable ?? false;
  return { ok: false, reason: message, retryable };
}

/**
 * Errors no row can get past: refused credentials (after one renewal) and missing permissions. The writer
 * throws them so that the run stops with a reason a person acts on, instead of rejecting every row.
 */
export function fatalError(error: unknown, vendor: string): SynclineError | undefined {
  if (error instanceof SynclineError && !error.retryable) return error;
  if (!(error instanceof ApiError)) return undefined;
  if (error.unauthorized)
    return new SynclineError(
      'AuthenticationFailed',
      `${vendor} refused the credentials: ${error.message}. Check the token or OAuth app Secret.`,
    );
  if (error.status === 403 && !error.dailyLimit)
    return new SynclineError(
      'PermissionDenied',
      `${vendor} refused the request: ${error.message}. Grant the app the scopes the README lists.`,
    );
  return undefined;
}
