// A stateful Salesforce org behind a real HTTP server (node:http, 127.0.0.1, an ephemeral port): the
// OAuth 2.0 JWT bearer and refresh-token flows, sObject describe, sObject Rows and Collections, Bulk API
// 2.0 ingest jobs that finish asynchronously with unordered results, the daily API request limit with
// Sforce-Limit-Info, and seeded faults. See README.md for the documentation each behaviour follows.
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeAssertion, generateTestKeyPair, type TestKeyPair } from './auth.ts';
import { parseCsv, writeResultCsv } from './csv.ts';
import { API_VERSION, API_VERSION_NUMBER, makeId, normalizeId } from './ids.ts';
import {
  coerce,
  emptyChanges,
  err,
  isError,
  jsonChanges,
  lookupOf,
  RequestError,
  Store,
  type Changes,
  type SfError,
  type SfRecord,
  type WriteResult,
} from './records.ts';
import {
  describe,
  describeGlobalEntry,
  field,
  SOBJECTS,
  sobject,
  type FieldDef,
  type SObjectDef,
} from './schema.ts';

export { API_VERSION } from './ids.ts';
export { generateTestKeyPair, signAssertion, type JwtClaims, type TestKeyPair } from './auth.ts';
export type { SfError, SfRecord } from './records.ts';
export { SOBJECTS } from './schema.ts';

/** Probabilities (0..1), per API request, of each fault. */
export interface FaultRates {
  /** 503 `SERVER_UNAVAILABLE` before anything runs (not counted against the daily limit). */
  unavailable: number;
  /** The answer waits slowMs. */
  slow: number;
  /** A write is applied, then the connection is reset before any answer. */
  appliedThenReset: number;
  /** A Bulk job fails part-way: some rows processed, the rest unprocessed, state Failed. */
  bulkJobFailed: number;
}

export type FaultKind = keyof FaultRates;

export const NO_FAULTS: FaultRates = { unavailable: 0, slow: 0, appliedThenReset: 0, bulkJobFailed: 0 };

export interface SalesforceEmulatorOptions {
  /** The connected app's consumer key (`iss` of the JWT, `client_id` of the refresh flow). */
  consumerKey?: string;
  /** The connected app's consumer secret (checked in the refresh flow when given there). */
  consumerSecret?: string;
  /** PEM public key (or certificate) of the connected app; a fresh pair is made when absent (see keyPair). */
  publicKey?: string;
  /** Users pre-authorized for the connected app (`sub`); default ['integration@example.com']. */
  users?: string[];
  /** The `aud` the JWT must carry; default https://login.salesforce.com. */
  loginUrl?: string;
  /** Access token lifetime (the org's session timeout), seconds; default 7200. */
  sessionSeconds?: number;
  /** Refresh tokens known up front: token → username. */
  refreshTokens?: Record<string, string>;
  /** Daily API requests allowed (DailyApiRequests.Max); default 100000. */
  dailyApiLimit?: number;
  /** Milliseconds a Bulk job spends in UploadComplete, and again in InProgress; default 50. */
  bulkDelayMs?: number;
  /** Delay of a `slow` fault, ms; default 200. */
  slowMs?: number;
  /** Seed of the fault draws and of the result shuffling; default 1. */
  seed?: number;
  faults?: Partial<FaultRates>;
}

export interface RequestLogEntry {
  method: string;
  /** Path without the query string; tokens and assertions are never logged. */
  path: string;
  query: string;
  status: number;
  /** The request body (the token endpoint's is left out). */
  body: string;
  fault?: FaultKind;
}

export interface BulkJobInfo {
  id: string;
  operation: string;
  object: string;
  state: string;
  externalIdFieldName?: string;
  numberRecordsProcessed: number;
  numberRecordsFailed: number;
  errorMessage?: string;
  /** Rows uploaded, and how many ended unprocessed. */
  rows: number;
  unprocessed: number;
}

export interface SalesforceStats {
  requests: number;
  apiUsage: number;
  apiLimit: number;
  tokensIssued: number;
  /** 401 INVALID_SESSION_ID answers. */
  sessionRejected: number;
  /** 403 REQUEST_LIMIT_EXCEEDED answers. */
  limitRejected: number;
  /** Record writes that succeeded (creates, updates, deletes), REST and Bulk. */
  writes: number;
  faults: Record<FaultKind, number>;
}

export interface SalesforceEmulator {
  /** http://127.0.0.1:PORT — the instance URL, also the login host (`${url}/services/oauth2/token`). */
  url: string;
  tokenUrl: string;
  loginUrl: string;
  consumerKey: string;
  consumerSecret: string;
  users: string[];
  /** The key pair made when no publicKey was given. */
  keyPair: TestKeyPair | undefined;
  /** Live records of an sObject, in creation order (copies). */
  records(sobjectName: string): SfRecord[];
  /** Records in the recycle bin. */
  deletedRecords(sobjectName: string): SfRecord[];
  /** Create a record directly (through the same checks); throws when they fail. */
  insertRecord(sobjectName: string, values: Record<string, unknown>): string;
  /** Delete a record behind the connector's back (recycle bin, or gone when hard). */
  deleteRecord(id: string, options?: { hard?: boolean }): void;
  /** Change a record behind the connector's back (no checks). */
  editRecord(id: string, values: SfRecord): void;
  requests(): RequestLogEntry[];
  jobs(): BulkJobInfo[];
  stats(): SalesforceStats;
  /** Expire every access token issued so far. */
  expireTokens(): void;
  /** A refresh token for a user, as an earlier web-server flow would have granted. */
  issueRefreshToken(username?: string): string;
  setFaults(faults: Partial<FaultRates>): void;
  setDailyApiLimit(limit: number): void;
  /** Set the requests counted today (e.g. close to the limit). */
  setApiUsage(usage: number): void;
  /** Resolves when no Bulk job is Open, UploadComplete or InProgress with its data uploaded and closed. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

/** A small LCG, so that a run can be replayed from its seed. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const ORG_ID = '00D5g000004EMULAAA';
const USER_ID_PREFIX = '0055g000004';

interface Session {
  username: string;
  expiresAt: number;
}

interface Job {
  id: string;
  def: SObjectDef;
  operation: 'insert' | 'update' | 'upsert' | 'delete' | 'hardDelete';
  externalIdFieldName?: string;
  lineEnding: 'LF' | 'CRLF';
  columnDelimiter: string;
  state: 'Open' | 'UploadComplete' | 'InProgress' | 'JobComplete' | 'Failed' | 'Aborted';
  createdDate: string;
  systemModstamp: string;
  csv?: string;
  headers: string[];
  rows: string[][];
  successful: string[][];
  failed: string[][];
  unprocessed: string[][];
  processed: number;
  failedCount: number;
  errorMessage?: string;
  startedAt?: number;
  finishedAt?: number;
}

const DELIMITERS: Record<string, string> = {
  COMMA: ',',
  SEMICOLON: ';',
  PIPE: '|',
  TAB: '\t',
  CARET: '^',
  BACKQUOTE: '`',
};

const stamp = (date = new Date()): string => date.toISOString().replace('Z', '+0000');

interface Reply {
  status: number;
  body?: unknown;
  text?: string;
  headers?: Record<string, string>;
  /** The request changed records (a reset-after-apply fault may then hit). */
  wrote?: boolean;
}

