// A stateful Metabase emulator: a real HTTP server (node:http, 127.0.0.1) answering the endpoints a
// Syncline Model of a saved question uses — GET /api/user/current, GET /api/card/:id, GET /api/database/:id,
// POST /api/dataset/native, POST /api/card/:id/query/json — with Metabase's shapes and errors: 401
// "Unauthenticated" for a missing or unknown x-api-key, 403 "You don't have permissions to do that.", 404
// "Not found.", and 429/5xx faults on request. Questions run on a real PostgreSQL (warehouse.ts); MBQL
// questions of the editor are compiled to SQL for the subset the tests use (a table, its fields, a limit).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { datasetQuery, exportRequest, nativeRequest, type DatasetQuery } from './schemas.ts';
import { runOnWarehouse, type WarehouseColumn } from './warehouse.ts';

export interface EmulatedDatabase {
  id: number;
  name: string;
  engine: string;
  /** Connection details as an administrator sees them (dbname, host...). */
  details: Record<string, unknown>;
  /** Where the emulator runs questions of this database (a real PostgreSQL). */
  url: string;
  /** Tables an MBQL question may name, by id: name and field ids. */
  tables?: Record<number, { name: string; fields: Record<number, string> }>;
}

export interface EmulatedCard {
  id: number;
  name: string;
  dataset_query: DatasetQuery | Record<string, unknown>;
  archived?: boolean;
  /** Collection permission: false gives the API key a 403 on this card. */
  visible?: boolean;
}

interface Fault {
  match: RegExp;
  status: number;
  remaining: number;
  retryAfter?: string;
}

const BASE_TYPES: Record<number, string> = {
  20: 'type/BigInteger',
  21: 'type/Integer',
  23: 'type/Integer',
  700: 'type/Float',
  701: 'type/Float',
  1700: 'type/Decimal',
  16: 'type/Boolean',
  1082: 'type/Date',
  1114: 'type/DateTime',
  1184: 'type/DateTimeWithLocalTZ',
  2950: 'type/UUID',
  114: 'type/JSON',
  3802: 'type/JSON',
};

/** How Metabase names a column of an editor question for people: customer_id → Customer ID. */
function humanize(name: string): string {
  return name
    .split('_')
    .map((w) => (w.toLowerCase() === 'id' ? 'ID' : w.charAt(0).toUpperCase() + w.slice(1)))
    .join(' ');
}

function literal(value: unknown): string {
  if (typeof value === 'number') return String(value);
  return `'${String(value).replaceAll("'", "''")}'`;
}

