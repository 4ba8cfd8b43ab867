// A stateful HubSpot CRM emulator: a real HTTP server (node:http, 127.0.0.1) that answers the CRM objects
// v3 batch endpoints, associations v4, properties v3, custom object schemas and the OAuth refresh-token
// grant with HubSpot's documented shapes, behind bearer-token auth and HubSpot's rate limits (headers,
// 429 bodies, Retry-After), with seeded faults. Every request body is checked against the zod schemas of
// schemas.ts; a body that does not match is answered with HubSpot's 400 and counted as a contract violation.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { z } from 'zod';
import {
  checkValue,
  customObjectType,
  isReadOnly,
  standardObjectTypes,
  type CustomObjectDefinition,
  type InvalidValue,
  type ObjectTypeDefinition,
  type PropertyDefinition,
} from './properties.ts';
import {
  AssociationBatchArchiveBody,
  AssociationBatchCreateBody,
  AssociationBatchDefaultBody,
  AssociationBatchReadBody,
  BatchArchiveBody,
  BatchCreateBody,
  BatchReadBody,
  BatchUpdateBody,
  BatchUpsertBody,
  PropertyCreateBody,
  TokenRequest,
} from './schemas.ts';

export type { CustomObjectDefinition, PropertyDefinition } from './properties.ts';

/** Probabilities (0..1) per authenticated request of each fault kind. */
export interface FaultRates {
  /** A 500, 502, 503 or 504 before anything is applied. */
  unavailable: number;
  /** The answer waits `slowMs` (default 200–1,000 ms). */
  slow: number;
  /** The request is applied, then the connection is destroyed: the client sees a reset, no answer. */
  appliedThenReset: number;
  /** The request is applied, but the answer is a 502 (a proxy failing after the commit). */
  appliedThen5xx: number;
}
export type FaultKind = keyof FaultRates;
export const NO_FAULTS: FaultRates = { unavailable: 0, slow: 0, appliedThenReset: 0, appliedThen5xx: 0 };

export interface RateLimitConfig {
  /** Requests per interval (X-HubSpot-RateLimit-Max); default 100 (a private app on a free portal). */
  max: number;
  /** The rolling interval (X-HubSpot-RateLimit-Interval-Milliseconds); default 10,000. */
  intervalMs: number;
  /** Requests per day (X-HubSpot-RateLimit-Daily); null: no daily limit (OAuth apps); default 250,000. */
  daily: number | null;
  /** Requests per second (X-HubSpot-RateLimit-Secondly); null: no secondly limit (default). */
  secondly: number | null;
}
export type RateLimitPolicy = 'TEN_SECONDLY_ROLLING' | 'SECONDLY' | 'DAILY';

export interface OAuthClient {
  clientId: string;
  clientSecret: string;
  refreshToken: string;
  /** expires_in of the access tokens issued (default 1,800 s). */
  accessTokenTtlSeconds?: number;
}

export interface HubSpotEmulatorOptions {
  /** Seed of the fault generator and of the result order (default 1). */
  seed?: number;
  faults?: Partial<FaultRates>;
  /** Delay range of a `slow` fault, in ms (default [200, 1000]). */
  slowMs?: [number, number];
  /** Static access tokens (private apps) accepted; default ['pat-test-token']. */
  tokens?: string[];
  oauth?: OAuthClient;
  rateLimit?: Partial<RateLimitConfig>;
  portalId?: number;
  customObjects?: CustomObjectDefinition[];
  /** Make companies' `domain` a unique property (hasUniqueValue: true; usable as idProperty). */
  uniqueCompanyDomain?: boolean;
  /** Answer batch results in a seeded shuffled order, as HubSpot does not promise input order (default true). */
  shuffleResults?: boolean;
  /** The clock (ms); default Date.now. */
  clock?: () => number;
}

export interface Violation {
  method: string;
  path: string;
  message: string;
  issues: string[];
  body: string;
}

export interface RequestRecord {
  method: string;
  /** Path and query string. */
  path: string;
  status: number;
  /** The parsed JSON body (or the raw text when it is no JSON). */
  body: unknown;
  at: number;
  policyName?: RateLimitPolicy;
  fault?: FaultKind;
}

export interface HubSpotStats {
  requests: number;
  byStatus: Record<string, number>;
  rateLimited: Record<RateLimitPolicy, number>;
  unauthorized: { INVALID_AUTHENTICATION: number; EXPIRED_AUTHENTICATION: number };
  violations: number;
  faults: Record<FaultKind, number>;
  tokenRefreshes: number;
  created: number;
  updated: number;
  archived: number;
}

/** A record as the tests read it: properties as HubSpot stores them (strings). */
export interface EmulatedRecord {
  id: string;
  properties: Record<string, string>;
  createdAt: string;
  updatedAt: string;
  archived: boolean;
  archivedAt?: string;
}

export interface EmulatedAssociation {
  fromObjectType: string;
  fromId: string;
  toObjectType: string;
  toId: string;
  types: { category: string; typeId: number; label: string | null }[];
}

export interface HubSpotEmulator {
  /** http://127.0.0.1:PORT — the base URL, in place of https://api.hubapi.com */
  url: string;
  portalId: number;
  /** The default static token. */
  token: string;
  /** Live records of a type (contacts, 0-1, a custom name…), sorted by id; archived ones on request. */
  records(objectType: string, options?: { includeArchived?: boolean }): EmulatedRecord[];
  record(objectType: string, id: string): EmulatedRecord | undefined;
  /** Associations between live records, from one type (and record) to another, with their types. */
  associations(fromObjectType: string, toObjectType: string, fromId?: string): EmulatedAssociation[];
  requests(): RequestRecord[];
  stats(): HubSpotStats;
  violations(): Violation[];
  /** Create a record directly (arranging a test); returns its id. Values are checked as the API does. */
  createRecord(objectType: string, properties: Record<string, string>): string;
  /** Delete a record behind the connector's back, as a person in HubSpot does (it becomes archived). */
  deleteRecord(objectType: string, id: string): boolean;
  addProperty(objectType: string, definition: PropertyDefinition): void;
  addToken(token: string): void;
  /** Mark a token expired: requests with it get 401 EXPIRED_AUTHENTICATION. */
  expireToken(token: string): void;
  setRateLimit(limits: Partial<RateLimitConfig>): void;
  resetDailyQuota(): void;
  setFaults(faults: Partial<FaultRates>): void;
  /** Force a fault on the next `count` authenticated requests (deterministic, besides the rates). */
  injectFault(kind: FaultKind, count?: number): void;
  close(): Promise<void>;
}

/** A small LCG, so that a failing run can be replayed from its seed. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface StoredRecord {
  id: string;
  properties: Record<string, string>;
  createdAt: number;
  updatedAt: number;
  archived: boolean;
  archivedAt?: number;
}

interface AssociationType {
  from: string;
  to: string;
  typeId: number;
  category: 'HUBSPOT_DEFINED' | 'USER_DEFINED';
  label: string | null;
  inverse: number;
  isDefault: boolean;
}

interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Whether the request changed state (faults after the commit apply only then). */
  applied?: boolean;
}

