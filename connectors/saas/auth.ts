// Credentials of SaaS APIs: a static bearer token (a HubSpot private app), the OAuth 2.0 refresh-token,
// JWT-bearer (Salesforce connected app with a certificate) and client-credentials flows. Every credential
// comes from a secretKeyRef; an access token is fetched once, cached for the run, and fetched again only
// when it expires or the API answers 401 / "session expired" (the caller says when: TokenProvider.refresh).
// No token, secret or assertion is logged, recorded in the request log or put in an error message:
// TokenProvider.secrets() lists every one of them for redaction.
import { createSign } from 'node:crypto';
import type { SecretKeySelector } from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import type { SecretResolver } from '../../core/secrets.ts';
import { clip } from '../../core/text.ts';

/** An access token and when it stops working (epoch ms), with what else the token endpoint answered. */
export interface AccessToken {
  token: string;
  /** Undefined: valid until the API says otherwise (a static token). */
  expiresAt?: number;
  /** Other string fields of the token answer (Salesforce's instance_url). */
  extra?: Record<string, string>;
}

/** Where access tokens come from. */
export interface TokenSource {
  /** For messages: "HubSpot private app token", "OAuth refresh token at https://...". */
  readonly description: string;
  /** Whether fetch() can give a new token (a static token cannot). */
  readonly renewable: boolean;
  fetch(signal: AbortSignal): Promise<AccessToken>;
  /** The credentials this source holds (client secret, refresh token, key), for redaction. */
  secrets(): string[];
}

/** The value of a secretKeyRef `{secretKeyRef: {name, key}}`, trimmed of a trailing newline. */
export function secretValue(secrets: SecretResolver, ref: { secretKeyRef: SecretKeySelector }): string {
  return secrets(ref.secretKeyRef).replace(/\r?\n$/, '');
}

/** A token that never changes (HubSpot private app access token, an API key sent as bearer token). */
export function staticToken(token: string, description = 'static access token'): TokenSource {
  return {
    description,
    renewable: false,
    fetch: async () => ({ token }),
    secrets: () => [token],
  };
}

export interface TokenEndpointOptions {
  tokenUrl: string;
  timeoutMs?: number;
  /** Seconds a token is assumed to last when the answer has no expires_in. */
  defaultLifetimeSeconds?: number;
  now?: () => number;
}

/** What an OAuth token endpoint answered (RFC 6749 §5.1). */
interface TokenAnswer {
  access_token?: unknown;
  expires_in?: unknown;
  refresh_token?: unknown;
  error?: unknown;
  error_description?: unknown;
  message?: unknown;
  [field: string]: unknown;
}

/**
 * POST a form to a token endpoint. A refused grant (400/401/403: invalid_grant, invalid_client) needs a
 * person: AuthenticationFailed. An unreachable endpoint or a 5xx is retryable: DestinationUnreachable.
 * The message names the endpoint and the OAuth error code, never a credential.
 */
