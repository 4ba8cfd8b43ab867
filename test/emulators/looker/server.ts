// A stateful Looker API 4.0 emulator: a real HTTP server (node:http, 127.0.0.1) answering the operations of
// spec/Looker.4.0.oas.json a Syncline Model of a Look or query uses — login (POST /login, form-encoded
// client_id and client_secret → AccessToken), me (GET /user), look, query, query_for_slug, run_query
// (GET /queries/{id}/run/{result_format}, formats json and sql), lookml_model_explore and connection —
// with Looker's Error body {message, documentation_url}: 404 for unknown credentials and objects, 401 for a
// missing or expired token, 403, and 429/5xx faults on request. A query's SQL is what Looker would
// generate from LookML (given by the test); it runs on a real PostgreSQL (../metabase/warehouse.ts).
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { runOnWarehouse } from '../metabase/warehouse.ts';

export interface EmulatedQuery {
  id: string;
  slug: string;
  model: string;
  view: string;
  fields: string[];
  /** Row limit as Looker stores it (a string; "-1" for all rows); null: Looker's default of 500. */
  limit: string | null;
  /** The SQL Looker generates for this query from the LookML model. */
  sql: string;
}

export interface EmulatedConnection {
  name: string;
  dialect_name: string;
  database: string;
  host: string;
  /** Where the emulator runs queries of this connection (a real PostgreSQL). */
  url: string;
}

const DOCS = 'https://cloud.google.com/looker/docs/r/api/4.0';
const RESULT_FORMATS = [
  'inline_json',
  'json',
  'json_detail',
  'json_fe',
  'json_bi',
  'csv',
  'html',
  'md',
  'txt',
  'xlsx',
  'gsxml',
  'sql',
  'png',
  'jpg',
];

/** Query parameters of run_query as the spec types them. */
const runQueryParams = z.object({
  limit: z.coerce.number().int().optional(),
  apply_formatting: z.enum(['true', 'false']).optional(),
  apply_vis: z.enum(['true', 'false']).optional(),
  cache: z.enum(['true', 'false']).optional(),
  server_table_calcs: z.enum(['true', 'false']).optional(),
});

const loginForm = z.object({ client_id: z.string().min(1), client_secret: z.string().min(1) });

interface Fault {
  match: RegExp;
  status: number;
  remaining: number;
  retryAfter?: string;
}