class HttpError {
  readonly answer: Answer;
  constructor(answer: Answer) {
    this.answer = answer;
  }
}

const SECOND = 1000;

/** The standard association types: [from, to, typeId, label, inverse, default]. */
const STANDARD_ASSOCIATIONS: [string, string, number, string | null, number, boolean][] = [
  ['contacts', 'companies', 279, null, 280, true],
  ['contacts', 'companies', 1, 'Primary', 2, false],
  ['companies', 'contacts', 280, null, 279, true],
  ['companies', 'contacts', 2, 'Primary', 1, false],
  ['deals', 'contacts', 3, null, 4, true],
  ['contacts', 'deals', 4, null, 3, true],
  ['deals', 'companies', 341, null, 342, true],
  ['deals', 'companies', 5, 'Primary', 6, false],
  ['companies', 'deals', 342, null, 341, true],
  ['companies', 'deals', 6, 'Primary', 5, false],
  ['tickets', 'contacts', 16, null, 15, true],
  ['contacts', 'tickets', 15, null, 16, true],
  ['tickets', 'companies', 339, null, 340, true],
  ['tickets', 'companies', 26, 'Primary', 25, false],
  ['companies', 'tickets', 340, null, 339, true],
  ['companies', 'tickets', 25, 'Primary', 26, false],
  ['deals', 'tickets', 27, null, 28, true],
  ['tickets', 'deals', 28, null, 27, true],
];

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function errorBody(
  category: string,
  message: string,
  extra: { context?: Record<string, string[]>; errors?: unknown[]; subCategory?: string } = {},
): Record<string, unknown> {
  return { status: 'error', message, correlationId: randomUUID(), category, ...extra };
}

function standardError(
  category: string,
  message: string,
  context: Record<string, string[]>,
  errors: unknown[] = [],
  subCategory?: string,
): Record<string, unknown> {
  return {
    status: 'error',
    category,
    message,
    context,
    errors,
    links: {},
    ...(subCategory ? { subCategory } : {}),
  };
}

function invalidMessage(list: InvalidValue[]): string {
  return `Property values were not valid: ${JSON.stringify(list)}`;
}

function validationError(
  message: string,
  errors: unknown[] = [],
  context?: Record<string, string[]>,
): HttpError {
  return new HttpError({
    status: 400,
    body: errorBody('VALIDATION_ERROR', message, { errors, ...(context ? { context } : {}) }),
  });
}

class Emulator {
  readonly types: ObjectTypeDefinition[] = [];
  readonly stores = new Map<string, Map<string, StoredRecord>>();
  /** type -> unique property -> value -> record id (live records only). */
  readonly unique = new Map<string, Map<string, Map<string, string>>>();
  /** `${fromType}|${fromId}|${toType}` -> toId -> typeId -> association type. */
  readonly edges = new Map<string, Map<string, Map<number, AssociationType>>>();
  readonly associationTypes: AssociationType[] = [];
  readonly tokens = new Map<string, { expiresAt: number | null; expired: boolean }>();
  readonly requestLog: RequestRecord[] = [];
  readonly violationLog: Violation[] = [];
  readonly stats: HubSpotStats = {
    requests: 0,
    byStatus: {},
    rateLimited: { TEN_SECONDLY_ROLLING: 0, SECONDLY: 0, DAILY: 0 },
    unauthorized: { INVALID_AUTHENTICATION: 0, EXPIRED_AUTHENTICATION: 0 },
    violations: 0,
    faults: { ...NO_FAULTS },
    tokenRefreshes: 0,
    created: 0,
    updated: 0,
    archived: 0,
  };
  limits: RateLimitConfig;
  faults: FaultRates;
  readonly forced: FaultKind[] = [];
  private intervalHits: number[] = [];
  private secondHits: number[] = [];
  private dailyUsed = 0;
  private nextId = 1001;
  private issuedTokens = 0;
  private readonly random: () => number;
  readonly clock: () => number;
  readonly portalId: number;
  private readonly options: HubSpotEmulatorOptions;

  constructor(options: HubSpotEmulatorOptions) {
    this.options = options;
    this.random = lcg(options.seed ?? 1);
    this.clock = options.clock ?? Date.now;
    this.portalId = options.portalId ?? 12345678;
    this.faults = { ...NO_FAULTS, ...options.faults };
    this.limits = { max: 100, intervalMs: 10_000, daily: 250_000, secondly: null, ...options.rateLimit };
    for (const token of options.tokens ?? ['pat-test-token'])
      this.tokens.set(token, { expiresAt: null, expired: false });
    for (const type of standardObjectTypes({ uniqueCompanyDomain: options.uniqueCompanyDomain }))
      this.addType(type);
    for (const [from, to, typeId, label, inverse, isDefault] of STANDARD_ASSOCIATIONS)
      this.associationTypes.push({
        from,
        to,
        typeId,
        label,
        inverse,
        isDefault,
        category: 'HUBSPOT_DEFINED',
      });
    (options.customObjects ?? []).forEach((def, index) => {
      const type = customObjectType(def, this.portalId, index);
      this.addType(type);
      (def.associatedObjects ?? ['contacts', 'companies']).forEach((other, j) => {
        const forward = 1000 + index * 20 + j * 2 + 1;
        const back = forward + 1;
        const base = { category: 'HUBSPOT_DEFINED' as const, label: null, isDefault: true };
        this.associationTypes.push({ ...base, from: type.name, to: other, typeId: forward, inverse: back });
        this.associationTypes.push({ ...base, from: other, to: type.name, typeId: back, inverse: forward });
      });
    });
  }

  private addType(type: ObjectTypeDefinition): void {
    this.types.push(type);
    this.stores.set(type.name, new Map());
    this.unique.set(type.name, new Map());
  }

  type(name: string): ObjectTypeDefinition {
    const lower = name.toLowerCase();
    const type = this.types.find((t) => t.aliases.some((a) => a.toLowerCase() === lower));
    if (!type) throw validationError(`Unable to infer object type from: ${name}`);
    return type;
  }

  uniqueProperties(type: ObjectTypeDefinition): string[] {
    const names = [...type.properties.values()].filter((p) => p.hasUniqueValue).map((p) => p.name);
    return [...new Set([...type.implicitUnique, ...names])];
  }

  private store(type: ObjectTypeDefinition): Map<string, StoredRecord> {
    return this.stores.get(type.name) as Map<string, StoredRecord>;
  }

  private index(type: ObjectTypeDefinition, property: string): Map<string, string> {
    const byProp = this.unique.get(type.name) as Map<string, Map<string, string>>;
    let index = byProp.get(property);
    if (!index) {
      index = new Map();
      byProp.set(property, index);
      for (const record of this.store(type).values()) {
        const value = record.properties[property];
        if (!record.archived && value) index.set(value, record.id);
      }
    }
    return index;
  }

  // ---- the request pipeline ----

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw = '';
    for await (const chunk of req) raw += String(chunk);
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://x');
    this.stats.requests++;
    const entry: RequestRecord = {
      method,
      path: url.pathname + url.search,
      status: 0,
      body: parseLoose(raw),
      at: this.clock(),
    };
    this.requestLog.push(entry);
    const finish = (answer: Answer, headers: Record<string, string> = {}): void => {
      entry.status = answer.status;
      this.stats.byStatus[answer.status] = (this.stats.byStatus[answer.status] ?? 0) + 1;
      send(res, answer.status, answer.body, { ...headers, ...answer.headers });
    };

