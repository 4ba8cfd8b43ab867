// A custom HTTP API as a Destination (Hightouch's "custom HTTP request"): one JSON request per row
// operation, or one per batch; URL templates in Liquid; headers from Secrets; an idempotency key per
// row operation. Every request is recorded for the live debugger with credentials redacted.
import { createHash } from 'node:crypto';
import { Liquid, type Template } from 'liquidjs';
import { DELETE_BEHAVIORS, ROW_OPERATIONS, SYNC_MODES, type DestinationSpec } from '../../crds/index.ts';
import { SynclineError } from '../../runner/errors.ts';
import type { SecretResolver } from '../../runner/secrets.ts';
import { toJson } from '../shared/values.ts';
import type {
  ConnectorContext,
  DeliveryContext,
  DestinationConnector,
  DestinationWriter,
  RowChange,
  RowOperation,
  RowResult,
} from '../types.ts';
import { redactor, type Redactor } from './redact.ts';
import { DEBUG_BODY_LIMIT, readBody, resultOfError, resultOfStatus, truncate } from './request.ts';

type Settings = NonNullable<DestinationSpec['http']>;
type Method = Settings['method'];

/** The header that tells the API which operation a row request (or a whole batch) carries. */
export const OPERATION_HEADER = 'X-Syncline-Operation';

// Values interpolated into URLs are percent-encoded; `| raw` opts out (for a value that is a URL part itself).
const urlLiquid = new Liquid({
  strictFilters: true,
  ownPropertyOnly: true,
  outputEscape: (v: unknown) => encodeURIComponent(String(v)),
});

function settingsOf(spec: DestinationSpec): Settings {
  if (!spec.http)
    throw new SynclineError('InvalidDestination', 'an http Destination needs the http block with url');
  // Plans are parsed with the CRD schema, which fills these in; hand-built specs may not have them.
  const http = spec.http;
  return {
    ...http,
    method: http.method ?? 'POST',
    body: http.body ?? 'row',
    batchSize: http.batchSize ?? 100,
    idempotencyKeyHeader: http.idempotencyKeyHeader ?? 'Idempotency-Key',
    timeoutSeconds: http.timeoutSeconds ?? 30,
  };
}

function parseTemplate(text: string, where: string): Template[] {
  try {
    return urlLiquid.parse(text);
  } catch (error) {
    throw new SynclineError(
      'InvalidTemplate',
      `${where} is not a valid Liquid template: ${(error as Error).message}`,
    );
  }
}

interface Endpoint {
  method: Method;
  url: Template[];
}

/** Resolve header values (Secrets included) once; remember the secret values to redact them. */
function resolveHeaders(
  settings: Settings,
  secrets: SecretResolver,
): { headers: Record<string, string>; secretValues: string[] } {
  const headers: Record<string, string> = {};
  const secretValues: string[] = [];
  for (const h of settings.headers ?? []) {
    if (h.valueFrom) {
      const value = secrets(h.valueFrom.secretKeyRef);
      secretValues.push(value);
      // "Bearer <token>" style values: the token alone is a secret too.
      secretValues.push(...value.split(/\s+/).filter((part) => part.length >= 8));
      headers[h.name] = value;
    } else {
      headers[h.name] = h.value ?? '';
    }
  }
  return { headers, secretValues };
}

function endpoints(settings: Settings): Map<RowOperation, Endpoint> {
  const base = parseTemplate(settings.url, 'http.url');
  const map = new Map<RowOperation, Endpoint>();
  for (const op of ROW_OPERATIONS) {
    const override = settings.operations?.[op];
    map.set(op, {
      method: override?.method ?? settings.method,
      url: override?.url ? parseTemplate(override.url, `http.operations.${op}.url`) : base,
    });
  }
  return map;
}

interface Outgoing {
  method: Method;
  url: string;
  operation: string;
  keys: string[];
  idempotencyKey: string;
  body?: string;
}

class HttpWriter implements DestinationWriter {
  private readonly settings: Settings;
  private readonly ctx: DeliveryContext;
  private readonly headers: Record<string, string>;
  private readonly redact: Redactor;
  private readonly endpoints: Map<RowOperation, Endpoint>;

  constructor(settings: Settings, ctx: DeliveryContext) {
    this.settings = settings;
    this.ctx = ctx;
    const { headers, secretValues } = resolveHeaders(settings, ctx.secrets);
    this.headers = headers;
    this.redact = redactor(secretValues);
    this.endpoints = endpoints(settings);
  }

  private target(change: RowChange): { method: Method; url: string } {
    const endpoint = this.endpoints.get(change.operation) as Endpoint;
    const url = urlLiquid.renderSync(endpoint.url, {
      row: change.fields,
      key: change.key,
      operation: change.operation,
    });
    return { method: endpoint.method, url: String(url).trim() };
  }

  async write(batch: RowChange[]): Promise<RowResult[]> {
    return this.settings.body === 'batch' ? this.writeBatches(batch) : this.writeRows(batch);
  }

  private async writeRows(batch: RowChange[]): Promise<RowResult[]> {
    const results: RowResult[] = [];
    for (const change of batch) {
      let target: { method: Method; url: string };
      try {
        target = this.target(change);
      } catch (error) {
        results.push({
          ok: false,
          reason: `the URL template failed: ${(error as Error).message}`,
          retryable: false,
        });
        continue;
      }
      results.push(
        await this.send({
          ...target,
          operation: change.operation,
          keys: [change.key],
          idempotencyKey: change.idempotencyKey,
          body: target.method === 'DELETE' ? undefined : toJson(change.fields),
        }),
      );
    }
    return results;
  }

