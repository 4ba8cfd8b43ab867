// A stateful record API that honours Idempotency-Key as Stripe documents it, with seeded fault
// injection in front of it (rate limits, unavailability, slow answers) and behind it (a write that is
// committed but answered with a 500 or a reset connection). Bodies are parsed losslessly and stored as
// their raw text, so numbers beyond 2^53 and long decimals stay exact. node:http only.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse } from 'lossless-json';

/** Probabilities (0..1) per request of each fault kind. */
export interface FaultRates {
  /** 429 with Retry-After, before the idempotency layer: nothing applied or recorded. */
  rateLimited: number;
  /** 500 or 503 before the idempotency layer: nothing applied or recorded. */
  unavailable: number;
  /** The write is applied and its success recorded under the key, but the answer is a 500. */
  appliedThen500: number;
  /** The write is applied and its success recorded, then the connection is reset (no answer). */
  appliedThenReset: number;
  /** The answer is delayed by 50–300 ms. */
  slow: number;
}

export type FaultKind = keyof FaultRates;

export const NO_FAULTS: FaultRates = {
  rateLimited: 0,
  unavailable: 0,
  appliedThen500: 0,
  appliedThenReset: 0,
  slow: 0,
};

export interface IdempotentApiOptions {
  /** Seed of the fault generator (default 1). */
  seed?: number;
  faults?: Partial<FaultRates>;
  /** Retry-After of an injected 429, in seconds (default 0). */
  retryAfterSeconds?: number;
}

export interface IdempotentApiStats {
  requests: number;
  /** Writes (upserts and deletes) applied to the store. */
  applied: number;
  /** Requests answered with the recorded response of their key, without applying. */
  replays: number;
  /** Same key with other parameters, or a key applied twice. */
  violations: number;
  violationDetails: string[];
  /** Same key while its first request was still being processed (409, nothing recorded). */
  conflicts: number;
  /** Requests without an idempotency key (applied every time). */
  unkeyed: number;
  faults: Record<FaultKind, number>;
}

export interface IdempotentApi {
  /** http://127.0.0.1:PORT */
  url: string;
  /** Id → the raw JSON text of the record's last upsert body. */
  records(): Map<string, string>;
  stats(): IdempotentApiStats;
  setFaults(faults: Partial<FaultRates>): void;
  close(): Promise<void>;
}

/** What the idempotency layer remembers of a key's first request. */
interface Recorded {
  fingerprint: string;
  method: string;
  path: string;
  status: number;
  body: string;
}