    if (url.pathname === '/oauth/v1/token' && method === 'POST') {
      finish(this.tryRun(() => this.token(req, raw, method, url.pathname)));
      return;
    }
    const auth = this.authenticate(req.headers.authorization);
    if (auth) {
      finish(auth, this.rateHeaders());
      return;
    }
    const limited = this.consumeRate();
    if (limited) {
      entry.policyName = limited.policy;
      finish(limited.answer, this.rateHeaders());
      return;
    }
    const headers = this.rateHeaders();
    const fault = this.drawFault();
    if (fault) entry.fault = fault;
    if (fault === 'unavailable') {
      const status = [500, 502, 503, 504][Math.floor(this.random() * 4)] ?? 503;
      finish({ status, body: errorBody('INTERNAL_ERROR', 'internal error') }, headers);
      return;
    }
    if (fault === 'slow') {
      const [min, max] = this.options.slowMs ?? [200, 1000];
      await sleep(min + Math.floor(this.random() * (max - min)));
    }
    const answer = this.tryRun(() => this.route(method, url, raw));
    if (answer.applied && fault === 'appliedThenReset') {
      entry.status = -1;
      res.socket?.destroy();
      return;
    }
    if (answer.applied && fault === 'appliedThen5xx') {
      finish({ status: 502, body: errorBody('INTERNAL_ERROR', 'Bad gateway') }, headers);
      return;
    }
    finish(answer, headers);
  }

  private tryRun(run: () => Answer): Answer {
    try {
      return run();
    } catch (error) {
      if (error instanceof HttpError) return error.answer;
      return { status: 500, body: errorBody('INTERNAL_ERROR', `internal error: ${String(error)}`) };
    }
  }

  private drawFault(): FaultKind | undefined {
    const forced = this.forced.shift();
    const kind =
      forced ??
      (Object.keys(this.faults) as FaultKind[]).find(
        (k) => this.faults[k] > 0 && this.random() < this.faults[k],
      );
    if (kind) this.stats.faults[kind]++;
    return kind;
  }

  private authenticate(header: string | undefined): Answer | undefined {
    const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    const token = match?.[1];
    const known = token === undefined ? undefined : this.tokens.get(token);
    if (!known) {
      this.stats.unauthorized.INVALID_AUTHENTICATION++;
      // HubSpot answers a missing and an unknown token alike.
      const message =
        'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview';
      return { status: 401, body: errorBody('INVALID_AUTHENTICATION', message) };
    }
    const now = this.clock();
    if (known.expired || (known.expiresAt !== null && now >= known.expiresAt)) {
      this.stats.unauthorized.EXPIRED_AUTHENTICATION++;
      const ago = known.expiresAt === null ? 0 : Math.max(0, Math.floor((now - known.expiresAt) / SECOND));
      return {
        status: 401,
        body: errorBody(
          'EXPIRED_AUTHENTICATION',
          `The OAuth token used to make this call expired ${ago} second(s) ago.`,
        ),
      };
    }
    return undefined;
  }

  private prune(now: number): void {
    this.intervalHits = this.intervalHits.filter((t) => t > now - this.limits.intervalMs);
    this.secondHits = this.secondHits.filter((t) => t > now - SECOND);
  }

  /** Count the request against the limits, or answer it with a 429 (a refused request consumes nothing). */
  private consumeRate(): { policy: RateLimitPolicy; answer: Answer } | undefined {
    const now = this.clock();
    this.prune(now);
    const refuse = (policy: RateLimitPolicy, message: string, retryAfterMs: number) => {
      this.stats.rateLimited[policy]++;
      const retryAfter = Math.max(1, Math.ceil(retryAfterMs / SECOND));
      return {
        policy,
        answer: {
          status: 429,
          headers: { 'retry-after': String(retryAfter) },
          body: {
            status: 'error',
            message,
            errorType: 'RATE_LIMIT',
            correlationId: randomUUID(),
            policyName: policy,
            requestId: randomUUID(),
          },
        },
      };
    };
    if (this.limits.daily !== null && this.dailyUsed >= this.limits.daily) {
      const midnight = new Date(now);
      midnight.setUTCHours(24, 0, 0, 0);
      return refuse('DAILY', 'You have reached your daily limit.', midnight.getTime() - now);
    }
    if (this.limits.secondly !== null && this.secondHits.length >= this.limits.secondly) {
      const oldest = this.secondHits[0] ?? now;
      return refuse('SECONDLY', 'You have reached your secondly limit.', oldest + SECOND - now);
    }
    if (this.intervalHits.length >= this.limits.max) {
      const oldest = this.intervalHits[0] ?? now;
      return refuse(
        'TEN_SECONDLY_ROLLING',
        'You have reached your ten_secondly_rolling limit.',
        oldest + this.limits.intervalMs - now,
      );
    }
    this.intervalHits.push(now);
    this.secondHits.push(now);
    this.dailyUsed++;
    return undefined;
  }

  rateHeaders(): Record<string, string> {
    this.prune(this.clock());
    const h: Record<string, string> = {
      'x-hubspot-ratelimit-max': String(this.limits.max),
      'x-hubspot-ratelimit-remaining': String(Math.max(0, this.limits.max - this.intervalHits.length)),
      'x-hubspot-ratelimit-interval-milliseconds': String(this.limits.intervalMs),
    };
    if (this.limits.daily !== null) {
      h['x-hubspot-ratelimit-daily'] = String(this.limits.daily);
      h['x-hubspot-ratelimit-daily-remaining'] = String(Math.max(0, this.limits.daily - this.dailyUsed));
    }
    if (this.limits.secondly !== null) {
      h['x-hubspot-ratelimit-secondly'] = String(this.limits.secondly);
      h['x-hubspot-ratelimit-secondly-remaining'] = String(
        Math.max(0, this.limits.secondly - this.secondHits.length),
      );
    }
    return h;
  }

  resetDaily(): void {
    this.dailyUsed = 0;
  }

  /** Parse and check a JSON body against its schema; a mismatch is a 400 and a contract violation. */
  private body<T extends z.ZodType>(schema: T, raw: string, method: string, path: string): z.infer<T> {
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      const message = `Invalid input JSON on line 1: ${(error as Error).message}`;
      this.violation(method, path, message, [message], raw);
      throw validationError(message);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
      const tooMany = parsed.error.issues.find((i) => i.code === 'too_big' && i.path.join('.') === 'inputs');
      const message = tooMany
        ? `Batch input limit exceeded: the batch has ${(value as { inputs: unknown[] }).inputs.length} inputs, the limit is ${String((tooMany as { maximum?: number | bigint }).maximum)}.`
        : `Invalid input JSON: ${issues.join('; ')}`;
      this.violation(method, path, message, issues, raw);
      throw validationError(
        message,
        parsed.error.issues.map((i) => ({ message: i.message, code: i.code, in: i.path.join('.') })),
      );
    }
    return parsed.data;
  }

  private violation(method: string, path: string, message: string, issues: string[], body: string): void {
    this.stats.violations++;
    this.violationLog.push({ method, path, message, issues, body: body.slice(0, 2000) });
  }

  // ---- routes ----

  private route(method: string, url: URL, raw: string): Answer {
    const path = url.pathname.replace(/\/+$/, '');
    let m: RegExpExecArray | null;
    if (
      (m = /^\/crm\/v3\/objects\/([^/]+)\/batch\/(create|update|upsert|archive|read)$/.exec(path)) &&
      method === 'POST'
    ) {
      const type = this.type(decodeURIComponent(m[1] ?? ''));
      switch (m[2]) {
        case 'create':
          return this.batchCreate(type, this.body(BatchCreateBody, raw, method, path));
        case 'update':
          return this.batchUpdate(type, this.body(BatchUpdateBody, raw, method, path));
        case 'upsert':
          return this.batchUpsert(type, this.body(BatchUpsertBody, raw, method, path));
        case 'archive':
          return this.batchArchive(type, this.body(BatchArchiveBody, raw, method, path));
        default:
          return this.batchRead(
            type,
            this.body(BatchReadBody, raw, method, path),
            url.searchParams.get('archived') === 'true',
          );
      }
    }
    if ((m = /^\/crm\/v3\/objects\/([^/]+)\/([^/]+)$/.exec(path)) && method === 'GET') {
      return this.getOne(
        this.type(decodeURIComponent(m[1] ?? '')),
        decodeURIComponent(m[2] ?? ''),
        url.searchParams,
      );
    }
    if ((m = /^\/crm\/v3\/properties\/([^/]+)$/.exec(path))) {
      const type = this.type(decodeURIComponent(m[1] ?? ''));
      if (method === 'GET')
        return {
          status: 200,
          body: { results: [...type.properties.values()].map((p) => publicProperty(p, type)) },
        };
      if (method === 'POST')
        return this.createProperty(type, this.body(PropertyCreateBody, raw, method, path));
    }
    if ((m = /^\/crm\/v3\/properties\/([^/]+)\/([^/]+)$/.exec(path)) && method === 'GET') {
      const type = this.type(decodeURIComponent(m[1] ?? ''));
      const prop = type.properties.get(decodeURIComponent(m[2] ?? ''));
      if (!prop)
        return { status: 404, body: errorBody('OBJECT_NOT_FOUND', `Unable to find property ${m[2]}`) };
      return { status: 200, body: publicProperty(prop, type) };
    }
    if (
      (m = /^\/(?:crm\/v3|crm-object-schemas\/v3)\/schemas(?:\/([^/]+))?$/.exec(path)) &&
      method === 'GET'
    ) {
      if (m[1] === undefined)
        return {
          status: 200,
          body: { results: this.types.filter((t) => t.custom).map((t) => this.schema(t)) },
        };
      const type = this.types.find((t) => t.custom && t.aliases.includes(decodeURIComponent(m?.[1] ?? '')));
      if (!type)
        return { status: 404, body: errorBody('OBJECT_NOT_FOUND', `Unable to find object schema ${m[1]}`) };
      return { status: 200, body: this.schema(type) };
    }
    if (
      (m =
        /^\/crm\/v4\/associations\/([^/]+)\/([^/]+)\/batch\/(create|associate\/default|read|archive)$/.exec(
          path,
        )) &&
      method === 'POST'
    ) {
      const from = this.type(decodeURIComponent(m[1] ?? ''));
      const to = this.type(decodeURIComponent(m[2] ?? ''));
      switch (m[3]) {
        case 'create':
          return this.associate(from, to, this.body(AssociationBatchCreateBody, raw, method, path).inputs);
        case 'associate/default':
          return this.associateDefault(
            from,
            to,
            this.body(AssociationBatchDefaultBody, raw, method, path).inputs,
          );
        case 'read':
          return this.readAssociations(
            from,
            to,
            this.body(AssociationBatchReadBody, raw, method, path).inputs,
          );
        default:
          return this.archiveAssociations(
            from,
            to,
            this.body(AssociationBatchArchiveBody, raw, method, path).inputs,
          );
      }
    }
    return { status: 404, body: errorBody('OBJECT_NOT_FOUND', `No route for ${method} ${path}`) };
  }

  // ---- OAuth ----

  private token(req: IncomingMessage, raw: string, method: string, path: string): Answer {
    const contentType = req.headers['content-type'] ?? '';
    if (!contentType.startsWith('application/x-www-form-urlencoded')) {
      const message = `the token request must be application/x-www-form-urlencoded, not ${contentType || 'none'}`;
      this.violation(method, path, message, [message], raw);
      return { status: 400, body: { status: 'BAD_REQUEST', message, correlationId: randomUUID() } };
    }
    const form = Object.fromEntries(new URLSearchParams(raw));
    const parsed = TokenRequest.safeParse(form);
    const oauthError = (status: string, message: string): Answer => ({
      status: 400,
      body: { status, message, correlationId: randomUUID() },
    });
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
      this.violation(method, path, 'invalid token request', issues, raw);
      return oauthError('BAD_GRANT_TYPE', 'missing or unsupported grant_type');
    }
    const client = this.options.oauth;
    const request = parsed.data;
    if (request.grant_type !== 'refresh_token')
      return oauthError('BAD_GRANT_TYPE', `unsupported grant_type ${request.grant_type}`);
    if (!client || request.client_id !== client.clientId)
      return oauthError('BAD_CLIENT_ID', 'missing or unknown client id');
    if (request.client_secret !== client.clientSecret)
      return oauthError('BAD_CLIENT_SECRET', 'missing or invalid client secret');
    if (request.refresh_token !== client.refreshToken)
      return oauthError('BAD_REFRESH_TOKEN', 'missing or invalid refresh token');
    const ttl = client.accessTokenTtlSeconds ?? 1800;
    const accessToken = `oauth-access-${++this.issuedTokens}-${randomUUID()}`;
    this.tokens.set(accessToken, { expiresAt: this.clock() + ttl * SECOND, expired: false });
    this.stats.tokenRefreshes++;
    return {
      status: 200,
      body: {
        access_token: accessToken,
        refresh_token: client.refreshToken,
        expires_in: ttl,
        token_type: 'bearer',
        token_use: 'access_token',
        hub_id: this.portalId,
      },
    };
  }

  // ---- records ----

  /** Check an input's properties: unknown, read-only and invalid values, in HubSpot's list form. */
  private checkProperties(
    type: ObjectTypeDefinition,
    properties: Record<string, string>,
  ): { stored: Record<string, string>; invalid: InvalidValue[] } {
    const stored: Record<string, string> = {};
    const invalid: InvalidValue[] = [];
    for (const [name, value] of Object.entries(properties)) {
      const def = type.properties.get(name);
      if (!def) {
        invalid.push({
          isValid: false,
          message: `Property "${name}" does not exist`,
          error: 'PROPERTY_DOESNT_EXIST',
          name,
        });
        continue;
      }
      if (isReadOnly(def)) {
        invalid.push({
          isValid: false,
          message: `"${name}" is a read only property; its value cannot be set.`,
          error: 'READ_ONLY_VALUE',
          name,
        });
        continue;
      }
      const checked = checkValue(def, value);
      if (checked.ok) stored[name] = checked.stored;
      else invalid.push(checked.invalid);
    }
    return { stored, invalid };
  }

  private invalidDetails(index: number, list: InvalidValue[]): unknown[] {
    return list.map((v) => ({
      message: v.message,
      code: v.error,
      in: `inputs[${index}].properties.${v.name}`,
      context: { propertyName: [v.name] },
    }));
  }

  /** The id property of an update/upsert/read: a unique property of the type, or the record id. */
  private idProperty(type: ObjectTypeDefinition, idProperty: string | undefined): string | undefined {
    if (idProperty === undefined || idProperty === 'hs_object_id') return undefined;
    if (!type.properties.has(idProperty)) throw validationError(`Property "${idProperty}" does not exist`);
    if (!this.uniqueProperties(type).includes(idProperty))
      throw validationError(
        `Unable to perform update/upsert by non-unique ${type.objectTypeId} property ${idProperty} in portal ID ${this.portalId}`,
      );
    return idProperty;
  }

  private normalizeId(type: ObjectTypeDefinition, idProperty: string, id: string): string {
    const def = type.properties.get(idProperty);
    if (!def) return id;
    const checked = checkValue(def, id);
    return checked.ok ? checked.stored : id;
  }

  private find(
    type: ObjectTypeDefinition,
    idProperty: string | undefined,
    id: string,
  ): StoredRecord | undefined {
    if (idProperty === undefined) {
      const record = this.store(type).get(id);
      return record && !record.archived ? record : undefined;
    }
    const found = this.index(type, idProperty).get(this.normalizeId(type, idProperty, id));
    return found === undefined ? undefined : this.store(type).get(found);
  }

  /**
   * Unique values the batch would write that another live record (or another input of the batch) holds:
   * within the batch a 400, against an existing record a 409 CONFLICT; the whole batch is refused.
   */
  private checkUnique(
    type: ObjectTypeDefinition,
    writes: { index: number; target?: string; stored: Record<string, string> }[],
  ): void {
    for (const property of this.uniqueProperties(type)) {
      const seen = new Map<string, number>();
      for (const write of writes) {
        const value = write.stored[property];
        if (!value) continue;
        const earlier = seen.get(value);
        if (earlier !== undefined)
          throw validationError(
            `Duplicate IDs found in batch input: [${value}]. IDs must be unique`,
            [
              {
                message: `inputs ${earlier} and ${write.index} both set ${property} to ${value}`,
                in: `inputs[${write.index}].properties.${property}`,
              },
            ],
            { property: [property], inputIndexes: [String(earlier), String(write.index)] },
          );
        seen.set(value, write.index);
        const holder = this.index(type, property).get(value);
        if (holder !== undefined && holder !== write.target) {
          const message =
            type.name === 'contacts' && property === 'email'
              ? `Contact already exists. Existing ID: ${holder}`
              : `A ${type.singular} with the value "${value}" for the unique property "${property}" already exists. Existing ID: ${holder}`;
          throw new HttpError({
            status: 409,
            body: errorBody('CONFLICT', message, {
              context: { property: [property], existingId: [holder], inputIndex: [String(write.index)] },
            }),
          });
        }
      }
    }
  }

  private write(
    type: ObjectTypeDefinition,
    record: StoredRecord | undefined,
    stored: Record<string, string>,
  ): StoredRecord {
    const now = this.clock();
    const lastModified = type.properties.has('lastmodifieddate') ? 'lastmodifieddate' : 'hs_lastmodifieddate';
    const created = type.properties.has('createdate') ? 'createdate' : 'hs_createdate';
    if (!record) {
      const id = String(this.nextId++);
      record = {
        id,
        properties: { hs_object_id: id, [created]: iso(now) },
        createdAt: now,
        updatedAt: now,
        archived: false,
      };
      this.store(type).set(id, record);
      this.stats.created++;
    } else {
      this.stats.updated++;
    }
    for (const [name, value] of Object.entries(stored)) {
      const old = record.properties[name];
      if (this.uniqueProperties(type).includes(name)) {
        const index = this.index(type, name);
        if (old) index.delete(old);
        if (value) index.set(value, record.id);
      }
      record.properties[name] = value;
    }
    record.updatedAt = now;
    record.properties[lastModified] = iso(now);
    return record;
  }

  private archive(type: ObjectTypeDefinition, record: StoredRecord): void {
    const now = this.clock();
    record.archived = true;
    record.archivedAt = now;
    record.updatedAt = now;
    for (const property of this.uniqueProperties(type)) {
      const value = record.properties[property];
      if (value && this.index(type, property).get(value) === record.id)
        this.index(type, property).delete(value);
    }
    this.stats.archived++;
  }

  private publicRecord(
    record: StoredRecord,
    requested?: string[],
    extra: Record<string, unknown> = {},
  ): Record<string, unknown> {
    let properties: Record<string, string | null> = { ...record.properties };
    if (requested) {
      properties = {};
      for (const name of requested) properties[name] = record.properties[name] ?? null;
    }
    return {
      id: record.id,
      properties,
      createdAt: iso(record.createdAt),
      updatedAt: iso(record.updatedAt),
      archived: record.archived,
      ...(record.archivedAt !== undefined ? { archivedAt: iso(record.archivedAt) } : {}),
      ...extra,
    };
  }

  private order<T>(results: T[]): T[] {
    if (this.options.shuffleResults === false) return results;
    const out = [...results];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }

  private batch(results: unknown[], errors: unknown[], started: number, okStatus = 200): Answer {
    const body: Record<string, unknown> = {
      status: 'COMPLETE',
      results: this.order(results),
      startedAt: iso(started),
      completedAt: iso(this.clock()),
    };
    if (errors.length === 0) return { status: okStatus, body, applied: results.length > 0 };
    return { status: 207, body: { ...body, numErrors: errors.length, errors }, applied: results.length > 0 };
  }

  private missingRequired(type: ObjectTypeDefinition, index: number, stored: Record<string, string>): void {
    const missing = type.requiredProperties.filter((p) => !stored[p]);
    if (missing.length > 0)
      throw validationError(
        `Required properties were not set: ${missing.join(', ')}`,
        missing.map((p) => ({
          message: `${p} is required`,
          code: 'REQUIRED_PROPERTY',
          in: `inputs[${index}].properties.${p}`,
        })),
      );
  }

  private batchCreate(type: ObjectTypeDefinition, body: z.infer<typeof BatchCreateBody>): Answer {
    const started = this.clock();
    const checked = body.inputs.map((input, index) => ({
      index,
      input,
      ...this.checkProperties(type, input.properties),
    }));
    const bad = checked.filter((c) => c.invalid.length > 0);
    if (bad.length > 0) {
      throw validationError(
        invalidMessage(bad.flatMap((c) => c.invalid)),
        bad.flatMap((c) => this.invalidDetails(c.index, c.invalid)),
        { inputIndexes: bad.map((c) => String(c.index)) },
      );
    }
    for (const c of checked) this.missingRequired(type, c.index, c.stored);
    const links = checked.map((c) =>
      (c.input.associations ?? []).map((a, j) => ({ ...a, j, index: c.index })),
    );
    for (const a of links.flat()) {
      for (const spec of a.types) {
        const assoc = this.associationTypes.find(
          (t) => t.from === type.name && t.typeId === spec.associationTypeId,
        );
        if (!assoc)
          throw validationError(
            `Association type ${spec.associationTypeId} is not defined from ${type.name}`,
          );
        if (!this.find(this.type(assoc.to), undefined, a.to.id))
          throw validationError(`inputs[${a.index}].associations[${a.j}]: no ${assoc.to} record ${a.to.id}`);
      }
    }
    this.checkUnique(type, checked);
    const results = checked.map((c) => {
      const record = this.write(type, undefined, c.stored);
      for (const a of links[c.index] ?? [])
        for (const spec of a.types) {
          const assoc = this.associationTypes.find(
            (t) => t.from === type.name && t.typeId === spec.associationTypeId,
          );
          if (assoc) this.link(type, record.id, this.type(assoc.to), a.to.id, assoc);
        }
      return this.publicRecord(
        record,
        undefined,
        c.input.objectWriteTraceId ? { objectWriteTraceId: c.input.objectWriteTraceId } : {},
      );
    });
    return this.batch(results, [], started, 201);
  }

  private batchUpdate(type: ObjectTypeDefinition, body: z.infer<typeof BatchUpdateBody>): Answer {
    const started = this.clock();
    const checked = body.inputs.map((input, index) => {
      const idProperty = this.idProperty(type, input.idProperty);
      return { index, input, idProperty, ...this.checkProperties(type, input.properties) };
    });
    const bad = checked.filter((c) => c.invalid.length > 0);
    if (bad.length > 0)
      throw validationError(
        invalidMessage(bad.flatMap((c) => c.invalid)),
        bad.flatMap((c) => this.invalidDetails(c.index, c.invalid)),
        { inputIndexes: bad.map((c) => String(c.index)), ids: bad.map((c) => c.input.id) },
      );
    const targets = checked.map((c) => ({ ...c, record: this.find(type, c.idProperty, c.input.id) }));
    const seen = new Set<string>();
    for (const t of targets) {
      if (!t.record) continue;
      if (seen.has(t.record.id))
        throw validationError(`Duplicate IDs found in batch input: [${t.input.id}]. IDs must be unique`);
      seen.add(t.record.id);
    }
    const found = targets.filter((t) => t.record);
    this.checkUnique(
      type,
      found.map((t) => ({ index: t.index, target: t.record?.id, stored: t.stored })),
    );
    const missing = targets.filter((t) => !t.record);
    const errors = missing.map((t) =>
      standardError('OBJECT_NOT_FOUND', 'Object not found.  objectId are usually numeric.', {
        ids: [t.input.id],
        ...(t.input.objectWriteTraceId ? { objectWriteTraceId: [t.input.objectWriteTraceId] } : {}),
      }),
    );
    const results = found.map((t) =>
      this.publicRecord(
        this.write(type, t.record, t.stored),
        undefined,
        t.input.objectWriteTraceId ? { objectWriteTraceId: t.input.objectWriteTraceId } : {},
      ),
    );
    return this.batch(results, errors, started);
  }

  private batchUpsert(type: ObjectTypeDefinition, body: z.infer<typeof BatchUpsertBody>): Answer {
    const started = this.clock();
    const inputs = body.inputs.map((input, index) => {
      if (input.idProperty === undefined)
        throw validationError('idProperty is required to upsert: name a unique property');
      const idProperty = this.idProperty(type, input.idProperty);
      if (idProperty === undefined)
        throw validationError(
          `Unable to perform update/upsert by non-unique ${type.objectTypeId} property hs_object_id in portal ID ${this.portalId}`,
        );
      return { index, input, idProperty, key: this.normalizeId(type, idProperty, input.id) };
    });
    const keys = new Map<string, number>();
    for (const i of inputs) {
      const key = `${i.idProperty}\u0000${i.key}`;
      if (keys.has(key))
        throw validationError(`Duplicate IDs found in batch input: [${i.input.id}]. IDs must be unique`);
      keys.set(key, i.index);
    }
    const errors: unknown[] = [];
    const good: {
      index: number;
      input: (typeof inputs)[number]['input'];
      target?: StoredRecord;
      stored: Record<string, string>;
    }[] = [];
    for (const i of inputs) {
      const { stored, invalid } = this.checkProperties(type, {
        ...i.input.properties,
        [i.idProperty]: i.input.id,
      });
      if (invalid.length > 0) {
        errors.push(
          standardError(
            'VALIDATION_ERROR',
            invalidMessage(invalid),
            {
              ids: [i.input.id],
              ...(i.input.objectWriteTraceId ? { objectWriteTraceId: [i.input.objectWriteTraceId] } : {}),
            },
            this.invalidDetails(i.index, invalid),
          ),
        );
        continue;
      }
      good.push({
        index: i.index,
        input: i.input,
        target: this.find(type, i.idProperty, i.input.id),
        stored,
      });
    }
    this.checkUnique(
      type,
      good.map((g) => ({ index: g.index, target: g.target?.id, stored: g.stored })),
    );
    const results = good.map((g) => {
      const record = this.write(type, g.target, g.stored);
      return this.publicRecord(record, undefined, {
        new: g.target === undefined,
        ...(g.input.objectWriteTraceId ? { objectWriteTraceId: g.input.objectWriteTraceId } : {}),
      });
    });
    return this.batch(results, errors, started);
  }

  private batchArchive(type: ObjectTypeDefinition, body: z.infer<typeof BatchArchiveBody>): Answer {
    let applied = false;
    for (const { id } of body.inputs) {
      const record = this.find(type, undefined, id);
      if (record) {
        this.archive(type, record);
        applied = true;
      }
    }
    return { status: 204, applied };
  }

  private batchRead(
    type: ObjectTypeDefinition,
    body: z.infer<typeof BatchReadBody>,
    archived: boolean,
  ): Answer {
    const started = this.clock();
    const idProperty = this.idProperty(type, body.idProperty);
    const requested = body.properties && body.properties.length > 0 ? body.properties : type.defaultRead;
    const results: unknown[] = [];
    const missing: string[] = [];
    for (const { id } of body.inputs) {
      let record: StoredRecord | undefined;
      if (archived) {
        record = [...this.store(type).values()].find(
          (r) =>
            r.archived &&
            (idProperty === undefined
              ? r.id === id
              : r.properties[idProperty] === this.normalizeId(type, idProperty, id)),
        );
      } else record = this.find(type, idProperty, id);
      if (record) results.push(this.publicRecord(record, [...new Set([...requested, 'hs_object_id'])]));
      else missing.push(id);
    }
    const errors =
      missing.length === 0
        ? []
        : [
            standardError(
              'OBJECT_NOT_FOUND',
              `Could not get some ${type.singular.toUpperCase()} objects, they may be deleted or not exist. Check that ids are valid.`,
              { ids: missing },
            ),
          ];
    return { ...this.batch(results, errors, started), applied: false };
  }

  private getOne(type: ObjectTypeDefinition, id: string, query: URLSearchParams): Answer {
    const idProperty = this.idProperty(type, query.get('idProperty') ?? undefined);
    const record = this.find(type, idProperty, id);
    if (!record)
      return {
        status: 404,
        body: errorBody('OBJECT_NOT_FOUND', 'Object not found.  objectId are usually numeric.'),
      };
    const requested = query.get('properties')?.split(',').filter(Boolean);
    return {
      status: 200,
      body: this.publicRecord(record, requested && requested.length > 0 ? requested : type.defaultRead),
    };
  }

  // ---- properties and schemas ----

  private createProperty(type: ObjectTypeDefinition, body: z.infer<typeof PropertyCreateBody>): Answer {
    if (type.properties.has(body.name))
      return {
        status: 409,
        body: errorBody('OBJECT_ALREADY_EXISTS', `Property named '${body.name}' already exists.`),
      };
    const def: PropertyDefinition = {
      name: body.name,
      label: body.label,
      type: body.type as PropertyDefinition['type'],
      fieldType: body.fieldType,
      groupName: body.groupName,
      description: body.description ?? '',
      options: body.options,
      hasUniqueValue: body.hasUniqueValue ?? false,
      calculated: body.calculationFormula !== undefined,
      hubspotDefined: false,
    };
    type.properties.set(def.name, def);
    return { status: 201, body: publicProperty(def, type), applied: true };
  }

  schema(type: ObjectTypeDefinition): Record<string, unknown> {
    return {
      id: type.objectTypeId.replace(/^2-/, ''),
      objectTypeId: type.objectTypeId,
      name: type.name,
      fullyQualifiedName: `p${this.portalId}_${type.name}`,
      labels: { singular: type.singular, plural: type.name },
      primaryDisplayProperty: type.primaryDisplayProperty,
      requiredProperties: type.requiredProperties,
      searchableProperties: [type.primaryDisplayProperty],
      secondaryDisplayProperties: [],
      properties: [...type.properties.values()].map((p) => publicProperty(p, type)),
      associations: this.associationTypes
        .filter((a) => a.from === type.name)
        .map((a) => ({
          id: String(a.typeId),
          fromObjectTypeId: type.objectTypeId,
          toObjectTypeId: this.type(a.to).objectTypeId,
          name: `${type.name}_to_${a.to}`.toUpperCase(),
        })),
      archived: false,
      createdAt: type.createdAt,
      updatedAt: type.createdAt,
    };
  }

  // ---- associations ----

  private edgeKey(from: ObjectTypeDefinition, fromId: string, to: ObjectTypeDefinition): string {
    return `${from.name}|${fromId}|${to.name}`;
  }

  private link(
    from: ObjectTypeDefinition,
    fromId: string,
    to: ObjectTypeDefinition,
    toId: string,
    assoc: AssociationType,
  ): void {
    const put = (
      a: ObjectTypeDefinition,
      aId: string,
      b: ObjectTypeDefinition,
      bId: string,
      t: AssociationType,
    ) => {
      const key = this.edgeKey(a, aId, b);
      let targets = this.edges.get(key);
      if (!targets) this.edges.set(key, (targets = new Map()));
      let types = targets.get(bId);
      if (!types) targets.set(bId, (types = new Map()));
      types.set(t.typeId, t);
    };
    put(from, fromId, to, toId, assoc);
    const inverse = this.associationTypes.find(
      (t) => t.from === to.name && t.to === from.name && t.typeId === assoc.inverse,
    );
    if (inverse) put(to, toId, from, fromId, inverse);
  }

  private unlink(
    from: ObjectTypeDefinition,
    fromId: string,
    to: ObjectTypeDefinition,
    toId: string,
  ): boolean {
    const a = this.edges.get(this.edgeKey(from, fromId, to))?.delete(toId) ?? false;
    const b = this.edges.get(this.edgeKey(to, toId, from))?.delete(fromId) ?? false;
    return a || b;
  }

  private pairError(
    from: ObjectTypeDefinition,
    to: ObjectTypeDefinition,
    fromId: string,
    toId: string,
  ): unknown | undefined {
    const missing: string[] = [];
    if (!this.find(from, undefined, fromId)) missing.push(`${from.singular} ${fromId}`);
    if (!this.find(to, undefined, toId)) missing.push(`${to.singular} ${toId}`);
    if (missing.length === 0) return undefined;
    return standardError('VALIDATION_ERROR', `No such object(s): ${missing.join(', ')}`, {
      fromObjectId: [fromId],
      toObjectId: [toId],
    });
  }

  private associate(
    from: ObjectTypeDefinition,
    to: ObjectTypeDefinition,
    inputs: z.infer<typeof AssociationBatchCreateBody>['inputs'],
  ): Answer {
    const started = this.clock();
    const results: unknown[] = [];
    const errors: unknown[] = [];
    for (const input of inputs) {
      const pairError = this.pairError(from, to, input.from.id, input.to.id);
      if (pairError) {
        errors.push(pairError);
        continue;
      }
      const types = input.types.map((spec) =>
        this.associationTypes.find(
          (t) =>
            t.from === from.name &&
            t.to === to.name &&
            t.typeId === spec.associationTypeId &&
            t.category === spec.associationCategory,
        ),
      );
      const unknown = input.types.filter((_, i) => !types[i]);
      if (unknown.length > 0) {
        errors.push(
          standardError(
            'VALIDATION_ERROR',
            `Association type(s) ${unknown.map((u) => `${u.associationCategory}/${u.associationTypeId}`).join(', ')} not defined from ${from.name} to ${to.name}`,
            { fromObjectId: [input.from.id], toObjectId: [input.to.id] },
          ),
        );
        continue;
      }
      for (const t of types) if (t) this.link(from, input.from.id, to, input.to.id, t);
      results.push({
        fromObjectTypeId: from.objectTypeId,
        fromObjectId: input.from.id,
        toObjectTypeId: to.objectTypeId,
        toObjectId: input.to.id,
        labels: types.flatMap((t) => (t?.label ? [t.label] : [])),
      });
    }
    return this.batch(results, errors, started, 201);
  }

  private associateDefault(
    from: ObjectTypeDefinition,
    to: ObjectTypeDefinition,
    inputs: z.infer<typeof AssociationBatchDefaultBody>['inputs'],
  ): Answer {
    const started = this.clock();
    const assoc = this.associationTypes.find((t) => t.from === from.name && t.to === to.name && t.isDefault);
    if (!assoc) throw validationError(`No default association from ${from.name} to ${to.name}`);
    const results: unknown[] = [];
    const errors: unknown[] = [];
    for (const input of inputs) {
      const pairError = this.pairError(from, to, input.from.id, input.to.id);
      if (pairError) {
        errors.push(pairError);
        continue;
      }
      this.link(from, input.from.id, to, input.to.id, assoc);
      results.push({
        from: { id: input.from.id },
        to: { id: input.to.id },
        associationSpec: { associationCategory: assoc.category, associationTypeId: assoc.typeId },
      });
    }
    // The spec gives this endpoint only a 200 answer; errors, when there are some, ride in it.
    const answer = this.batch(results, errors, started);
    return { ...answer, status: 200 };
  }

  private liveTargets(
    from: ObjectTypeDefinition,
    fromId: string,
    to: ObjectTypeDefinition,
  ): [string, Map<number, AssociationType>][] {
    if (!this.find(from, undefined, fromId)) return [];
    const targets = this.edges.get(this.edgeKey(from, fromId, to));
    if (!targets) return [];
    return [...targets.entries()].filter(
      ([toId, types]) => types.size > 0 && this.find(to, undefined, toId) !== undefined,
    );
  }

  private readAssociations(
    from: ObjectTypeDefinition,
    to: ObjectTypeDefinition,
    inputs: z.infer<typeof AssociationBatchReadBody>['inputs'],
  ): Answer {
    const started = this.clock();
    const results: unknown[] = [];
    const errors: unknown[] = [];
    for (const { id } of inputs) {
      const targets = this.liveTargets(from, id, to);
      if (targets.length === 0) {
        errors.push(
          standardError(
            'OBJECT_NOT_FOUND',
            `No ${to.singular} is associated with ${from.singular} ${id}.`,
            { fromObjectId: [id] },
            [],
            'crm.associations.NO_ASSOCIATIONS_FOUND',
          ),
        );
        continue;
      }
      results.push({
        from: { id },
        to: targets.map(([toId, types]) => ({
          toObjectId: toId,
          associationTypes: [...types.values()].map((t) => ({
            category: t.category,
            typeId: t.typeId,
            label: t.label,
          })),
        })),
      });
    }
    return { ...this.batch(results, errors, started), applied: false };
  }

  private archiveAssociations(
    from: ObjectTypeDefinition,
    to: ObjectTypeDefinition,
    inputs: z.infer<typeof AssociationBatchArchiveBody>['inputs'],
  ): Answer {
    let applied = false;
    for (const input of inputs)
      for (const target of input.to) applied = this.unlink(from, input.from.id, to, target.id) || applied;
    return { status: 204, applied };
  }

  // ---- what the tests read and arrange ----

  testRecord(record: StoredRecord): EmulatedRecord {
    return {
      id: record.id,
      properties: { ...record.properties },
      createdAt: iso(record.createdAt),
      updatedAt: iso(record.updatedAt),
      archived: record.archived,
      ...(record.archivedAt !== undefined ? { archivedAt: iso(record.archivedAt) } : {}),
    };
  }

  testRecords(objectType: string, includeArchived: boolean): EmulatedRecord[] {
    const type = this.type(objectType);
    return [...this.store(type).values()]
      .filter((r) => includeArchived || !r.archived)
      .sort((a, b) => Number(a.id) - Number(b.id))
      .map((r) => this.testRecord(r));
  }

  testGet(objectType: string, id: string): EmulatedRecord | undefined {
    const record = this.store(this.type(objectType)).get(id);
    return record ? this.testRecord(record) : undefined;
  }

  testAssociations(fromType: string, toType: string, fromId?: string): EmulatedAssociation[] {
    const from = this.type(fromType);
    const to = this.type(toType);
    const ids = fromId !== undefined ? [fromId] : [...this.store(from).keys()];
    return ids.flatMap((id) =>
      this.liveTargets(from, id, to).map(([toId, types]) => ({
        fromObjectType: from.name,
        fromId: id,
        toObjectType: to.name,
        toId,
        types: [...types.values()].map((t) => ({ category: t.category, typeId: t.typeId, label: t.label })),
      })),
    );
  }

  testCreate(objectType: string, properties: Record<string, string>): string {
    const type = this.type(objectType);
    const { stored, invalid } = this.checkProperties(type, properties);
    if (invalid.length > 0) throw new Error(invalidMessage(invalid));
    this.checkUnique(type, [{ index: 0, stored }]);
    const record = this.write(type, undefined, stored);
    this.stats.created--;
    return record.id;
  }

  testDelete(objectType: string, id: string): boolean {
    const type = this.type(objectType);
    const record = this.find(type, undefined, id);
    if (!record) return false;
    this.archive(type, record);
    this.stats.archived--;
    return true;
  }
}