export class LookerEmulator {
  private server: Server | undefined;
  /** API keys: client_id → client_secret. */
  readonly clients = new Map<string, string>();
  private readonly tokens = new Map<string, number>();
  /** Lifetime of the tokens login gives, in seconds. */
  tokenLifetimeSeconds = 3600;
  readonly looks = new Map<string, { id: string; title: string; query_id: string; deleted?: boolean }>();
  readonly queries = new Map<string, EmulatedQuery>();
  /** Explores by `model::view`, naming their connection. */
  readonly explores = new Map<string, string>();
  readonly connections = new Map<string, EmulatedConnection>();
  /** Connections the API user may not read (no see_lookml / access to connections): 403. */
  readonly hiddenConnections = new Set<string>();
  private faults: Fault[] = [];
  readonly requests: { method: string; path: string; authorization: string | undefined; body: string }[] = [];
  logins = 0;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) this.error(res, 500, String(error));
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

  fail(match: RegExp, status: number, count = 1, retryAfter?: string): void {
    this.faults.push({ match, status, remaining: count, ...(retryAfter ? { retryAfter } : {}) });
  }

  /** Every token given so far stops working (sessions expired or revoked). */
  expireTokens(): void {
    this.tokens.clear();
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private error(res: ServerResponse, status: number, message: string): void {
    this.json(res, status, { message, documentation_url: DOCS });
  }

  private async body(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  private authorized(req: IncomingMessage): boolean {
    const match = /^(?:token|Bearer) (\S+)$/.exec(req.headers.authorization ?? '');
    const expires = match ? this.tokens.get(match[1]!) : undefined;
    return expires !== undefined && expires > Date.now();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    const body = await this.body(req);
    this.requests.push({ method, path: url.pathname, authorization: req.headers.authorization, body });
    const fault = this.faults.find((f) => f.remaining > 0 && f.match.test(url.pathname));
    if (fault) {
      fault.remaining -= 1;
      if (fault.retryAfter) res.setHeader('Retry-After', fault.retryAfter);
      return this.error(
        res,
        fault.status,
        fault.status === 429 ? 'Too Many Requests' : 'Internal Server Error',
      );
    }
    if (!url.pathname.startsWith('/api/4.0/')) return this.error(res, 404, 'Not found');
    const route = `${method} ${url.pathname.slice('/api/4.0'.length)}`;
    if (route === 'POST /login') return this.login(res, body, url);
    if (!this.authorized(req)) return this.error(res, 401, 'Requires authentication.');
    let m: RegExpMatchArray | null;
    if (route === 'GET /user')
      return this.json(res, 200, { id: '7', display_name: 'Syncline API', is_disabled: false });
    if ((m = route.match(/^GET \/looks\/(\d+)$/))) return this.getLook(res, m[1]!);
    if ((m = route.match(/^GET \/queries\/slug\/([A-Za-z0-9]+)$/))) {
      const q = [...this.queries.values()].find((x) => x.slug === m![1]);
      return q ? this.json(res, 200, this.queryBody(q)) : this.error(res, 404, 'Not found');
    }
    if ((m = route.match(/^GET \/queries\/(\d+)$/))) {
      const q = this.queries.get(m[1]!);
      return q ? this.json(res, 200, this.queryBody(q)) : this.error(res, 404, 'Not found');
    }
    if ((m = route.match(/^GET \/queries\/(\d+)\/run\/([a-z_]+)$/)))
      return this.runQuery(res, m[1]!, m[2]!, url);
    if ((m = route.match(/^GET \/lookml_models\/([^/]+)\/explores\/([^/]+)$/))) {
      const connection = this.explores.get(`${decodeURIComponent(m[1]!)}::${decodeURIComponent(m[2]!)}`);
      return connection
        ? this.json(res, 200, {
            name: decodeURIComponent(m[2]!),
            model_name: decodeURIComponent(m[1]!),
            connection_name: connection,
          })
        : this.error(res, 404, 'Not found');
    }
    if ((m = route.match(/^GET \/connections\/([^/]+)$/))) {
      const name = decodeURIComponent(m[1]!);
      const conn = this.connections.get(name);
      if (!conn) return this.error(res, 404, 'Not found');
      if (this.hiddenConnections.has(name))
        return this.error(res, 403, 'You do not have permission to view connections.');
      return this.json(res, 200, {
        name: conn.name,
        dialect_name: conn.dialect_name,
        database: conn.database,
        host: conn.host,
      });
    }
    return this.error(res, 404, 'Not found');
  }

  private login(res: ServerResponse, body: string, url: URL): void {
    const form = Object.fromEntries(new URLSearchParams(body));
    const given = loginForm.safeParse({ ...Object.fromEntries(url.searchParams), ...form });
    // Looker answers unknown credentials with 404, as it does unknown objects.
    if (!given.success || this.clients.get(given.data.client_id) !== given.data.client_secret)
      return this.error(res, 404, 'Not found');
    this.logins += 1;
    const token = randomBytes(20).toString('hex');
    this.tokens.set(token, Date.now() + this.tokenLifetimeSeconds * 1000);
    this.json(res, 200, {
      access_token: token,
      token_type: 'Bearer',
      expires_in: this.tokenLifetimeSeconds,
      refresh_token: null,
    });
  }

  private getLook(res: ServerResponse, id: string): void {
    const look = this.looks.get(id);
    if (!look) return this.error(res, 404, 'Not found');
    const q = this.queries.get(look.query_id);
    this.json(res, 200, {
      ...look,
      deleted: look.deleted ?? false,
      model: { id: q?.model },
      query: q ? this.queryBody(q) : null,
    });
  }

  private queryBody(q: EmulatedQuery) {
    return {
      id: q.id,
      slug: q.slug,
      model: q.model,
      view: q.view,
      fields: q.fields,
      limit: q.limit,
      pivots: null,
      filters: null,
      sorts: [],
    };
  }

  private async runQuery(res: ServerResponse, id: string, format: string, url: URL): Promise<void> {
    if (!RESULT_FORMATS.includes(format)) return this.error(res, 400, `Unsupported result format: ${format}`);
    const params = runQueryParams.safeParse(Object.fromEntries(url.searchParams));
    if (!params.success) return this.error(res, 400, params.error.issues[0]?.message ?? 'bad parameters');
    const q = this.queries.get(id);
    if (!q) return this.error(res, 404, 'Not found');
    if (format === 'sql') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      return void res.end(q.sql);
    }
    if (format !== 'json')
      return this.error(res, 400, `the emulator answers run_query in json and sql, not ${format}`);
    const conn = this.connections.get(this.explores.get(`${q.model}::${q.view}`) ?? '');
    if (!conn) return this.error(res, 422, 'the explore has no connection');
    const limit = params.data.limit ?? (q.limit === null ? 500 : Number(q.limit));
    const { rows } = await runOnWarehouse(conn.url, q.sql, limit > 0 ? limit : undefined);
    this.json(res, 200, rows);
  }
}
