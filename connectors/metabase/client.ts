// Metabase's REST API with an API key (x-api-key), on the SaaS kit's client: reads retried on 429, 5xx
// and network failures, the key redacted from every message and request-log entry.
import type { z } from 'zod';
import type { SourceSpec } from '../../crds/index.ts';
import type { ConnectorContext } from '../../core/connectors.ts';
import { SynclineError } from '../../core/errors.ts';
import { secretValue } from '../saas/auth.ts';
import { SaasClient, type RequestOptions } from '../saas/client.ts';
import { biError } from '../bi/errors.ts';
import { downloadToFile } from '../bi/download.ts';

export type MetabaseSettings = NonNullable<SourceSpec['metabase']>;

export class MetabaseClient {
  readonly settings: MetabaseSettings;
  private readonly key: string;
  private readonly client: SaasClient;
  private readonly signal: AbortSignal;

  constructor(settings: MetabaseSettings, ctx: Pick<ConnectorContext, 'secrets' | 'signal'>) {
    this.settings = settings;
    this.key = secretValue(ctx.secrets, settings.apiKey);
    this.signal = ctx.signal;
    this.client = new SaasClient(
      {
        name: 'Metabase',
        baseUrl: `${settings.url.replace(/\/+$/, '')}/api`,
        timeoutMs: settings.timeoutSeconds * 1000,
        secrets: () => [this.key],
      },
      { signal: ctx.signal },
    );
  }

  private credentials(): string {
    return `the API key in Secret "${this.settings.apiKey.secretKeyRef.name}" (key "${this.settings.apiKey.secretKeyRef.key}")`;
  }

  /** One request; the answer parsed with `schema`. `notFound` names what a 404 means. */
  async call<S extends z.ZodType>(
    schema: S,
    method: 'GET' | 'POST',
    path: string,
    options: RequestOptions & { notFound?: string } = {},
  ): Promise<z.output<S>> {
    const { notFound, ...rest } = options;
    let answer;
    try {
      answer = await this.client.request<unknown>(method, path, {
        ...rest,
        headers: { 'x-api-key': this.key, ...rest.headers },
      });
    } catch (error) {
      throw biError(error, {
        vendor: 'Metabase',
        credentials: this.credentials(),
        ...(notFound ? { notFound } : {}),
      });
    }
    const parsed = schema.safeParse(answer.json);
    if (!parsed.success)
      throw new SynclineError(
        'SourceQueryFailed',
        `Metabase answered ${method} /api${path} with an unexpected body (${parsed.error.issues[0]?.message ?? 'not JSON'} at ${parsed.error.issues[0]?.path.join('.') ?? ''}); is ${this.settings.url} a Metabase instance?`,
      );
    return parsed.data;
  }

  /** POST `path` and stream the answer to `file`. */
  async download(path: string, body: unknown, file: string, notFound: string): Promise<number> {
    try {
      return await downloadToFile({
        vendor: 'Metabase',
        method: 'POST',
        url: `${this.settings.url.replace(/\/+$/, '')}/api${path}`,
        headers: async () => ({
          'x-api-key': this.key,
          'Content-Type': 'application/json',
          Accept: 'application/json',
        }),
        body: JSON.stringify(body),
        file,
        signal: this.signal,
        timeoutMs: this.settings.timeoutSeconds * 1000,
        secrets: () => [this.key],
      });
    } catch (error) {
      throw biError(error, { vendor: 'Metabase', credentials: this.credentials(), notFound });
    }
  }
}