function publicProperty(p: PropertyDefinition, type: ObjectTypeDefinition): Record<string, unknown> {
  return {
    name: p.name,
    label: p.label,
    type: p.type,
    fieldType: p.fieldType,
    description: p.description ?? '',
    groupName: p.groupName ?? `${type.singular}information`,
    options: (p.options ?? []).map((o, i) => ({
      label: o.label,
      value: o.value,
      hidden: o.hidden ?? false,
      displayOrder: o.displayOrder ?? i,
    })),
    displayOrder: -1,
    calculated: p.calculated ?? false,
    externalOptions: false,
    hasUniqueValue: p.hasUniqueValue ?? false,
    hidden: false,
    hubspotDefined: p.hubspotDefined ?? false,
    formField: !(p.readOnlyValue ?? false),
    modificationMetadata: {
      archivable: !(p.hubspotDefined ?? false),
      readOnlyDefinition: p.hubspotDefined ?? false,
      readOnlyValue: isReadOnly(p),
    },
    archived: false,
    createdAt: type.createdAt,
    updatedAt: type.createdAt,
  };
}

function parseLoose(raw: string): unknown {
  if (raw === '') return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  if (body === undefined) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json;charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startHubSpotEmulator(options: HubSpotEmulatorOptions = {}): Promise<HubSpotEmulator> {
  const emulator = new Emulator(options);
  const server: Server = createServer((req, res) => {
    emulator.handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, errorBody('INTERNAL_ERROR', String(error)), {});
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    portalId: emulator.portalId,
    token: (options.tokens ?? ['pat-test-token'])[0] ?? 'pat-test-token',
    records: (objectType, o = {}) => emulator.testRecords(objectType, o.includeArchived ?? false),
    record: (objectType, id) => emulator.testGet(objectType, id),
    associations: (from, to, fromId) => emulator.testAssociations(from, to, fromId),
    requests: () => emulator.requestLog.map((r) => ({ ...r })),
    stats: () => structuredClone(emulator.stats),
    violations: () => emulator.violationLog.map((v) => ({ ...v, issues: [...v.issues] })),
    createRecord: (objectType, properties) => emulator.testCreate(objectType, properties),
    deleteRecord: (objectType, id) => emulator.testDelete(objectType, id),
    addProperty: (objectType, definition) => {
      emulator.type(objectType).properties.set(definition.name, { hubspotDefined: false, ...definition });
    },
    addToken: (token) => {
      emulator.tokens.set(token, { expiresAt: null, expired: false });
    },
    expireToken: (token) => {
      const known = emulator.tokens.get(token);
      if (known) {
        known.expired = true;
        known.expiresAt = Math.min(known.expiresAt ?? emulator.clock(), emulator.clock());
      }
    },
    setRateLimit: (limits) => {
      emulator.limits = { ...emulator.limits, ...limits };
    },
    resetDailyQuota: () => emulator.resetDaily(),
    setFaults: (faults) => {
      emulator.faults = { ...NO_FAULTS, ...faults };
    },
    injectFault: (kind, count = 1) => {
      for (let i = 0; i < count; i++) emulator.forced.push(kind);
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
