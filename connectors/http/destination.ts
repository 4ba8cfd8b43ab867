// A custom HTTP API as a Destination (Hightouch's "custom HTTP request"): one JSON request per row
// operation, or one per batch; URL templates in Liquid; headers from Secrets; an idempotency key per
// row operation. Every request is recorded for the live debugger with credentials redacted.
import { createHash } from 'node:crypto';
import type { Template } from 'liquidjs';
import {
  DELETE_BEHAVIORS,
  ROW_OPERATIONS,
  SYNC_MODES,
  type DestinationSpec,
  type SyncSpec,
} from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import type { SecretResolver } from '../../core/secrets.ts';
import { toJson } from '../shared/values.ts';
import type {
  ConnectorContext,
  DeliveryContext,
  DestinationConnector,
  DestinationWriter,
  RowChange,
  RowOperation,
  RowResult,
} from '../../core/connectors.ts';
import { truncate } from '../../core/text.ts';
import { numberPaths, withExactNumbers } from './body.ts';
import { redactor, type Redactor } from './redact.ts';
import { DEBUG_BODY_LIMIT, readBody, resultOfError, resultOfStatus } from './request.ts';
import { checkVariables, dependsOnRow, mappedFields, parseTemplate, renderUrl } from './templates.ts';

type Settings = NonNullable<DestinationSpec['http']>;
type Method = Settings['method'];

/** The header that tells the API which operation a row request (or a whole batch) carries. */
export const OPERATION_HEADER = 'X-Syncline-Operation';

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
    treatNotFoundAsDeleted: http.treatNotFoundAsDeleted ?? true,
  };
}

interface Endpoint {
  method: Method;
  url: Template[];
  /** The template's text and where it is set, for messages. */
  text: string;
  where: string;
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

/**
 * Method and URL of each operation. With one request per row, a delete without an override is a DELETE
 * on the record URL (`url`), never the upsert method with a body.
 */
function endpoints(settings: Settings): Map<RowOperation, Endpoint> {
  const base = parseTemplate(settings.url, 'http.url');
  const map = new Map<RowOperation, Endpoint>();
  for (const op of ROW_OPERATIONS) {
    const override = settings.operations?.[op];
    const fallback = op === 'delete' && settings.body === 'row' ? 'DELETE' : settings.method;
    map.set(op, {
      method: override?.method ?? fallback,
      url: override?.url ? parseTemplate(override.url, `http.operations.${op}.url`) : base,
      text: override?.url ?? settings.url,
      where: override?.url ? `http.operations.${op}.url` : 'http.url',
    });
  }
  return map;
}

/** The operations whose rows left the model: they carry the key fields only (see RowChange). */
function removalOperations(spec: SyncSpec): RowOperation[] {
  if (spec.mode === 'all') return ['delete'];
  if (spec.mode === 'archive' || spec.deleteBehavior === 'ignore') return [];
  return [spec.deleteBehavior];
}

/**
 * Before any request: every variable of every URL template must be one this Sync fills, and a delete
 * must address one record (a DELETE on a collection URL would remove every record behind it).
 */
function checkEndpoints(
  map: Map<RowOperation, Endpoint>,
  ctx: DeliveryContext,
  keyFields: string[],
  settings: Settings,
): void {
  const spec = ctx.sync.spec;
  const removals = removalOperations(spec);
  const fields = mappedFields(ctx.mappings);
  for (const [op, endpoint] of map) {
    const available = removals.includes(op) ? keyFields : fields;
    checkVariables(endpoint.url, endpoint.where, endpoint.text, available);
  }
  const deletes =
    removals.includes('delete') || (spec.mode === 'archive' && spec.archiveBehavior === 'delete');
  const remove = map.get('delete') as Endpoint;
  if (deletes && settings.body === 'row' && remove.method === 'DELETE' && !dependsOnRow(remove.url)) {
    throw new SynclineError(
      'InvalidDestination',
      `deletes would be sent as DELETE ${remove.text} (${remove.where}), a URL that does not depend on the row: ` +
        'set http.operations.delete.url to the record URL, e.g. .../{{ row.id }}',
    );
  }
}

interface Outgoing {
  method: Method;
  url: string;
  operation: string;
  keys: string[];
  idempotencyKey: string;
  body?: string;
}

/** A row not sent because the run was asked to stop (see DestinationWriter.write). */
const NOT_SENT: RowResult = { ok: false, reason: 'not sent: the run was stopped', retryable: true };

class HttpWriter implements DestinationWriter {
  private readonly settings: Settings;
  private readonly ctx: DeliveryContext;
  private readonly headers: Record<string, string>;
  private readonly redact: Redactor;
  private readonly endpoints: Map<RowOperation, Endpoint>;
  private readonly numbers: string[][];

