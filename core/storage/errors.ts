import { SynclineError, isSynclineError } from '../errors.ts';

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);

/** The first network error code (ECONNREFUSED, ...) in an error or its causes. */
export function networkErrorCode(error: unknown): string | undefined {
  for (let e = error, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    const name = (e as { name?: unknown }).name;
    if (name === 'TimeoutError') return 'ETIMEDOUT';
    const errors = (e as { errors?: unknown }).errors; // AggregateError from happy-eyeballs connects
    if (Array.isArray(errors)) {
      const inner = errors.map(networkErrorCode).find((c) => c !== undefined);
      if (inner) return inner;
    }
  }
  return undefined;
}

/** Replace every occurrence of a secret value with ***. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join('***');
  return out;
}

export interface Classified {
  reason:
    | 'StorageBucketNotFound'
    | 'StorageAccessDenied'
    | 'StorageUnreachable'
    | 'PreconditionFailed'
    | 'StorageError';
  detail: string;
  retryable: boolean;
}

/** Build the SynclineError for a failed operation; the message names the URL and the operation, never a key. */
export function storageError(
  classified: Classified,
  what: string,
  url: string,
  secrets: readonly string[],
): SynclineError {
  const hint: Record<Classified['reason'], string> = {
    StorageBucketNotFound: 'create the bucket or fix the URL',
    StorageAccessDenied: 'check the credentials and that they may read and write this bucket',
    StorageUnreachable: 'check the endpoint and the network path to it',
    PreconditionFailed: 'read it again before writing',
    StorageError: 'see the detail',
  };
  const message = `cannot ${what} in ${url}: ${classified.detail} (${hint[classified.reason]})`;
  return new SynclineError(classified.reason, redact(message, secrets), { retryable: classified.retryable });
}

export function passThrough(error: unknown): SynclineError | undefined {
  return isSynclineError(error) ? error : undefined;
}