const json = (status: number, body: unknown, wrote = false): Reply => ({ status, body, wrote });

class Emulator {
  readonly store = new Store();
  readonly sessions = new Map<string, Session>();
  readonly refresh = new Map<string, string>();
  readonly jobs = new Map<string, Job>();
  readonly log: RequestLogEntry[] = [];
  readonly timers = new Set<NodeJS.Timeout>();
  readonly stats: SalesforceStats;
  readonly consumerKey: string;
  readonly consumerSecret: string;
  readonly publicKey: string;
  readonly keyPair: TestKeyPair | undefined;
  readonly users: string[];
  readonly loginUrl: string;
  readonly sessionMs: number;
  readonly bulkDelayMs: number;
  readonly slowMs: number;
  readonly seed: number;
  faults: FaultRates;
  url = '';
  private readonly random: () => number;
  private jobCounter = 0;
  private waiters: Array<() => void> = [];

  constructor(options: SalesforceEmulatorOptions) {
    this.consumerKey = options.consumerKey ?? '3MVG9EMULATOR.consumer.key';
    this.consumerSecret = options.consumerSecret ?? 'emulator-consumer-secret';
    this.keyPair = options.publicKey ? undefined : generateTestKeyPair();
    this.publicKey = options.publicKey ?? (this.keyPair as TestKeyPair).publicKey;
    this.users = options.users ?? ['integration@example.com'];
    this.loginUrl = options.loginUrl ?? 'https://login.salesforce.com';
    this.sessionMs = (options.sessionSeconds ?? 7200) * 1000;
    this.bulkDelayMs = options.bulkDelayMs ?? 50;
    this.slowMs = options.slowMs ?? 200;
    this.seed = options.seed ?? 1;
    this.random = lcg(this.seed);
    this.faults = { ...NO_FAULTS, ...options.faults };
    for (const [token, user] of Object.entries(options.refreshTokens ?? {})) this.refresh.set(token, user);
    this.stats = {
      requests: 0,
      apiUsage: 0,
      apiLimit: options.dailyApiLimit ?? 100_000,
      tokensIssued: 0,
      sessionRejected: 0,
      limitRejected: 0,
      writes: 0,
      faults: { ...NO_FAULTS },
    };
  }

  private roll(kind: FaultKind): boolean {
    const hit = this.faults[kind] > 0 && this.random() < this.faults[kind];
    if (hit) this.stats.faults[kind]++;
    return hit;
  }

