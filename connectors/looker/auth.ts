// Looker API 4.0 sessions: POST /api/4.0/login with the API key's client_id and client_secret (form
// encoded) answers an access token and its lifetime (expires_in, an hour by default). The SaaS kit's
// TokenProvider caches it, logs in again a minute before it expires, and once more after a 401.
import type { AccessToken, TokenSource } from '../saas/auth.ts';
import { SynclineError } from '../../core/errors.ts';
import { clip } from '../../core/text.ts';

export interface LookerLogin {
  apiUrl: string;
  clientId: string;
  clientSecret: string;
  timeoutMs: number;
  now?: () => number;
}

export function lookerLogin(options: LookerLogin): TokenSource {
  return {
    description: 'Looker API key login',
    renewable: true,
    fetch: (signal) => login(options, signal),
    secrets: () => [options.clientSecret, options.clientId],
  };
}

async function login(options: LookerLogin, signal: AbortSignal): Promise<AccessToken> {
  const url = `${options.apiUrl}/login`;
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: new URLSearchParams({
        client_id: options.clientId,
        client_secret: options.clientSecret,
      }).toString(),
      redirect: 'manual',
      signal: AbortSignal.any([signal, AbortSignal.timeout(options.timeoutMs)]),
    });
  } catch (error) {
    if (signal.aborted) throw error;
    const code = (error as { cause?: { code?: string } }).cause?.code;
    throw new SynclineError('SourceUnreachable', `cannot reach Looker at ${url}${code ? ` (${code})` : ''}`, {
      retryable: true,
    });
  }
  const text = await response.text();
  if (response.status === 429 || response.status >= 500)
    throw new SynclineError('SourceUnreachable', `Looker answered HTTP ${response.status} to POST /login`, {
      retryable: true,
    });
  const answer = parse(text);
  if (!response.ok || typeof answer?.access_token !== 'string') {
    // Looker answers 404 to credentials it does not know; its message never holds them.
    const detail = typeof answer?.message === 'string' ? `: ${clip(answer.message, 200)}` : '';
    throw new SynclineError(
      'AuthenticationFailed',
      `Looker refused the login (HTTP ${response.status}${detail}); check the client ID and secret`,
    );
  }
  const now = options.now ?? Date.now;
  const lifetime = typeof answer.expires_in === 'number' ? answer.expires_in : 3600;
  return { token: answer.access_token, expiresAt: now() + lifetime * 1000 };
}

function parse(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // not JSON: the status says what happened
  }
}