  constructor(settings: Settings, ctx: DeliveryContext) {
    this.settings = settings;
    this.ctx = ctx;
    const { headers, secretValues } = resolveHeaders(settings, ctx.secrets);
    this.headers = headers;
    this.redact = redactor(secretValues);
    this.endpoints = endpoints(settings);
    const keyFields = ctx.mappings.filter((m) => m.from === ctx.primaryKey).map((m) => m.to);
    checkEndpoints(this.endpoints, ctx, keyFields, settings);
    this.numbers = numberPaths(ctx.mappings, ctx.columns);
  }

  /** The method and URL of a change, or why the row cannot be sent. */
  private target(change: RowChange): { method: Method; url: string } | { reason: string } {
    const endpoint = this.endpoints.get(change.operation) as Endpoint;
    const rendered = renderUrl(endpoint.url, {
      row: change.fields,
      key: change.key,
      operation: change.operation,
    });
    if ('reason' in rendered) return { reason: this.redact.text(rendered.reason) };
    return { method: endpoint.method, url: rendered.url };
  }

  private bodyOf(change: RowChange): string {
    return toJson(withExactNumbers(change.fields, this.numbers));
  }

  async write(batch: RowChange[]): Promise<RowResult[]> {
    return this.settings.body === 'batch' ? this.writeBatches(batch) : this.writeRows(batch);
  }

  private async writeRows(batch: RowChange[]): Promise<RowResult[]> {
    const results: RowResult[] = [];
    for (const change of batch) {
      // A stopped run keeps the results it has: what arrived is committed, the rest is sent next run.
      if (this.ctx.signal.aborted) {
        results.push(NOT_SENT);
        continue;
      }
      const target = this.target(change);
      if ('reason' in target) {
        results.push({ ok: false, reason: target.reason, retryable: false });
        continue;
      }
      results.push(
        await this.send({
          ...target,
          operation: change.operation,
          keys: [change.key],
          idempotencyKey: change.idempotencyKey,
          body: target.method === 'DELETE' ? undefined : this.bodyOf(change),
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
      const target = this.target(change);
      if ('reason' in target) {
        results[i] = { ok: false, reason: target.reason, retryable: false };
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
        if (this.ctx.signal.aborted) {
          for (const i of indexes) results[i] = NOT_SENT;
          continue;
        }
        const changes = indexes.map((i) => batch[i] as RowChange);
        const operations = [...new Set(changes.map((c) => c.operation))];
        const body = `[${changes
          .map(
            (c) =>
              `{"operation":${JSON.stringify(c.operation)},"key":${JSON.stringify(c.key)},"idempotencyKey":${JSON.stringify(c.idempotencyKey)},"fields":${this.bodyOf(c)}}`,
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

    try {
      await this.ctx.acquire();
    } catch (error) {
      if (this.ctx.signal.aborted) return NOT_SENT;
      throw error;
    }
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
      result = this.goneIsDeleted(request, response.status)
        ? { ok: true }
        : resultOfStatus(
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

  /** A delete answered 404 or 410: the record is already gone, which is what the delete wanted. */
  private goneIsDeleted(request: Outgoing, status: number): boolean {
    return (
      this.settings.treatNotFoundAsDeleted !== false &&
      request.operation === 'delete' &&
      (status === 404 || status === 410)
    );
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
    idempotencyKeys: true,
  },

  // The request URLs say where records live (their templates, so a new host or path is a new place).
  identity: (spec: DestinationSpec) => {
    const settings = settingsOf(spec);
    const operations = Object.entries(settings.operations ?? {})
      .filter(([, request]) => request?.url !== undefined)
      .map(([op, request]) => [op, request?.url]);
    return { type: 'http', url: settings.url, operations };
  },

  async check(spec: DestinationSpec, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(spec);
    resolveHeaders(settings, ctx.secrets);
    endpoints(settings); // templates parse; their variables are checked against the Sync's fields at open
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