async function postTokenForm(
  form: Record<string, string>,
  options: TokenEndpointOptions,
  description: string,
  signal: AbortSignal,
): Promise<AccessToken> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const now = options.now ?? Date.now;
  let response: Response;
  try {
    response = await fetch(options.tokenUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: new URLSearchParams(form).toString(),
      redirect: 'manual',
      signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
    });
  } catch (error) {
    if (signal.aborted) throw error;
    const code = (error as { cause?: { code?: string } }).cause?.code;
    throw new SynclineError(
      'DestinationUnreachable',
      `cannot reach the token endpoint ${options.tokenUrl} (${description})${code ? `: ${code}` : ''}; check the URL and network policies`,
      { cause: error, retryable: true },
    );
  }
  const text = await response.text();
  let answer: TokenAnswer = {};
  try {
    answer = JSON.parse(text) as TokenAnswer;
  } catch {
    // not JSON: reported by status below
  }
  if (response.status >= 500 || response.status === 429) {
    throw new SynclineError(
      'DestinationUnreachable',
      `the token endpoint ${options.tokenUrl} answered HTTP ${response.status}; retried`,
      { retryable: true },
    );
  }
  if (!response.ok || typeof answer.access_token !== 'string' || answer.access_token === '') {
    // error and error_description are codes and sentences of the OAuth server, never a credential.
    const code = typeof answer.error === 'string' ? answer.error : undefined;
    const detail =
      typeof answer.error_description === 'string'
        ? answer.error_description
        : typeof answer.message === 'string'
          ? answer.message
          : undefined;
    throw new SynclineError(
      'AuthenticationFailed',
      `${description}: the token endpoint ${options.tokenUrl} refused the grant (HTTP ${response.status}` +
        `${code ? ` ${code}` : ''}${detail ? `: ${clip(detail, 200)}` : ''}); check the client id, the secret and the grant in their Secrets`,
    );
  }
  const lifetime =
    typeof answer.expires_in === 'number'
      ? answer.expires_in
      : typeof answer.expires_in === 'string' && /^\d+$/.test(answer.expires_in)
        ? Number(answer.expires_in)
        : options.defaultLifetimeSeconds;
  const extra: Record<string, string> = {};
  for (const [field, value] of Object.entries(answer)) {
    if (typeof value === 'string' && !/token|secret|assertion/i.test(field)) extra[field] = value;
  }
  if (typeof answer.refresh_token === 'string') extra.refresh_token = answer.refresh_token;
  return {
    token: answer.access_token,
    expiresAt: lifetime === undefined ? undefined : now() + lifetime * 1000,
    extra,
  };
}

/**
 * OAuth 2.0 refresh-token grant (RFC 6749 §6). A server that rotates refresh tokens (answers a new
 * refresh_token) is followed for the rest of the run.
 */
export function oauthRefreshToken(
  options: TokenEndpointOptions & { clientId: string; clientSecret: string; refreshToken: string },
): TokenSource {
  let refreshToken = options.refreshToken;
  const seen = new Set([options.clientSecret, options.refreshToken]);
  const description = `OAuth refresh-token grant of client ${options.clientId}`;
  return {
    description,
    renewable: true,
    async fetch(signal) {
      const token = await postTokenForm(
        {
          grant_type: 'refresh_token',
          client_id: options.clientId,
          client_secret: options.clientSecret,
          refresh_token: refreshToken,
        },
        options,
        description,
        signal,
      );
      const rotated = token.extra?.refresh_token;
      if (rotated) {
        refreshToken = rotated;
        seen.add(rotated);
        delete token.extra?.refresh_token;
      }
      return token;
    },
    secrets: () => [...seen],
  };
}

/** OAuth 2.0 client-credentials grant (RFC 6749 §4.4). */
export function clientCredentials(
  options: TokenEndpointOptions & { clientId: string; clientSecret: string; scope?: string },
): TokenSource {
  const description = `OAuth client-credentials grant of client ${options.clientId}`;
  return {
    description,
    renewable: true,
    fetch: (signal) =>
      postTokenForm(
        {
          grant_type: 'client_credentials',
          client_id: options.clientId,
          client_secret: options.clientSecret,
          ...(options.scope ? { scope: options.scope } : {}),
        },
        options,
        description,
        signal,
      ),
    secrets: () => [options.clientSecret],
  };
}

const base64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');

/**
 * A JWT signed with RS256 (RFC 7519, RFC 7515) from a PEM private key (PKCS#1 or PKCS#8): header
 * {"alg":"RS256","typ":"JWT"}, claims iss, sub, aud and exp (seconds since the epoch).
 */
