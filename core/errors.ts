import { reasonKind, type Reason } from './reasons.ts';

export type { Reason } from './reasons.ts';

export interface SynclineErrorOptions {
  cause?: unknown;
  /** Whether retrying may help; by default, whether the reason's kind is `transient` (core/reasons.ts). */
  retryable?: boolean;
}

/**
 * A reason as the constructor takes it: a literal must be in the catalogue (a typo fails the type check);
 * a value typed only `string` (a reason passed through, e.g. from a child process's answer) is accepted,
 * and `core/reasons.test.ts` checks, by reading the source, that every reason it can carry is catalogued.
 */
export type CheckedReason<R extends string> = R extends Reason ? R : string extends R ? R : Reason;

/**
 * An error as a value with a stable CamelCase reason from the catalogue (core/reasons.ts: for status
 * conditions, Events and metrics) and a message a person can act on. Messages never carry credentials.
 */
class SynclineErrorClass extends Error {
  readonly reason: Reason;
  readonly retryable: boolean;

  constructor(reason: string, message: string, options: SynclineErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SynclineError';
    this.reason = reason as Reason;
    this.retryable = options.retryable ?? reasonKind(reason) === 'transient';
  }
}

export interface SynclineErrorConstructor {
  new <R extends string>(
    reason: CheckedReason<R>,
    message: string,
    options?: SynclineErrorOptions,
  ): SynclineErrorClass;
  readonly prototype: SynclineErrorClass;
}

export const SynclineError = SynclineErrorClass as SynclineErrorConstructor;
export type SynclineError = SynclineErrorClass;

export function isSynclineError(error: unknown): error is SynclineError {
  return error instanceof SynclineError;
}

/** The reason and message of any thrown value, for reporting. */
export function describeError(
  error: unknown,
  fallback: Reason = 'InternalError',
): { reason: Reason; message: string } {
  if (isSynclineError(error)) return { reason: error.reason, message: error.message };
  if (error instanceof Error) return { reason: fallback, message: error.message };
  return { reason: fallback, message: String(error) };
}