  userId(username: string): string {
    const n = Math.max(0, this.users.indexOf(username)) + 1;
    const id15 = `${USER_ID_PREFIX}${String(n).padStart(4, '0')}`;
    return normalizeId(id15) as string;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    this.stats.requests++;
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const entry: RequestLogEntry = { method, path, query: url.search, status: 0, body };
    this.log.push(entry);
    if (path === '/services/oauth2/token') {
      entry.body = '';
      entry.query = '';
      const reply = this.token(method, body, url.searchParams);
      entry.status = reply.status;
      send(res, reply);
      return;
    }
    if (!path.startsWith('/services/data')) {
      entry.status = 404;
      send(res, json(404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]));
      return;
    }
    if (path === '/services/data' || path === '/services/data/') {
      entry.status = 200;
      send(
        res,
        json(200, [
          { label: "Winter '25", url: `/services/data/${API_VERSION}`, version: API_VERSION_NUMBER },
        ]),
      );
      return;
    }
    const limitHeader = (): Record<string, string> => ({
      'sforce-limit-info': `api-usage=${this.stats.apiUsage}/${this.stats.apiLimit}`,
    });
    const session = this.session(req.headers.authorization);
    if (!session) {
      this.stats.sessionRejected++;
      entry.status = 401;
      send(res, {
        ...json(401, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]),
        headers: { 'www-authenticate': 'Token', ...limitHeader() },
      });
      return;
    }
    if (this.stats.apiUsage >= this.stats.apiLimit) {
      this.stats.limitRejected++;
      entry.status = 403;
      send(res, {
        ...json(403, [{ errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'TotalRequests Limit exceeded.' }]),
        headers: limitHeader(),
      });
      return;
    }
    if (this.roll('unavailable')) {
      entry.status = 503;
      entry.fault = 'unavailable';
      send(res, {
        ...json(503, [
          {
            errorCode: 'SERVER_UNAVAILABLE',
            message: 'Server temporarily unavailable, please try again later.',
          },
        ]),
        headers: limitHeader(),
      });
      return;
    }
    this.stats.apiUsage++;
    if (this.roll('slow')) {
      entry.fault = 'slow';
      await sleep(this.slowMs);
    }
    let reply: Reply;
    try {
      reply = this.api(method, path.slice('/services/data'.length), url.searchParams, body, req.headers);
    } catch (error) {
      if (error instanceof RequestError) reply = json(error.status, error.body());
      else throw error;
    }
    entry.status = reply.status;
    if (reply.wrote && reply.status < 300 && this.roll('appliedThenReset')) {
      entry.fault = 'appliedThenReset';
      entry.status = 0;
      res.socket?.destroy();
      return;
    }
    send(res, { ...reply, headers: { ...reply.headers, ...limitHeader() } });
  }

  private session(header: string | undefined): Session | undefined {
    const match = /^(?:Bearer|OAuth)\s+(.+)$/i.exec(header ?? '');
    const session = match?.[1] ? this.sessions.get(match[1].trim()) : undefined;
    if (!session || session.expiresAt <= Date.now()) return undefined;
    return session;
  }

  // --- OAuth 2.0 ---------------------------------------------------------------------------------

  private token(method: string, body: string, query: URLSearchParams): Reply {
    const oauthError = (error: string, description: string, status = 400): Reply =>
      json(status, { error, error_description: description });
    if (method !== 'POST') return oauthError('invalid_request', 'must use HTTP POST');
    const form = new URLSearchParams(body);
    const param = (name: string): string | null => form.get(name) ?? query.get(name);
    const grant = param('grant_type');
    if (grant === null) return oauthError('unsupported_grant_type', 'grant type not supported');
    if (grant === 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      const assertion = param('assertion');
      if (!assertion) return oauthError('invalid_request', 'assertion is missing');
      const decoded = decodeAssertion(assertion, this.publicKey);
      if (!decoded.ok) return oauthError('invalid_grant', 'invalid assertion');
      const { claims } = decoded;
      if (claims.iss !== this.consumerKey)
        return oauthError('invalid_client_id', 'client identifier invalid');
      if (!decoded.signatureValid) return oauthError('invalid_grant', 'invalid assertion');
      const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
      if (
        !aud.some((a) => typeof a === 'string' && a.replace(/\/$/, '') === this.loginUrl.replace(/\/$/, ''))
      )
        return oauthError('invalid_grant', 'audience is invalid');
      if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now())
        return oauthError('invalid_grant', 'expired authorization code');
      if (typeof claims.sub !== 'string' || !this.users.includes(claims.sub))
        return oauthError('invalid_grant', "user hasn't approved this consumer");
      return json(200, this.issue(claims.sub, true));
    }
    if (grant === 'refresh_token') {
      if (param('client_id') !== this.consumerKey)
        return oauthError('invalid_client_id', 'client identifier invalid');
      const secret = param('client_secret');
      if (secret !== null && secret !== this.consumerSecret)
        return oauthError('invalid_client', 'invalid client credentials');
      const user = this.refresh.get(param('refresh_token') ?? '');
      if (!user) return oauthError('invalid_grant', 'expired access/refresh token');
      return json(200, this.issue(user, false));
    }
    return oauthError('unsupported_grant_type', 'grant type not supported');
  }

  private issue(username: string, jwt: boolean): Record<string, string> {
    const token = `${ORG_ID.slice(0, 15)}!AQ${randomBytes(24).toString('base64url')}`;
    this.sessions.set(token, { username, expiresAt: Date.now() + this.sessionMs });
    this.stats.tokensIssued++;
    const issuedAt = String(Date.now());
    const id = `${this.url}/id/${ORG_ID}/${this.userId(username)}`;
    const signature = createHmac('sha256', this.consumerSecret)
      .update(id + issuedAt)
      .digest('base64');
    return {
      access_token: token,
      ...(jwt ? { scope: 'api' } : { scope: 'api refresh_token' }),
      instance_url: this.url,
      id,
      token_type: 'Bearer',
      issued_at: issuedAt,
      signature,
    };
  }

  issueRefreshToken(username: string): string {
    const token = `5Aep861${randomBytes(30).toString('base64url')}`;
    this.refresh.set(token, username);
    return token;
  }

  // --- REST ----------------------------------------------------------------------------------------

  private api(
    method: string,
    path: string,
    query: URLSearchParams,
    body: string,
    headers: IncomingMessage['headers'],
  ): Reply {
    const prefix = `/${API_VERSION}`;
    if (!path.startsWith(prefix + '/') && path !== prefix)
      return json(404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
    const parts = path
      .slice(prefix.length)
      .split('/')
      .filter((p) => p !== '')
      .map((p) => decodeURIComponent(p));
    const [head, ...rest] = parts;
    if (head === undefined) return json(200, this.resources());
    if (head === 'limits' && method === 'GET' && rest.length === 0) return json(200, this.limits());
    if (head === 'sobjects') return this.sobjects(method, rest, body);
    if (head === 'composite' && rest[0] === 'sobjects')
      return this.collections(method, rest.slice(1), query, body);
    if (head === 'jobs' && rest[0] === 'ingest')
      return this.bulk(method, rest.slice(1), query, body, headers);
    return json(404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
  }

  private resources(): Record<string, string> {
    const base = `/services/data/${API_VERSION}`;
    return {
      sobjects: `${base}/sobjects`,
      composite: `${base}/composite`,
      jobs: `${base}/jobs`,
      limits: `${base}/limits`,
    };
  }

  private limits(): Record<string, { Max: number; Remaining: number }> {
    const running = [...this.jobs.values()].length;
    return {
      DailyApiRequests: {
        Max: this.stats.apiLimit,
        Remaining: Math.max(0, this.stats.apiLimit - this.stats.apiUsage),
      },
      DailyBulkV2QueryJobs: { Max: 10000, Remaining: 10000 },
      DailyBulkApiBatches: { Max: 15000, Remaining: Math.max(0, 15000 - running) },
      DataStorageMB: { Max: 5, Remaining: 5 },
    };
  }

  private parseBody(body: string): unknown {
    try {
      return JSON.parse(body) as unknown;
    } catch (error) {
      throw new RequestError(400, 'JSON_PARSER_ERROR', `Unexpected character: ${(error as Error).message}`);
    }
  }

  private def(name: string): SObjectDef {
    const def = sobject(name);
    if (!def) throw new RequestError(404, 'NOT_FOUND', 'The requested resource does not exist');
    return def;
  }

  private sobjects(method: string, rest: string[], body: string): Reply {
    if (rest.length === 0 && method === 'GET')
      return json(200, { encoding: 'UTF-8', maxBatchSize: 200, sobjects: SOBJECTS.map(describeGlobalEntry) });
    const def = this.def(rest[0] ?? '');
    if (rest.length === 1) {
      if (method === 'GET') return json(200, { objectDescribe: describeGlobalEntry(def), recentItems: [] });
      if (method === 'POST') {
        const record = this.recordBody(body);
        const result = this.save(def, jsonChanges(def, record), undefined);
        return result.ok
          ? json(201, { id: result.id, success: true, errors: [] }, true)
          : json(400, rowErrors(result.errors));
      }
    }
    if (rest.length === 2 && rest[1] === 'describe' && method === 'GET') return json(200, describe(def));
    if (rest.length === 2) {
      const id = rest[1] as string;
      if (method === 'GET') {
        const found = this.store.target(def, id);
        if (isError(found)) return notFound();
        return json(200, this.present(def, found));
      }
      if (method === 'PATCH') {
        const target = this.store.target(def, id);
        if (isError(target))
          return target.statusCode === 'ENTITY_IS_DELETED' ? json(404, rowErrors([target])) : notFound();
        const result = this.save(def, jsonChanges(def, this.recordBody(body)), target);
        return result.ok ? { status: 204, wrote: true } : json(400, rowErrors(result.errors));
      }
      if (method === 'DELETE') {
        const result = this.store.remove(id, false, def);
        if (result.ok) {
          this.stats.writes++;
          return { status: 204, wrote: true };
        }
        return result.errors[0]?.statusCode === 'ENTITY_IS_DELETED'
          ? json(404, rowErrors(result.errors))
          : notFound();
      }
    }
    if (rest.length === 3) {
      const extField = this.externalField(def, rest[1] as string, true);
      const value = rest[2] as string;
      if (method === 'GET') {
        const found = this.store.matching(def, extField, value);
        if (found.length === 0) return notFound();
        if (found.length > 1)
          return json(
            300,
            found.map((r) => `/services/data/${API_VERSION}/sobjects/${def.name}/${String(r.Id)}`),
          );
        return json(200, this.present(def, found[0] as SfRecord));
      }
      if (method === 'PATCH') {
        const changes = jsonChanges(def, this.recordBody(body));
        const result = this.upsertOne(def, extField, value, changes);
        if (!result.ok) return json(400, rowErrors(result.errors));
        return json(
          result.created ? 201 : 200,
          { id: result.id, success: true, errors: [], created: result.created },
          true,
        );
      }
    }
    return json(405, [{ errorCode: 'METHOD_NOT_ALLOWED', message: `HTTP Method '${method}' not allowed.` }]);
  }

  private recordBody(body: string): Record<string, unknown> {
    const value = this.parseBody(body);
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new RequestError(400, 'JSON_PARSER_ERROR', 'Expected a JSON object for an sObject');
    return value as Record<string, unknown>;
  }

  /** The field an upsert matches on: an external id or idLookup field (Id when allowed). */
  private externalField(def: SObjectDef, name: string, allowId: boolean): FieldDef {
    const f = field(def, name);
    if (!f)
      throw new RequestError(
        404,
        'NOT_FOUND',
        `Provided external ID field does not exist or is not accessible: ${name}`,
      );
    if (f.name === 'Id' && !allowId)
      throw new RequestError(
        400,
        'INVALID_FIELD',
        'Only external ids are supported. Use a PATCH by Id to update by record id.',
      );
    if (!f.externalId && !f.idLookup)
      throw new RequestError(
        400,
        'INVALID_FIELD',
        `Field name provided, ${f.name} is not an External ID or indexed field for ${def.name}`,
      );
    return f;
  }

  private save(def: SObjectDef, changes: Changes, existing: SfRecord | undefined): WriteResult {
    const result = this.store.write(def, changes, existing, new Date());
    if (result.ok) this.stats.writes++;
    return result;
  }

  /** Upsert one record matched on `extField` = `value` (the value from the URL or the record). */
  private upsertOne(def: SObjectDef, extField: FieldDef, value: unknown, changes: Changes): WriteResult {
    if (value === undefined || value === null || value === '')
      return { ok: false, errors: [err('MISSING_ARGUMENT', `${extField.name} not specified`)] };
    const matches = this.store.matching(def, extField, String(value));
    if (matches.length > 1)
      return {
        ok: false,
        errors: [
          err(
            'DUPLICATE_EXTERNAL_ID',
            `More than 1 record found for external id field: ${matches.map((r) => String(r.Id)).join(', ')}`,
          ),
        ],
      };
    const existing = matches[0];
    if (!existing && extField.name === 'Id')
      return { ok: false, errors: [err('INVALID_CROSS_REFERENCE_KEY', 'invalid cross reference id')] };
    if (extField.name !== 'Id' && !changes.set.has(extField)) {
      const coerced = coerce(extField, String(value), 'csv');
      if (coerced.ok) changes.set.set(extField, coerced.value);
    }
    return this.save(def, changes, existing);
  }

  present(def: SObjectDef, record: SfRecord): Record<string, unknown> {
    return {
      attributes: {
        type: def.name,
        url: `/services/data/${API_VERSION}/sobjects/${def.name}/${String(record.Id)}`,
      },
      ...record,
    };
  }

  // --- sObject Collections -------------------------------------------------------------------------

  private collections(method: string, rest: string[], query: URLSearchParams, body: string): Reply {
    if (method === 'DELETE' && rest.length === 0) {
      const ids = (query.get('ids') ?? '').split(',').filter((id) => id !== '');
      if (ids.length === 0) throw new RequestError(400, 'MISSING_ARGUMENT', 'ids not specified');
      if (ids.length > 200) throw exceeded();
      const allOrNone = query.get('allOrNone') === 'true';
      const remove = (i: number): WriteResult => {
        const result = this.store.remove(ids[i] as string, false);
        if (result.ok) this.stats.writes++;
        return result;
      };
      return this.batch(allOrNone, ids.length, remove, (r) =>
        r.ok
          ? { id: r.id, success: true, errors: [] }
          : { id: r.id ?? null, success: false, errors: r.errors },
      );
    }
    const payload = this.parseBody(body) as { allOrNone?: unknown; records?: unknown };
    if (typeof payload !== 'object' || payload === null || !Array.isArray(payload.records))
      throw new RequestError(
        400,
        'JSON_PARSER_ERROR',
        'The request body must be an object with a records array',
      );
    const records = payload.records as unknown[];
    if (records.length > 200) throw exceeded();
    const allOrNone = payload.allOrNone === true;
    // Every record is read before any is saved: one unreadable value fails the whole request.
    const typed = records.map((raw) => {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
        throw new RequestError(400, 'JSON_PARSER_ERROR', 'Each record must be a JSON object');
      const record = raw as Record<string, unknown>;
      const type = (record.attributes as { type?: unknown } | undefined)?.type;
      if (typeof type !== 'string')
        throw new RequestError(
          400,
          'INVALID_TYPE',
          'In sObject Collections each record must have an attributes map with a type',
        );
      const def = sobject(type);
      if (!def) throw new RequestError(400, 'INVALID_TYPE', `sObject type '${type}' is not supported.`);
      return { def, record, changes: jsonChanges(def, record) };
    });
    if (method === 'POST' && rest.length === 0) {
      return this.batch(
        allOrNone,
        typed.length,
        (i) => {
          const { def, changes } = typed[i] as (typeof typed)[number];
          return this.save(def, changes, undefined);
        },
        saveResult,
      );
    }
    if (method === 'PATCH' && rest.length === 0) {
      return this.batch(
        allOrNone,
        typed.length,
        (i) => {
          const { def, record, changes } = typed[i] as (typeof typed)[number];
          const target = this.store.target(def, record.Id);
          if (isError(target))
            return { ok: false, ...(record.Id ? { id: String(record.Id) } : {}), errors: [target] };
          return this.save(def, changes, target);
        },
        saveResult,
      );
    }
    if (method === 'PATCH' && rest.length === 2) {
      const def = this.def(rest[0] as string);
      const extField = this.externalField(def, rest[1] as string, false);
      for (const t of typed)
        if (t.def !== def)
          throw new RequestError(
            400,
            'INVALID_TYPE',
            `Records must all be of type ${def.name} (found ${t.def.name})`,
          );
      const counts = new Map<string, number>();
      for (const t of typed) {
        const v = t.record[extField.name];
        if (v !== undefined && v !== null && v !== '')
          counts.set(String(v).toLowerCase(), (counts.get(String(v).toLowerCase()) ?? 0) + 1);
      }
      return this.batch(
        allOrNone,
        typed.length,
        (i) => {
          const { record, changes } = typed[i] as (typeof typed)[number];
          const value = record[extField.name];
          if (value !== undefined && value !== null && (counts.get(String(value).toLowerCase()) ?? 0) > 1)
            return {
              ok: false,
              errors: [
                err('DUPLICATE_EXTERNAL_ID', `Duplicate external id specified: ${String(value)}`, [
                  extField.name,
                ]),
              ],
            };
          return this.upsertOne(def, extField, value, changes);
        },
        (r) =>
          r.ok
            ? { id: r.id, success: true, errors: [], created: r.created }
            : { ...saveResult(r), created: false },
      );
    }
    return json(405, [{ errorCode: 'METHOD_NOT_ALLOWED', message: `HTTP Method '${method}' not allowed.` }]);
  }

  /** Run n writes in order; with allOrNone, any failure rolls every write back. */
  private batch(
    allOrNone: boolean,
    n: number,
    one: (i: number) => WriteResult,
    present: (r: WriteResult) => Record<string, unknown>,
  ): Reply {
    const snapshot = allOrNone ? this.store.snapshot() : undefined;
    const writesBefore = this.stats.writes;
    const results: WriteResult[] = [];
    for (let i = 0; i < n; i++) results.push(one(i));
    if (snapshot && results.some((r) => !r.ok)) {
      this.store.restore(snapshot);
      this.stats.writes = writesBefore;
      const rolledBack = err(
        'ALL_OR_NONE_OPERATION_ROLLED_BACK',
        'Record rolled back because not all records were valid and the request was using AllOrNone header',
      );
      return json(
        200,
        results.map((r) => (r.ok ? { id: null, success: false, errors: [rolledBack] } : present(r))),
      );
    }
    return json(
      200,
      results.map(present),
      results.some((r) => r.ok),
    );
  }

  // --- Bulk API 2.0 ingest -------------------------------------------------------------------------

  private bulk(
    method: string,
    rest: string[],
    query: URLSearchParams,
    body: string,
    headers: IncomingMessage['headers'],
  ): Reply {
    if (rest.length === 0 && method === 'POST') return this.createJob(body);
    if (rest.length === 0 && method === 'GET')
      return json(200, {
        done: true,
        records: [...this.jobs.values()].map((j) => this.jobInfo(j, false)),
        nextRecordsUrl: null,
      });
    const job = this.jobs.get(rest[0] ?? '');
    if (!job)
      return json(404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
    if (rest.length === 1) {
      if (method === 'GET') return json(200, this.jobInfo(job, true));
      if (method === 'DELETE') {
        if (['Open', 'UploadComplete', 'InProgress'].includes(job.state))
          throw new RequestError(
            400,
            'INVALIDJOBSTATE',
            'The job must be closed, aborted or completed to be deleted.',
          );
        this.jobs.delete(job.id);
        return { status: 204 };
      }
      if (method === 'PATCH') return this.changeJobState(job, body);
    }
    if (rest.length === 2 && rest[1] === 'batches' && method === 'PUT') {
      if (job.state !== 'Open')
        throw new RequestError(
          409,
          'INVALIDJOBSTATE',
          `Job ${job.id} is not Open (state ${job.state}): data can only be uploaded to an open job.`,
        );
      if (job.csv !== undefined)
        throw new RequestError(
          400,
          'INVALIDJOBSTATE',
          `Found multiple contents for job: <${job.id}>, please 'Close' / 'Abort' / 'Delete' the current Job then create a new Job and make sure the content is only 'PUT' once for a given Job.`,
        );
      const type = String(headers['content-type'] ?? '');
      if (!type.startsWith('text/csv'))
        throw new RequestError(
          400,
          'INVALIDCONTENTTYPE',
          `Content type ${type || '(none)'} is not supported; use text/csv.`,
        );
      job.csv = body;
      job.systemModstamp = stamp();
      return { status: 201 };
    }
    if (rest.length === 2 && method === 'GET') {
      const kind = rest[1];
      const page = (sf: string[], rows: string[][]): Reply => this.resultPage(job, sf, rows, query);
      if (kind === 'successfulResults') return page(['sf__Id', 'sf__Created'], job.successful);
      if (kind === 'failedResults') return page(['sf__Id', 'sf__Error'], job.failed);
      if (kind === 'unprocessedrecords') return page([], job.unprocessed);
    }
    return json(405, [{ errorCode: 'METHOD_NOT_ALLOWED', message: `HTTP Method '${method}' not allowed.` }]);
  }

  private resultPage(job: Job, sf: string[], rows: string[][], query: URLSearchParams): Reply {
    const start = Number(
      query.get('locator') ? Buffer.from(query.get('locator') as string, 'base64url').toString() : '0',
    );
    const max = Number(query.get('maxRecords') ?? '0');
    const end = max > 0 ? Math.min(rows.length, start + max) : rows.length;
    const locator = end < rows.length ? Buffer.from(String(end)).toString('base64url') : 'null';
    return {
      status: 200,
      text: writeResultCsv(sf, job.headers, rows.slice(start, end)),
      headers: {
        'content-type': 'text/csv',
        'sforce-locator': locator,
        'sforce-numberofrecords': String(end - start),
      },
    };
  }

  private createJob(body: string): Reply {
    const spec = this.recordBody(body);
    const object = typeof spec.object === 'string' ? spec.object : '';
    const def = sobject(object);
    if (!def)
      throw new RequestError(400, 'INVALIDENTITY', `Entity '${object}' is not supported by the Bulk API.`);
    const operation = spec.operation;
    if (!['insert', 'update', 'upsert', 'delete', 'hardDelete'].includes(String(operation)))
      throw new RequestError(400, 'INVALIDJOB', `InvalidJob : Invalid operation: ${String(operation)}`);
    let externalIdFieldName: string | undefined;
    if (operation === 'upsert') {
      if (typeof spec.externalIdFieldName !== 'string' || spec.externalIdFieldName === '')
        throw new RequestError(
          400,
          'INVALIDJOB',
          `InvalidJob : External ID was blank for ${def.name}. An External ID must be specified for upsert.`,
        );
      externalIdFieldName = this.externalField(def, spec.externalIdFieldName, true).name;
    }
    if (spec.contentType !== undefined && spec.contentType !== 'CSV')
      throw new RequestError(
        400,
        'INVALIDJOB',
        `InvalidJob : Unsupported content type: ${String(spec.contentType)}`,
      );
    const lineEnding = spec.lineEnding ?? 'LF';
    if (lineEnding !== 'LF' && lineEnding !== 'CRLF')
      throw new RequestError(400, 'INVALIDJOB', `InvalidJob : Invalid line ending: ${String(lineEnding)}`);
    const columnDelimiter = String(spec.columnDelimiter ?? 'COMMA');
    if (!DELIMITERS[columnDelimiter])
      throw new RequestError(400, 'INVALIDJOB', `InvalidJob : Invalid column delimiter: ${columnDelimiter}`);
    const now = stamp();
    const job: Job = {
      id: makeId('750', ++this.jobCounter),
      def,
      operation: operation as Job['operation'],
      ...(externalIdFieldName ? { externalIdFieldName } : {}),
      lineEnding,
      columnDelimiter,
      state: 'Open',
      createdDate: now,
      systemModstamp: now,
      headers: [],
      rows: [],
      successful: [],
      failed: [],
      unprocessed: [],
      processed: 0,
      failedCount: 0,
    };
    this.jobs.set(job.id, job);
    return json(200, this.jobInfo(job, false));
  }

  private jobInfo(job: Job, full: boolean): Record<string, unknown> {
    const info: Record<string, unknown> = {
      id: job.id,
      operation: job.operation,
      object: job.def.name,
      createdById: this.userId(this.users[0] ?? ''),
      createdDate: job.createdDate,
      systemModstamp: job.systemModstamp,
      state: job.state,
      ...(job.externalIdFieldName ? { externalIdFieldName: job.externalIdFieldName } : {}),
      concurrencyMode: 'Parallel',
      contentType: 'CSV',
      apiVersion: Number(API_VERSION_NUMBER),
      jobType: 'V2Ingest',
      ...(job.state === 'Open'
        ? { contentUrl: `services/data/${API_VERSION}/jobs/ingest/${job.id}/batches` }
        : {}),
      lineEnding: job.lineEnding,
      columnDelimiter: job.columnDelimiter,
    };
    if (!full) return info;
    const time = job.startedAt !== undefined ? (job.finishedAt ?? Date.now()) - job.startedAt : 0;
    return {
      ...info,
      numberRecordsProcessed: job.processed,
      numberRecordsFailed: job.failedCount,
      retries: 0,
      totalProcessingTime: time,
      apiActiveProcessingTime: time,
      apexProcessingTime: 0,
      ...(job.errorMessage !== undefined ? { errorMessage: job.errorMessage } : {}),
    };
  }

  private changeJobState(job: Job, body: string): Reply {
    const { state } = this.recordBody(body);
    if (state === 'UploadComplete') {
      if (job.state !== 'Open')
        throw new RequestError(
          409,
          'INVALIDJOBSTATE',
          `Job ${job.id} is ${job.state}: only an Open job can be closed.`,
        );
      job.state = 'UploadComplete';
      job.systemModstamp = stamp();
      this.later(() => {
        if (job.state !== 'UploadComplete') return;
        job.state = 'InProgress';
        job.startedAt = Date.now();
        job.systemModstamp = stamp();
        this.later(() => this.process(job));
      });
      return json(200, this.jobInfo(job, false));
    }
    if (state === 'Aborted') {
      if (!['Open', 'UploadComplete', 'InProgress'].includes(job.state))
        throw new RequestError(
          409,
          'INVALIDJOBSTATE',
          `Job ${job.id} is ${job.state}: it can no longer be aborted.`,
        );
      job.state = 'Aborted';
      job.systemModstamp = stamp();
      this.unprocessAll(job);
      this.wake();
      return json(200, this.jobInfo(job, false));
    }
    throw new RequestError(400, 'INVALIDJOBSTATE', `Invalid state transition to ${String(state)}`);
  }

  private later(fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, this.bulkDelayMs);
    this.timers.add(timer);
  }

  private unprocessAll(job: Job): void {
    if (job.csv === undefined) return;
    const parsed = parseCsv(job.csv, DELIMITERS[job.columnDelimiter]);
    job.headers = parsed.rows[0] ?? [];
    job.unprocessed = parsed.rows.slice(1).filter((r) => !(r.length === 1 && r[0] === ''));
  }

  private fail(job: Job, message: string): void {
    job.state = 'Failed';
    job.errorMessage = message;
    job.finishedAt = Date.now();
    job.systemModstamp = stamp();
  }

  /** Process an InProgress job's rows (every row gets a result), then shuffle the results. */
  private process(job: Job): void {
    if (job.state !== 'InProgress') return;
    try {
      if (job.csv === undefined || job.csv.trim() === '') {
        this.fail(job, 'InvalidBatch : No data was uploaded for this job');
        return;
      }
      const parsed = parseCsv(job.csv, DELIMITERS[job.columnDelimiter]);
      job.headers = parsed.rows[0] ?? [];
      job.rows = parsed.rows.slice(1).filter((r) => !(r.length === 1 && r[0] === ''));
      const wrong = job.lineEnding === 'LF' ? 'CRLF' : 'LF';
      if (parsed.terminators.has(wrong)) {
        job.unprocessed = job.rows;
        this.fail(
          job,
          `ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is ${job.lineEnding}`,
        );
        return;
      }
      const columns = this.columns(job);
      if (typeof columns === 'string') {
        job.unprocessed = job.rows;
        this.fail(job, columns);
        return;
      }
      const stopAt = this.roll('bulkJobFailed') ? Math.floor(job.rows.length / 2) : undefined;
      const keyCounts = this.keyCounts(job, columns);
      job.rows.forEach((row, index) => {
        if (stopAt !== undefined && index >= stopAt) {
          job.unprocessed.push(row);
          return;
        }
        const result = this.bulkRow(job, columns, row, keyCounts);
        job.processed++;
        if (result.ok) job.successful.push([result.id, String(result.created), ...row]);
        else {
          job.failedCount++;
          job.failed.push([result.id ?? '', bulkError(result.errors), ...row]);
        }
      });
      const random = lcg(this.seed * 7919 + this.jobCounter + job.rows.length);
      shuffle(job.successful, random);
      shuffle(job.failed, random);
      if (stopAt !== undefined) {
        this.fail(
          job,
          'InternalServerError : Job processing failed; the remaining records were not processed',
        );
        return;
      }
      job.state = 'JobComplete';
      job.finishedAt = Date.now();
      job.systemModstamp = stamp();
    } finally {
      this.wake();
    }
  }

  /** What each CSV column sets, or the message of a job that fails on its header. */
  private columns(job: Job): Column[] | string {
    const def = job.def;
    const columns: Column[] = [];
    for (const header of job.headers) {
      const dot = header.indexOf('.');
      if (dot > 0) {
        const ref = def.fields.find(
          (f) => f.relationshipName?.toLowerCase() === header.slice(0, dot).toLowerCase(),
        );
        const parent = sobject(ref?.referenceTo?.[0] ?? '');
        const parentField = parent ? field(parent, header.slice(dot + 1)) : undefined;
        if (!ref || !parent || !parentField) return `InvalidBatch : Field name not found : ${header}`;
        columns.push({ kind: 'lookup', ref, parent, parentField });
        continue;
      }
      const f = field(def, header);
      if (!f) return `InvalidBatch : Field name not found : ${header}`;
      columns.push({ kind: 'field', field: f });
    }
    const has = (name: string): boolean => columns.some((c) => c.kind === 'field' && c.field.name === name);
    if (['update', 'delete', 'hardDelete'].includes(job.operation) && !has('Id'))
      return `InvalidBatch : Field name not found : Id`;
    if (job.operation === 'upsert' && !has(job.externalIdFieldName as string))
      return `InvalidBatch : Field name not found : ${job.externalIdFieldName as string}`;
    return columns;
  }

  private keyCounts(job: Job, columns: Column[]): Map<string, number> {
    const counts = new Map<string, number>();
    if (job.operation !== 'upsert') return counts;
    const index = columns.findIndex((c) => c.kind === 'field' && c.field.name === job.externalIdFieldName);
    for (const row of job.rows) {
      const v = (row[index] ?? '').toLowerCase();
      if (v !== '') counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    return counts;
  }

  private bulkRow(job: Job, columns: Column[], row: string[], keyCounts: Map<string, number>): WriteResult {
    const def = job.def;
    const idIndex = columns.findIndex((c) => c.kind === 'field' && c.field.name === 'Id');
    const id = idIndex >= 0 ? (row[idIndex] ?? '') : '';
    if (row.length !== columns.length)
      return {
        ok: false,
        errors: [err('INVALID_FIELD', `Row has ${row.length} columns, the header ${columns.length}`)],
      };
    if (job.operation === 'delete' || job.operation === 'hardDelete') {
      const result = this.store.remove(id, job.operation === 'hardDelete', def);
      if (result.ok) this.stats.writes++;
      return result;
    }
    const changes = emptyChanges();
    columns.forEach((column, i) => {
      const cell = row[i] ?? '';
      if (cell === '') return; // an empty cell leaves the field as it is
      const raw = cell === '#N/A' ? null : cell;
      if (column.kind === 'lookup') {
        if (raw === null) changes.set.set(column.ref, null);
        else {
          const lookup = lookupOf(def, column.ref, column.parent, column.parentField.name, raw);
          if ('statusCode' in lookup) changes.errors.push(lookup);
          else changes.lookups.push(lookup);
        }
        return;
      }
      if (column.field.name === 'Id' && job.operation !== 'insert') return;
      const value = coerce(column.field, raw, 'csv');
      if (value.ok) changes.set.set(column.field, value.value);
      else if ('error' in value) changes.errors.push(value.error);
    });
    if (job.operation === 'insert') return this.save(def, changes, undefined);
    if (job.operation === 'update') {
      const target = this.store.target(def, id);
      if (isError(target)) return { ok: false, ...(id ? { id } : {}), errors: [target] };
      return this.save(def, changes, target);
    }
    const extField = field(def, job.externalIdFieldName as string) as FieldDef;
    const index = columns.findIndex((c) => c.kind === 'field' && c.field.name === extField.name);
    const value = row[index] ?? '';
    if (value !== '' && (keyCounts.get(value.toLowerCase()) ?? 0) > 1)
      return {
        ok: false,
        errors: [err('DUPLICATE_EXTERNAL_ID', `Duplicate external id specified: ${value}`, [extField.name])],
      };
    return this.upsertOne(def, extField, value, changes);
  }

  settled(): Promise<void> {
    const busy = (): boolean =>
      [...this.jobs.values()].some((j) => j.state === 'UploadComplete' || j.state === 'InProgress');
    if (!busy()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (busy()) this.waiters.push(check);
        else resolve();
      };
      this.waiters.push(check);
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  summary(job: Job): BulkJobInfo {
    return {
      id: job.id,
      operation: job.operation,
      object: job.def.name,
      state: job.state,
      ...(job.externalIdFieldName ? { externalIdFieldName: job.externalIdFieldName } : {}),
      numberRecordsProcessed: job.processed,
      numberRecordsFailed: job.failedCount,
      ...(job.errorMessage !== undefined ? { errorMessage: job.errorMessage } : {}),
      rows: job.rows.length || job.unprocessed.length,
      unprocessed: job.unprocessed.length,
    };
  }
}

type Column =
  | { kind: 'field'; field: FieldDef }
  | { kind: 'lookup'; ref: FieldDef; parent: SObjectDef; parentField: FieldDef };

const exceeded = (): RequestError =>
  new RequestError(
    400,
    'EXCEEDED_ID_LIMIT',
    'record limit reached. cannot submit more than 200 records into this call',
  );

const notFound = (): Reply =>
  json(404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);

/** Errors of a single-record request: `[{message, errorCode, fields}]`. */
const rowErrors = (errors: SfError[]): Array<Record<string, unknown>> =>
  errors.map((e) => ({ message: e.message, errorCode: e.statusCode, fields: e.fields }));

function saveResult(r: WriteResult): Record<string, unknown> {
  if (r.ok) return { id: r.id, success: true, errors: [] };
  return { ...(r.id ? { id: r.id } : {}), success: false, errors: r.errors };
}

/** sf__Error as Bulk API 2.0 writes it: STATUS_CODE:message:Field1,Field2 -- */
function bulkError(errors: SfError[]): string {
  return errors.map((e) => `${e.statusCode}:${e.message}:${e.fields.join(',')} --`).join(' ');
}

function shuffle<T>(items: T[], random: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
}

function send(res: ServerResponse, reply: Reply): void {
  if (reply.text !== undefined) {
    res.writeHead(reply.status, { 'content-type': 'text/csv', ...reply.headers });
    res.end(reply.text);
    return;
  }
  if (reply.body === undefined) {
    res.writeHead(reply.status, reply.headers ?? {});
    res.end();
    return;
  }
  res.writeHead(reply.status, { 'content-type': 'application/json;charset=UTF-8', ...reply.headers });
  res.end(JSON.stringify(reply.body));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startSalesforceEmulator(
  options: SalesforceEmulatorOptions = {},
): Promise<SalesforceEmulator> {
  const emulator = new Emulator(options);
  const server: Server = createServer((req, res) => {
    emulator.handle(req, res).catch((error: unknown) => {
      if (!res.headersSent)
        send(res, json(500, [{ errorCode: 'UNKNOWN_EXCEPTION', message: String(error) }]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  emulator.url = `http://127.0.0.1:${port}`;
  const defOf = (name: string): SObjectDef => {
    const def = sobject(name);
    if (!def) throw new Error(`no sObject ${name}`);
    return def;
  };
  return {
    url: emulator.url,
    tokenUrl: `${emulator.url}/services/oauth2/token`,
    loginUrl: emulator.loginUrl,
    consumerKey: emulator.consumerKey,
    consumerSecret: emulator.consumerSecret,
    users: [...emulator.users],
    keyPair: emulator.keyPair,
    records: (name) =>
      [...emulator.store.table(defOf(name)).values()].filter((r) => !r.IsDeleted).map((r) => ({ ...r })),
    deletedRecords: (name) =>
      [...emulator.store.table(defOf(name)).values()].filter((r) => r.IsDeleted).map((r) => ({ ...r })),
    insertRecord: (name, values) => {
      const def = defOf(name);
      const result = emulator.store.write(def, jsonChanges(def, values), undefined, new Date());
      if (!result.ok) throw new Error(`insertRecord ${name}: ${bulkError(result.errors)}`);
      return result.id;
    },
    deleteRecord: (id, opts) => {
      const result = emulator.store.remove(id, opts?.hard ?? false);
      if (!result.ok) throw new Error(`deleteRecord ${id}: ${bulkError(result.errors)}`);
    },
    editRecord: (id, values) => {
      const found = emulator.store.find(id);
      if (!found) throw new Error(`editRecord: no record ${id}`);
      emulator.store.put(found.def, { ...found.record, ...values }, found.record.Id as string);
    },
    requests: () => emulator.log.map((e) => ({ ...e })),
    jobs: () => [...emulator.jobs.values()].map((j) => emulator.summary(j)),
    stats: () => ({ ...emulator.stats, faults: { ...emulator.stats.faults } }),
    expireTokens: () => {
      for (const session of emulator.sessions.values()) session.expiresAt = 0;
    },
    issueRefreshToken: (username) => emulator.issueRefreshToken(username ?? emulator.users[0] ?? ''),
    setFaults: (faults) => {
      emulator.faults = { ...NO_FAULTS, ...faults };
    },
    setDailyApiLimit: (limit) => {
      emulator.stats.apiLimit = limit;
    },
    setApiUsage: (usage) => {
      emulator.stats.apiUsage = usage;
    },
    settled: () => emulator.settled(),
    close: async () => {
      for (const timer of emulator.timers) clearTimeout(timer);
      emulator.timers.clear();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
