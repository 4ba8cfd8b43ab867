import { setTimeout as sleepTimer } from 'node:timers/promises';
import { TokenBucket } from 'limiter';

export interface BackoffSettings {
  baseMs: number;
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffSettings = { baseMs: 250, capMs: 30_000 };

/**
 * Exponential backoff with full jitter (a random wait between 0 and base·2^attempt, capped), never
 * shorter than what the destination asked for in Retry-After.
 */
export function retryDelay(
  attempt: number,
  settings: BackoffSettings,
  retryAfterMs = 0,
  random = Math.random,
): number {
  const ceiling = Math.min(settings.capMs, settings.baseMs * 2 ** attempt);
  return Math.max(Math.floor(random() * ceiling), retryAfterMs);
}

export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return;
  await sleepTimer(ms, undefined, signal ? { signal } : undefined);
}

/**
 * A token bucket of `requestsPerSecond`; `acquire()` waits for a token. Without a rate it never waits.
 */
export function rateLimiter(requestsPerSecond: number | undefined): {
  acquire(signal?: AbortSignal): Promise<void>;
} {
  if (requestsPerSecond === undefined) return { acquire: async (signal) => signal?.throwIfAborted() };
  const bucket = new TokenBucket({
    bucketSize: Math.max(1, Math.floor(requestsPerSecond)),
    tokensPerInterval: requestsPerSecond,
    interval: 1000,
  });
  // Start empty so that the first second is not a burst on top of the rate.
  bucket.content = 0;
  return {
    // The bucket's own wait cannot be cancelled: a stopped run must not sit out a slow rate, so the wait
    // races the signal (the token it would have taken is left for nobody: the run is ending).
    async acquire(signal) {
      signal?.throwIfAborted();
      if (!signal) return void (await bucket.removeTokens(1));
      let onAbort: (() => void) | undefined;
      const aborted = new Promise<never>((_, reject) => {
        onAbort = () => reject(signal.reason as Error);
        signal.addEventListener('abort', onAbort, { once: true });
      });
      try {
        await Promise.race([bucket.removeTokens(1), aborted]);
      } finally {
        if (onAbort) signal.removeEventListener('abort', onAbort);
      }
    },
  };
}

/** The stricter of two optional limits. */
export function lowest(...values: (number | undefined)[]): number | undefined {
  const set = values.filter((v): v is number => v !== undefined);
  return set.length === 0 ? undefined : Math.min(...set);
}