export function signJwt(
  claims: { iss: string; sub: string; aud: string; exp: number; [claim: string]: unknown },
  privateKeyPem: string,
): string {
  const header = base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const payload = base64url(JSON.stringify(claims));
  const signer = createSign('RSA-SHA256');
  signer.update(`${header}.${payload}`);
  let signature: Buffer;
  try {
    signature = signer.sign(privateKeyPem);
  } catch (error) {
    throw new SynclineError(
      'InvalidCredentials',
      'the private key Secret does not hold a PEM RSA private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)',
      { cause: error },
    );
  }
  return `${header}.${payload}.${base64url(signature)}`;
}

/**
 * OAuth 2.0 JWT bearer grant (RFC 7523), as Salesforce connected apps take it: an assertion with iss (the
 * consumer key), sub (the user), aud (the login URL) and a short exp, signed with the app's private key.
 */
export function jwtBearer(
  options: TokenEndpointOptions & {
    issuer: string;
    subject: string;
    audience: string;
    privateKeyPem: string;
    /** Seconds the assertion is valid (Salesforce allows at most 3 minutes). */
    assertionLifetimeSeconds?: number;
  },
): TokenSource {
  const now = options.now ?? Date.now;
  const assertions = new Set<string>();
  const description = `OAuth JWT bearer grant of ${options.issuer} for ${options.subject}`;
  return {
    description,
    renewable: true,
    async fetch(signal) {
      const assertion = signJwt(
        {
          iss: options.issuer,
          sub: options.subject,
          aud: options.audience,
          exp: Math.floor(now() / 1000) + (options.assertionLifetimeSeconds ?? 180),
        },
        options.privateKeyPem,
      );
      assertions.add(assertion);
      return postTokenForm(
        { grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion },
        // Salesforce answers no expires_in: the session lasts as the org's timeout says; a 401 renews it.
        options,
        description,
        signal,
      );
    },
    secrets: () => [options.privateKeyPem, ...assertions],
  };
}

/**
 * The access token of a run: fetched on first use, cached, fetched again shortly before it expires or
 * when the caller reports it refused (refresh). Concurrent callers share one fetch.
 */
export class TokenProvider {
  private readonly source: TokenSource;
  private readonly now: () => number;
  private readonly skewMs: number;
  private current: AccessToken | undefined;
  private pending: Promise<AccessToken> | undefined;
  private readonly tokens = new Set<string>();
  private refreshes = 0;

  constructor(source: TokenSource, options: { now?: () => number; skewMs?: number } = {}) {
    this.source = source;
    this.now = options.now ?? Date.now;
    this.skewMs = options.skewMs ?? 60_000;
  }

  get description(): string {
    return this.source.description;
  }

  /** How many times a refused token was replaced (for tests and the run's log). */
  get refreshCount(): number {
    return this.refreshes;
  }

  /** The cached token, or a new one when there is none or it is about to expire. */
  async token(signal: AbortSignal): Promise<AccessToken> {
    const current = this.current;
    if (current && (current.expiresAt === undefined || current.expiresAt - this.skewMs > this.now()))
      return current;
    return this.fetch(signal);
  }

  /**
   * The API refused `refused` (401, session expired): a new token, unless another request already replaced
   * it. Undefined when the source cannot renew (a static token): the credential itself is wrong.
   */
  async refresh(refused: string, signal: AbortSignal): Promise<AccessToken | undefined> {
    if (!this.source.renewable) return undefined;
    if (this.current && this.current.token !== refused) return this.current;
    this.refreshes += 1;
    return this.fetch(signal);
  }

  private async fetch(signal: AbortSignal): Promise<AccessToken> {
    this.pending ??= this.source.fetch(signal).then(
      (token) => {
        this.current = token;
        this.tokens.add(token.token);
        this.pending = undefined;
        return token;
      },
      (error: unknown) => {
        this.pending = undefined;
        throw error;
      },
    );
    return this.pending;
  }

  /** Every credential and token of the run, for redaction. */
  secrets(): string[] {
    return [...this.source.secrets(), ...this.tokens];
  }
}