export class MetabaseEmulator {
  private server: Server | undefined;
  readonly apiKeys = new Set<string>();
  readonly databases = new Map<number, EmulatedDatabase>();
  readonly cards = new Map<number, EmulatedCard>();
  private faults: Fault[] = [];
  /** Cut the next export after this many bytes (a stream that ends early). */
  private cutNextExportAt: number | undefined;
  /** Every request, as method and path, with the x-api-key it carried. */
  readonly requests: { method: string; path: string; apiKey: string | undefined; body: string }[] = [];
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) this.send(res, 500, { message: String(error) });
        else res.destroy();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** The next `count` requests whose path matches answer `status` (429 with Retry-After, 5xx). */
  fail(match: RegExp, status: number, count = 1, retryAfter?: string): void {
    this.faults.push({ match, status, remaining: count, ...(retryAfter ? { retryAfter } : {}) });
  }

  cutNextExport(afterBytes: number): void {
    this.cutNextExportAt = afterBytes;
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': typeof body === 'string' ? 'text/plain' : 'application/json' });
    res.end(text);
  }

  private async body(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const method = req.method ?? 'GET';
    const apiKey = req.headers['x-api-key'] as string | undefined;
    const body = await this.body(req);
    this.requests.push({ method, path, apiKey, body });
    const fault = this.faults.find((f) => f.remaining > 0 && f.match.test(path));
    if (fault) {
      fault.remaining -= 1;
      res.writeHead(fault.status, {
        'Content-Type': 'text/plain',
        ...(fault.retryAfter ? { 'Retry-After': fault.retryAfter } : {}),
      });
      res.end(fault.status === 429 ? 'Too many requests.' : 'Server error.');
      return;
    }
    if (!apiKey || !this.apiKeys.has(apiKey)) return this.send(res, 401, 'Unauthenticated');
    const route = `${method} ${path}`;
    let m: RegExpMatchArray | null;
    if (route === 'GET /api/user/current')
      return this.send(res, 200, { id: 13, email: 'api-key-syncline@api-key.invalid', is_superuser: false });
    if ((m = route.match(/^GET \/api\/card\/(\d+)$/))) return this.getCard(res, Number(m[1]));
    if ((m = route.match(/^GET \/api\/database\/(\d+)$/))) return this.getDatabase(res, Number(m[1]));
    if (route === 'POST /api/dataset/native') return this.compile(res, body);
    if ((m = route.match(/^POST \/api\/card\/(\d+)\/query\/([a-z]+)$/)))
      return this.exportCard(req, res, Number(m[1]), m[2]!, body);
    return this.send(res, 404, 'Not found.');
  }

  private card(res: ServerResponse, id: number): EmulatedCard | undefined {
    const card = this.cards.get(id);
    if (!card) this.send(res, 404, 'Not found.');
    else if (card.visible === false) this.send(res, 403, "You don't have permissions to do that.");
    else return card;
    return undefined;
  }

  /** The SQL a dataset query runs: native with template tags filled in by default, or compiled MBQL. */
  sqlOf(query: DatasetQuery): string {
    if (query.type === 'native') {
      const native = query.native!;
      const tags = native['template-tags'] ?? {};
      return native.query
        .replace(/\[\[([^\]]*)\]\]/g, (all, inner: string) => {
          const names = [...inner.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((x) => x[1]!);
          return names.every((n) => tags[n]?.default !== undefined) ? inner : '';
        })
        .replace(/\{\{\s*(\w+)\s*\}\}/g, (all, name: string) => {
          const tag = tags[name];
          if (tag?.default === undefined) throw new Error(`missing required parameter ${name}`);
          return literal(tag.default);
        });
    }
    const db = this.databases.get(query.database)!;
    const mbql = query.query!;
    const table = db.tables?.[mbql['source-table']];
    if (!table) throw new Error(`unknown table ${mbql['source-table']}`);
    const fields = mbql.fields?.map(
      (f) => `"${table.name}"."${table.fields[f[1]]}" AS "${table.fields[f[1]]}"`,
    );
    return `SELECT ${fields?.join(', ') ?? `"${table.name}".*`} FROM "public"."${table.name}"${mbql.limit ? ` LIMIT ${mbql.limit}` : ''}`;
  }

  private async resultMetadata(card: EmulatedCard) {
    const parsed = datasetQuery.safeParse(card.dataset_query);
    if (!parsed.success) return null;
    const db = this.databases.get(parsed.data.database)!;
    let sql: string;
    try {
      sql = this.sqlOf(parsed.data);
    } catch {
      return null; // a question that needs a value has not run: Metabase has no metadata of it yet
    }
    const { columns } = await runOnWarehouse(db.url, sql, 0);
    return columns.map((c: WarehouseColumn) => ({
      name: c.name,
      display_name: parsed.data.type === 'native' ? c.name : humanize(c.name),
      base_type: BASE_TYPES[c.oid] ?? 'type/Text',
    }));
  }

  private async getCard(res: ServerResponse, id: number): Promise<void> {
    const card = this.card(res, id);
    if (!card) return;
    const query = card.dataset_query as { database?: number; type?: string };
    this.send(res, 200, {
      id: card.id,
      name: card.name,
      type: 'question',
      archived: card.archived ?? false,
      database_id: query.database ?? null,
      query_type: query.type ?? null,
      dataset_query: card.dataset_query,
      result_metadata: await this.resultMetadata(card),
      collection_id: null,
      display: 'table',
    });
  }

  private getDatabase(res: ServerResponse, id: number): void {
    const db = this.databases.get(id);
    if (!db) return this.send(res, 404, 'Not found.');
    this.send(res, 200, {
      id: db.id,
      name: db.name,
      engine: db.engine,
      details: db.details,
      is_sample: false,
    });
  }

  private compile(res: ServerResponse, body: string): void {
    const parsed = nativeRequest.safeParse(JSON.parse(body || 'null'));
    if (!parsed.success) return this.send(res, 400, { errors: { query: parsed.error.issues[0]?.message } });
    if (!this.databases.has(parsed.data.database)) return this.send(res, 404, 'Not found.');
    try {
      this.send(res, 200, { query: this.sqlOf(parsed.data), params: null });
    } catch (error) {
      this.send(res, 400, { message: (error as Error).message });
    }
  }

  private formBody(req: IncomingMessage, body: string): unknown {
    if ((req.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded'))
      return Object.fromEntries(new URLSearchParams(body));
    return body === '' ? {} : JSON.parse(body);
  }

  private async exportCard(
    req: IncomingMessage,
    res: ServerResponse,
    id: number,
    format: string,
    body: string,
  ): Promise<void> {
    if (format !== 'json')
      return this.send(res, 400, { errors: { 'export-format': 'enum of csv, api, xlsx, json' } });
    const request = exportRequest.safeParse(this.formBody(req, body));
    if (!request.success)
      return this.send(res, 400, { errors: { parameters: request.error.issues[0]?.message } });
    const card = this.card(res, id);
    if (!card) return;
    const parsed = datasetQuery.parse(card.dataset_query);
    const db = this.databases.get(parsed.database)!;
    const result = await runOnWarehouse(db.url, this.sqlOf(parsed));
    const meta = (await this.resultMetadata(card)) ?? [];
    const display = new Map(meta.map((c) => [c.name, c.display_name]));
    const rows = result.rows.map((row) =>
      Object.fromEntries(Object.entries(row).map(([k, v]) => [display.get(k) ?? k, v])),
    );
    const text = JSON.stringify(rows);
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' });
    const cut = this.cutNextExportAt;
    this.cutNextExportAt = undefined;
    if (cut === undefined) return void res.end(text);
    // Chunked, then the connection closes before the last chunk: the stream ended early.
    res.write(text.slice(0, cut));
    setTimeout(() => res.destroy(), 20);
  }
}
