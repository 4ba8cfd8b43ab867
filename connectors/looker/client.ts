// Looker's API 4.0 on the SaaS kit's client: a session from POST /login (auth.ts), reads retried on
// 429, 5xx and network failures, a 401 answered by one new login, credentials redacted everywhere.
import type { z } from 'zod';
import type { SourceSpec } from '../../crds/index.ts';
import type { ConnectorContext } from '../../core/connectors.ts';
import { SynclineError } from '../../core/errors.ts';
import { TokenProvider, secretValue } from '../saas/auth.ts';
import { SaasClient, type RequestOptions } from '../saas/client.ts';
import { biError } from '../bi/errors.ts';
import { downloadToFile } from '../bi/download.ts';
import { lookerLogin } from './auth.ts';

export type LookerSettings = NonNullable<SourceSpec['looker']>;

export class LookerClient {
  readonly settings: LookerSettings;
  private readonly apiUrl: string;
  private readonly auth: TokenProvider;
  private readonly client: SaasClient;
  private readonly signal: AbortSignal;

  constructor(settings: LookerSettings, ctx: Pick<ConnectorContext, 'secrets' | 'signal'>) {
    this.settings = settings;
    this.signal = ctx.signal;
    this.apiUrl = `${settings.baseUrl.replace(/\/+$/, '')}/api/4.0`;
    this.auth = new TokenProvider(
      lookerLogin({
        apiUrl: this.apiUrl,
        clientId: secretValue(ctx.secrets, settings.clientId),
        clientSecret: secretValue(ctx.secrets, settings.clientSecret),
        timeoutMs: settings.timeoutSeconds * 1000,
      }),
    );
    this.client = new SaasClient(
      { name: 'Looker', baseUrl: this.apiUrl, auth: this.auth, timeoutMs: settings.timeoutSeconds * 1000 },
      { signal: ctx.signal },
    );
  }

  /** How many times a refused or expired session was replaced by a new login. */
  get renewals(): number {
    return this.auth.refreshCount;
  }

  private credentials(): string {
    const { clientId, clientSecret } = this.settings;
    return `the client ID and secret in Secrets "${clientId.secretKeyRef.name}" and "${clientSecret.secretKeyRef.name}"`;
  }

  private async send(path: string, options: RequestOptions & { notFound?: string }) {
    const { notFound, ...rest } = options;
    try {
      return await this.client.request<unknown>('GET', path, rest);
    } catch (error) {
      throw biError(error, {
        vendor: 'Looker',
        credentials: this.credentials(),
        ...(notFound ? { notFound } : {}),
      });
    }
  }

  async get<S extends z.ZodType>(
    schema: S,
    path: string,
    options: RequestOptions & { notFound?: string } = {},
  ): Promise<z.output<S>> {
    const answer = await this.send(path, options);
    const parsed = schema.safeParse(answer.json);
    if (!parsed.success)
      throw new SynclineError(
        'SourceQueryFailed',
        `Looker answered GET /api/4.0${path} with an unexpected body (${parsed.error.issues[0]?.message ?? 'not JSON'}); is ${this.settings.baseUrl} the Looker API host?`,
      );
    return parsed.data;
  }

  async getText(path: string, options: RequestOptions & { notFound?: string } = {}): Promise<string> {
    return (await this.send(path, { ...options, headers: { Accept: 'text/plain', ...options.headers } }))
      .text;
  }

  /** GET `path` and stream the answer to `file`. */
  async download(
    path: string,
    query: Record<string, string>,
    file: string,
    notFound: string,
  ): Promise<number> {
    const url = new URL(`${this.apiUrl}${path}`);
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    let token: string | undefined;
    try {
      return await downloadToFile({
        vendor: 'Looker',
        method: 'GET',
        url: url.toString(),
        headers: async () => {
          token = (await this.auth.token(this.signal)).token;
          return { Authorization: `Bearer ${token}`, Accept: 'application/json' };
        },
        renew: async () => token !== undefined && (await this.auth.refresh(token, this.signal)) !== undefined,
        file,
        signal: this.signal,
        timeoutMs: this.settings.timeoutSeconds * 1000,
        secrets: () => this.auth.secrets(),
      });
    } catch (error) {
      throw biError(error, { vendor: 'Looker', credentials: this.credentials(), notFound });
    }
  }
}