/** A small LCG, so that a failing run can be replayed from its seed. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const RECORD_PATH = /^\/records\/([^/]+)$/;

function json(value: unknown): string {
  return JSON.stringify(value);
}

function errorBody(type: string, message: string): string {
  return json({ error: { type, message } });
}

class Emulator {
  readonly store = new Map<string, string>();
  readonly keys = new Map<string, Recorded>();
  readonly appliedKeys = new Set<string>();
  readonly inFlight = new Set<string>();
  readonly stats: IdempotentApiStats = {
    requests: 0,
    applied: 0,
    replays: 0,
    violations: 0,
    violationDetails: [],
    conflicts: 0,
    unkeyed: 0,
    faults: { ...NO_FAULTS },
  };
  faults: FaultRates;
  private readonly random: () => number;
  private readonly retryAfter: number;
  private version = 0;

  constructor(options: IdempotentApiOptions) {
    this.random = lcg(options.seed ?? 1);
    this.faults = { ...NO_FAULTS, ...options.faults };
    this.retryAfter = options.retryAfterSeconds ?? 0;
  }

  private roll(kind: FaultKind): boolean {
    const hit = this.faults[kind] > 0 && this.random() < this.faults[kind];
    if (hit) this.stats.faults[kind]++;
    return hit;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    this.stats.requests++;
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    // Faults in front of the API (a rate limiter, a load balancer): no endpoint ran, nothing is recorded.
    if (this.roll('rateLimited')) {
      send(res, 429, errorBody('rate_limit_error', 'Too many requests'), {
        'retry-after': String(this.retryAfter),
      });
      return;
    }
    if (this.roll('unavailable')) {
      const status = this.random() < 0.5 ? 500 : 503;
      send(res, status, errorBody('api_error', 'Service unavailable, nothing was applied'));
      return;
    }
    const key = headerValue(req.headers['idempotency-key']);
    if (key !== undefined && this.inFlight.has(key)) {
      this.stats.conflicts++;
      send(res, 409, errorBody('idempotency_error', 'A request with this key is still being processed'));
      return;
    }
    if (key !== undefined) this.inFlight.add(key);
    try {
      if (this.roll('slow')) await sleep(50 + Math.floor(this.random() * 250));
      const answer = this.respond(method, path, body, key);
      this.deliver(res, answer);
    } finally {
      if (key !== undefined) this.inFlight.delete(key);
    }
  }

  /** The idempotency layer: replay, refuse, or run the endpoint and record its result. */
  private respond(method: string, path: string, body: string, key: string | undefined): Answer {
    if (key === undefined) {
      this.stats.unkeyed++;
      return { ...this.endpoint(method, path, body), applied: true };
    }
    const fingerprint = createHash('sha256').update(`${method}\n${path}\n${body}`).digest('hex');
    const earlier = this.keys.get(key);
    if (earlier !== undefined) {
      if (earlier.fingerprint !== fingerprint) {
        this.violation(
          `key ${key} first used for ${earlier.method} ${earlier.path}, then for ${method} ${path} ${body.slice(0, 200)}`,
        );
        return {
          status: 400,
          body: errorBody(
            'idempotency_error',
            'Keys for idempotent requests can only be used with the same parameters they were first used with. ' +
              'Try using a key other than ' +
              key +
              ' if you meant to execute a different request.',
          ),
          applied: false,
        };
      }
      this.stats.replays++;
      return { status: earlier.status, body: earlier.body, applied: false, replayed: true };
    }
    const result = this.endpoint(method, path, body);
    // Results are saved only when the endpoint started executing (a body that fails validation is not).
    if (result.executed) {
      if (this.appliedKeys.has(key)) this.violation(`key ${key} applied twice (${method} ${path})`);
      this.appliedKeys.add(key);
      this.keys.set(key, { fingerprint, method, path, status: result.status, body: result.body });
    }
    return { ...result, applied: result.executed };
  }

  private violation(detail: string): void {
    this.stats.violations++;
    if (this.stats.violationDetails.length < 50) this.stats.violationDetails.push(detail);
  }

  /** The record endpoint itself. */
  private endpoint(
    method: string,
    path: string,
    body: string,
  ): { status: number; body: string; executed: boolean } {
    const match = RECORD_PATH.exec(path);
    if (!match?.[1])
      return { status: 404, body: errorBody('invalid_request_error', `no route ${path}`), executed: false };
    const id = decodeURIComponent(match[1]);
    if (method === 'DELETE') {
      if (!this.store.delete(id)) {
        return { status: 404, body: errorBody('invalid_request_error', `no record ${id}`), executed: true };
      }
      this.stats.applied++;
      return { status: 200, body: json({ id, deleted: true, version: ++this.version }), executed: true };
    }
    if (method !== 'PUT' && method !== 'POST') {
      return {
        status: 405,
        body: errorBody('invalid_request_error', `${method} not allowed`),
        executed: false,
      };
    }
    try {
      const value = parse(body);
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        throw new Error('not an object');
    } catch (error) {
      const message = `the body is no JSON object: ${(error as Error).message}`;
      return { status: 400, body: errorBody('invalid_request_error', message), executed: false };
    }
    this.store.set(id, body);
    this.stats.applied++;
    return { status: 200, body: json({ id, object: 'record', version: ++this.version }), executed: true };
  }

  /** Send the answer, or fail after the commit as a proxy in front of the API might. */
  private deliver(res: ServerResponse, answer: Answer): void {
    const committed = answer.applied || answer.replayed === true;
    if (committed && answer.status < 300 && this.roll('appliedThenReset')) {
      res.socket?.destroy();
      return;
    }
    if (committed && answer.status < 300 && this.roll('appliedThen500')) {
      send(res, 500, errorBody('api_error', 'Bad gateway after the write'));
      return;
    }
    send(res, answer.status, answer.body, answer.replayed ? { 'idempotent-replayed': 'true' } : {});
  }
}

interface Answer {
  status: number;
  body: string;
  applied: boolean;
  replayed?: boolean;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined || text === '' ? undefined : text;
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startIdempotentApi(options: IdempotentApiOptions = {}): Promise<IdempotentApi> {
  const emulator = new Emulator(options);
  const server: Server = createServer((req, res) => {
    emulator.handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, errorBody('api_error', String(error)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    records: () => new Map(emulator.store),
    stats: () => ({
      ...emulator.stats,
      violationDetails: [...emulator.stats.violationDetails],
      faults: { ...emulator.stats.faults },
    }),
    setFaults: (faults) => {
      emulator.faults = { ...NO_FAULTS, ...faults };
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
