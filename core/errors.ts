/**
 * An error as a value with a stable CamelCase reason (for status conditions and metrics) and a message a
 * person can act on. Messages never carry credentials.
 */
export class SynclineError extends Error {
  readonly reason: string;
  readonly retryable: boolean;

  constructor(reason: string, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SynclineError';
    this.reason = reason;
    this.retryable = options.retryable ?? false;
  }
}

export function isSynclineError(error: unknown): error is SynclineError {
  return error instanceof SynclineError;
}

/** The reason and message of any thrown value, for reporting. */
export function describeError(
  error: unknown,
  fallbackReason = 'InternalError',
): { reason: string; message: string } {
  if (isSynclineError(error)) return { reason: error.reason, message: error.message };
  if (error instanceof Error) return { reason: fallbackReason, message: error.message };
  return { reason: fallbackReason, message: String(error) };
}