  /** Rows that go to the same method and URL share a request, at most batchSize rows each. */
  private async writeBatches(batch: RowChange[]): Promise<RowResult[]> {
    const results: RowResult[] = new Array<RowResult>(batch.length);
    const groups = new Map<string, { method: Method; url: string; indexes: number[] }>();
    for (const [i, change] of batch.entries()) {
      let target: { method: Method; url: string };
      try {
        target = this.target(change);
      } catch (error) {
        results[i] = {
          ok: false,
          reason: `the URL template failed: ${(error as Error).message}`,
          retryable: false,
        };
        continue;
      }
      const id = `${target.method} ${target.url}`;
      const group = groups.get(id) ?? { ...target, indexes: [] };
      group.indexes.push(i);
      groups.set(id, group);
    }
    for (const group of groups.values()) {
      for (let start = 0; start < group.indexes.length; start += this.settings.batchSize) {
        const indexes = group.indexes.slice(start, start + this.settings.batchSize);
        const changes = indexes.map((i) => batch[i] as RowChange);
        const operations = [...new Set(changes.map((c) => c.operation))];
        const body = `[${changes
          .map(
            (c) =>
              `{"operation":${JSON.stringify(c.operation)},"key":${JSON.stringify(c.key)},"idempotencyKey":${JSON.stringify(c.idempotencyKey)},"fields":${toJson(c.fields)}}`,
          )
          .join(',')}]`;
        const result = await this.send({
          method: group.method,
          url: group.url,
          operation: operations.length === 1 ? (operations[0] as string) : 'mixed',
          keys: changes.map((c) => c.key),
          idempotencyKey: createHash('sha256')
            .update(changes.map((c) => c.idempotencyKey).join('\n'))
            .digest('hex')
            .slice(0, 40),
          body,
        });
        for (const i of indexes) results[i] = result;
      }
    }
    return results;
  }

  private async send(request: Outgoing): Promise<RowResult> {
    const timeoutMs = this.settings.timeoutSeconds * 1000;
    const headers: Record<string, string> = { ...this.headers, [OPERATION_HEADER]: request.operation };
    if (request.body !== undefined) headers['Content-Type'] ??= 'application/json';
    if (this.settings.idempotencyKeyHeader)
      headers[this.settings.idempotencyKeyHeader] = request.idempotencyKey;
    if (!/^https?:\/\//i.test(request.url)) {
      return {
        ok: false,
        reason: `the URL template rendered "${this.redact.url(request.url)}", which is not an http(s) URL`,
        retryable: false,
      };
    }

    await this.ctx.acquire();
    const started = performance.now();
    let result: RowResult;
    let status: number | string | undefined;
    let responseBody: string | undefined;
    let errorText: string | undefined;
    try {
      const response = await fetch(request.url, {
        method: request.method,
        headers,
        body: request.body,
        redirect: 'manual',
        signal: AbortSignal.any([this.ctx.signal, AbortSignal.timeout(timeoutMs)]),
      });
      status = response.status;
      responseBody = await readBody(response);
      result = resultOfStatus(
        response.status,
        response.statusText,
        this.redact.text(responseBody),
        response.headers.get('retry-after'),
      );
    } catch (error) {
      const failure = resultOfError(error, timeoutMs);
      result = failure;
      status = (error as { name?: string }).name === 'TimeoutError' ? 'timeout' : 'error';
      errorText = failure.reason;
    }
    this.ctx.debug({
      operation: request.operation,
      target: `${request.method} ${this.redact.url(request.url)}`,
      keys: request.keys,
      status,
      latencyMs: Math.round(performance.now() - started),
      requestBody:
        request.body === undefined ? undefined : truncate(this.redact.text(request.body), DEBUG_BODY_LIMIT),
      responseBody:
        responseBody === undefined ? undefined : truncate(this.redact.text(responseBody), DEBUG_BODY_LIMIT),
      error: errorText === undefined ? undefined : this.redact.text(errorText),
    });
    return result;
  }

  async close(): Promise<void> {
    // Nothing buffered: every request finished inside write().
  }
}

/** The scheme, host and port of a URL template, when they do not depend on the row. */
function staticOrigin(template: string): string | undefined {
  const match = /^(https?:\/\/[^/?#]+)/i.exec(template);
  if (!match?.[1] || match[1].includes('{')) return undefined;
  return match[1];
}

export const httpDestination: DestinationConnector = {
  capabilities: {
    modes: SYNC_MODES,
    deleteBehaviors: DELETE_BEHAVIORS,
    comparesAllColumns: true,
    defaultBatchSize: 100,
  },

  async check(spec: DestinationSpec, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(spec);
    resolveHeaders(settings, ctx.secrets);
    endpoints(settings);
    const origin = staticOrigin(settings.url);
    if (origin === undefined) return;
    try {
      // Any HTTP answer proves the server is reachable; the API itself is exercised by the first run.
      const response = await fetch(origin, {
        method: 'HEAD',
        redirect: 'manual',
        signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(settings.timeoutSeconds * 1000)]),
      });
      await response.body?.cancel();
    } catch (error) {
      const failure = resultOfError(error, settings.timeoutSeconds * 1000);
      throw new SynclineError(
        'DestinationUnreachable',
        `cannot reach ${origin}: ${failure.reason}. Check the URL and network policies.`,
        {
          cause: error,
          retryable: true,
        },
      );
    }
  },

  async open(ctx: DeliveryContext): Promise<DestinationWriter> {
    return new HttpWriter(settingsOf(ctx.destination), ctx);
  },
};
