// An emulator of the REST protocol snowflake-sdk speaks, for tests: login (password or key-pair JWT),
// query requests answered with JSON rowsets, large results split into gzip chunks served over HTTP behind
// the query-result master key (as S3 serves them with SSE-C), "in progress" answers and result polling
// for long queries, abort, heartbeat, token renewal, telemetry and session close. Statements run on
// DuckDB (engine.ts), with bind values (array binds too), DML answered with Snowflake's count columns,
// BEGIN/COMMIT/ROLLBACK and a lock writers wait on (transactions.ts), and users whose privileges can be
// limited (access.ts). stats.bytesSent counts every response body sent (what leaves "Snowflake"). Response shapes follow the SDK's source (services/sf.js, connection/statement.js,
// connection/result/*) and Snowflake's documented error codes.
import { createHash, createPublicKey, randomBytes, randomUUID, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { DuckDBConnection } from '@duckdb/node-api';
import { checkAccess, type Grants } from './access.ts';
import {
  SnowflakeEngine,
  SnowflakeSqlError,
  toSnowflakeError,
  type Binds,
  type SnowflakeColumn,
} from './engine.ts';
import { statementKind, WriteLock } from './transactions.ts';

export type WarehouseState = 'STARTED' | 'SUSPENDED' | 'QUOTA_EXCEEDED';

export interface EmulatorOptions {
  /** Account identifier the emulator answers for (others get HTTP 403, as an unknown account host does). */
  account?: string;
  /** How long a query request waits for its statement before answering "in progress" (Snowflake: ~45 s). */
  syncWaitMs?: number;
  /** Rows returned inline with the query response; the rest go to chunks. */
  inlineRows?: number;
  rowsPerChunk?: number;
}

export interface QueryRecord {
  queryId: string;
  requestId: string;
  sqlText: string;
  queryTag?: string;
  parameters: Record<string, unknown>;
  warehouse?: string;
  status: 'RUNNING' | 'SUCCESS' | 'FAILED_WITH_ERROR' | 'ABORTED';
  errorCode?: string;
  polls: number;
}

interface User {
  name: string;
  password?: string;
  publicKey?: KeyObject;
  defaultRole?: string;
  /** The user's own parameter defaults (ALTER USER ... SET), e.g. MULTI_STATEMENT_COUNT = 0. */
  parameters?: Record<string, unknown>;
  /** Only these privileges (access.ts); none: every privilege. */
  grants?: Grants;
}

interface Session {
  id: number;
  token: string;
  masterToken: string;
  user: string;
  warehouse?: string;
  database?: string;
  schema?: string;
  role?: string;
  parameters: Record<string, unknown>;
  connection: DuckDBConnection;
  /** BEGIN was run and no COMMIT or ROLLBACK yet. */
  inTransaction: boolean;
  /** Held from the transaction's first write to its end (Snowflake locks what a transaction writes). */
  releaseLock?: () => void;
}

interface RunningQuery {
  record: QueryRecord;
  session: Session;
  abort: AbortController;
  done: Promise<void>;
  outcome?: { body: unknown };
}

interface StoredResult {
  /** Set when the result lives in the session's temp catalog. */
  connection?: DuckDBConnection;
  table: string;
  columns: SnowflakeColumn[];
  total: number;
  qrmk: string;
}

export interface SnowflakeEmulator {
  url: string;
  account: string;
  engine: SnowflakeEngine;
  addUser(user: {
    name: string;
    password?: string;
    publicKeyPem?: string;
    defaultRole?: string;
    parameters?: Record<string, unknown>;
    grants?: Grants;
  }): void;
  setWarehouse(name: string, state: WarehouseState): void;
  createDatabase(name: string): Promise<void>;
  /** Run statements as an administrator (DuckDB SQL with Snowflake type names), in database.schema. */
  exec(sql: string, database?: string, schema?: string): Promise<void>;
  stats: {
    logins: {
      user: string;
      authenticator: string;
      ok: boolean;
      sessionParameters: Record<string, unknown>;
    }[];
    queries: QueryRecord[];
    heartbeats: number;
    abortRequests: number;
    chunkRequests: number;
    rejectedChunkRequests: number;
    telemetry: number;
    sessionsClosed: number;
    openSessions(): number;
    /** Bytes of every response body the emulator sent (query results, chunks, logins): what left "Snowflake". */
    bytesSent: number;
  };
  stop(): Promise<void>;
}

const DEFAULT_PARAMETERS: Record<string, unknown> = {
  TIMEZONE: 'America/Los_Angeles',
  TIMESTAMP_OUTPUT_FORMAT: 'YYYY-MM-DD HH24:MI:SS.FF3 TZHTZM',
  TIMESTAMP_NTZ_OUTPUT_FORMAT: 'YYYY-MM-DD HH24:MI:SS.FF3',
  TIMESTAMP_LTZ_OUTPUT_FORMAT: '',
  TIMESTAMP_TZ_OUTPUT_FORMAT: '',
  DATE_OUTPUT_FORMAT: 'YYYY-MM-DD',
  TIME_OUTPUT_FORMAT: 'HH24:MI:SS',
  BINARY_OUTPUT_FORMAT: 'HEX',
  CLIENT_RESULT_CHUNK_SIZE: 160,
  CLIENT_SESSION_KEEP_ALIVE: false,
  CLIENT_SESSION_KEEP_ALIVE_HEARTBEAT_FREQUENCY: 3600,
  QUERY_CONTEXT_CACHE_SIZE: 5,
  STATEMENT_TIMEOUT_IN_SECONDS: 0,
  JS_TREAT_INTEGER_AS_BIGINT: false,
};

function ok(data: unknown): unknown {
  return { data, code: null, message: null, success: true };
}

function failure(code: string, message: string, data: Record<string, unknown> = {}): unknown {
  return { data: { errorCode: code, internalError: false, ...data }, code, message, success: false };
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  let raw = Buffer.concat(parts);
  if (raw.length === 0) return {};
  if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
  return JSON.parse(raw.toString('utf8')) as unknown;
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  counted(res, Buffer.from(text, 'utf8'));
}

/** Bytes sent, by response, added to the emulator's stats (set when the server starts). */
let countBytes: (bytes: number) => void = () => undefined;

function counted(res: ServerResponse, body: Buffer): void {
  countBytes(body.length);
  res.end(body);
}

/** A request's bindings ({"1": {type, value}, ...}) in order; array values make an array bind. */
function bindsOf(body: Record<string, unknown>): Binds | undefined {
  const bindings = body.bindings as Record<string, { value: unknown }> | undefined;
  if (!bindings) return undefined;
  const values = Object.entries(bindings)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([, b]) => b.value);
  const text = (v: unknown) => (v === null || v === undefined ? null : String(v));
  if (values.some((v) => Array.isArray(v)))
    return { kind: 'arrays', columns: values.map((v) => (v as unknown[]).map(text)) };
  return { kind: 'values', values: values.map(text) };
}

function base64url(text: string): Buffer {
  return Buffer.from(text.replaceAll('-', '+').replaceAll('_', '/'), 'base64');
}

/** Verify a key-pair JWT as Snowflake does: RS256 signed by the user's key, issuer naming its fingerprint. */
function verifyJwt(token: string, account: string, user: User): boolean {
  const [header, payload, signature] = token.split('.');
  if (!header || !payload || !signature || !user.publicKey) return false;
  const valid = verify(
    'RSA-SHA256',
    Buffer.from(`${header}.${payload}`),
    user.publicKey,
    base64url(signature),
  );
  if (!valid) return false;
  const claims = JSON.parse(base64url(payload).toString('utf8')) as { iss?: string; sub?: string };
  const der = user.publicKey.export({ format: 'der', type: 'spki' });
  const fingerprint = `SHA256:${createHash('sha256').update(der).digest('base64')}`;
  const subject = `${account.toUpperCase()}.${user.name.toUpperCase()}`;
  return claims.sub === subject && claims.iss === `${subject}.${fingerprint}`;
}

export async function startSnowflakeEmulator(options: EmulatorOptions = {}): Promise<SnowflakeEmulator> {
  const account = (options.account ?? 'testorg-testaccount').toUpperCase();
  const syncWaitMs = options.syncWaitMs ?? 45_000;
  const inlineRows = options.inlineRows ?? 1000;
  const rowsPerChunk = options.rowsPerChunk ?? 20_000;
  const engine = await SnowflakeEngine.create();
  const users = new Map<string, User>();
  const warehouses = new Map<string, WarehouseState>();
  const sessions = new Map<string, Session>();
  const masterTokens = new Map<string, Session>();
  const queries = new Map<string, RunningQuery>();
  const results = new Map<string, StoredResult>();
  let sessionCounter = 1000;
  let baseUrl = '';
  const stats: SnowflakeEmulator['stats'] = {
    logins: [],
    queries: [],
    heartbeats: 0,
    abortRequests: 0,
    chunkRequests: 0,
    rejectedChunkRequests: 0,
    telemetry: 0,
    sessionsClosed: 0,
    openSessions: () => sessions.size,
    bytesSent: 0,
  };
  countBytes = (bytes) => (stats.bytesSent += bytes);
  const writeLock = new WriteLock();

  const parameterList = (params: Record<string, unknown>) =>
    Object.entries(params).map(([name, value]) => ({ name, value }));

  function sessionOf(req: IncomingMessage): Session | undefined {
    const match = /Snowflake Token="([^"]+)"/.exec(req.headers.authorization ?? '');
    return match ? sessions.get(match[1] ?? '') : undefined;
  }

  async function login(req: IncomingMessage, url: URL, res: ServerResponse): Promise<void> {
    const body = (await readBody(req)) as { data?: Record<string, unknown> };
    const data = body.data ?? {};
    if (String(data.ACCOUNT_NAME ?? '').toUpperCase() !== account) {
      // An account that does not exist has no login endpoint: Snowflake's front door answers 403.
      send(res, 403, '<html><body>Forbidden</body></html>', { 'content-type': 'text/html' });
      return;
    }
    const user = users.get(String(data.LOGIN_NAME ?? '').toUpperCase());
    const authenticator = String(data.AUTHENTICATOR ?? 'SNOWFLAKE');
    const sessionParameters = (data.SESSION_PARAMETERS ?? {}) as Record<string, unknown>;
    let accepted = false;
    if (user && authenticator === 'SNOWFLAKE_JWT')
      accepted = verifyJwt(String(data.TOKEN ?? ''), account, user);
    else if (user && authenticator !== 'SNOWFLAKE_JWT')
      accepted = user.password !== undefined && data.PASSWORD === user.password;
    stats.logins.push({
      user: String(data.LOGIN_NAME ?? ''),
      authenticator,
      ok: accepted,
      sessionParameters,
    });
    if (!accepted) {
      if (authenticator === 'SNOWFLAKE_JWT') {
        send(
          res,
          200,
          failure('390144', 'JWT token is invalid.', { authnMethod: 'KEY_PAIR', nextAction: 'RETRY_LOGIN' }),
        );
      } else {
        send(
          res,
          200,
          failure('390100', 'Incorrect username or password was specified.', {
            authnMethod: 'USERNAME_PASSWORD',
            nextAction: 'RETRY_LOGIN',
          }),
        );
      }
      return;
    }
    const warehouse = url.searchParams.get('warehouse') ?? undefined;
    const database = url.searchParams.get('databaseName') ?? undefined;
    const schema = url.searchParams.get('schemaName') ?? (database ? 'PUBLIC' : undefined);
    const role = url.searchParams.get('roleName') ?? user?.defaultRole ?? 'PUBLIC';
    const sessionInfo = { user: user!.name, warehouse, database, schema, role };
    const session: Session = {
      id: ++sessionCounter,
      token: `ETMsDgAAA${randomBytes(24).toString('hex')}`,
      masterToken: `ETMsDgAAA${randomBytes(24).toString('hex')}`,
      ...sessionInfo,
      parameters: { ...DEFAULT_PARAMETERS, ...user!.parameters, ...sessionParameters },
      connection: await engine.connect(sessionInfo),
      inTransaction: false,
    };
    sessions.set(session.token, session);
    masterTokens.set(session.masterToken, session);
    send(
      res,
      200,
      ok({
        masterToken: session.masterToken,
        token: session.token,
        validityInSeconds: 3600,
        masterValidityInSeconds: 14400,
        displayUserName: user!.name.toUpperCase(),
        serverVersion: '9.0.0-emulator',
        firstLogin: false,
        remMeToken: null,
        remMeValidityInSeconds: 0,
        healthCheckInterval: 45,
        newClientForUpgrade: null,
        sessionId: session.id,
        parameters: parameterList(session.parameters),
        sessionInfo: {
          databaseName: database?.toUpperCase() ?? null,
          schemaName: schema?.toUpperCase() ?? null,
          warehouseName: warehouse?.toUpperCase() ?? null,
          roleName: role.toUpperCase(),
        },
        idToken: null,
        idTokenValidityInSeconds: 0,
        responseData: null,
        mfaToken: null,
        mfaTokenValidityInSeconds: 0,
      }),
    );
  }

  function warehouseError(session: Session): SnowflakeSqlError | undefined {
    const name = session.warehouse?.toUpperCase();
    const state = name ? warehouses.get(name) : undefined;
    if (state === 'STARTED') return undefined;
    if (state === 'QUOTA_EXCEEDED') {
      return new SnowflakeSqlError(
        '090073',
        '22000',
        `Warehouse '${name}' cannot be resumed because resource monitor 'RM_${name}' has exceeded its quota.`,
      );
    }
    return new SnowflakeSqlError(
      '000606',
      '57P03',
      "No active warehouse selected in the current session.  Select an active warehouse with the 'use warehouse' command.\n",
    );
  }

  /** SYSTEM$WAIT(n): sleep like Snowflake does (abortably), then stand in for its return value. */
  async function applyWaits(sql: string, signal: AbortSignal): Promise<string> {
    let result = sql;
    for (const match of sql.matchAll(/SYSTEM\$WAIT\s*\(\s*(\d+(?:\.\d+)?)\s*\)/gi)) {
      const seconds = Number(match[1]);
      await sleep(seconds * 1000, undefined, { signal });
      result = result.replace(match[0], `'waited ${seconds} seconds'`);
    }
    return result;
  }

  /**
   * The number of statements of a request, refused as Snowflake refuses it when it is not
   * MULTI_STATEMENT_COUNT (default 1; 0 allows any number).
   */
  async function statementCount(
    session: Session,
    sql: string,
    params: Record<string, unknown>,
  ): Promise<number> {
    const desired = Number(params.MULTI_STATEMENT_COUNT ?? 1);
    const count = (await engine.statementCount(session.connection, sql, session)) ?? 1;
    if (desired !== 0 && count !== desired) {
      throw new SnowflakeSqlError(
        '000008',
        '0A000',
        `Actual statement count ${count} did not match the desired statement count ${desired}.`,
      );
    }
    return count;
  }

  function runStatement(session: Session, requestId: string, body: Record<string, unknown>): RunningQuery {
    const sqlText = String(body.sqlText ?? '');
    const statementParams = (body.parameters ?? {}) as Record<string, unknown>;
    const params = { ...session.parameters, ...statementParams };
    const record: QueryRecord = {
      queryId: randomUUID(),
      requestId,
      sqlText,
      queryTag: params.QUERY_TAG === undefined ? undefined : String(params.QUERY_TAG),
      parameters: statementParams,
      warehouse: session.warehouse,
      status: 'RUNNING',
      polls: 0,
    };
    stats.queries.push(record);
    const abort = new AbortController();
    const running: RunningQuery = { record, session, abort, done: Promise.resolve() };
    const timeoutSeconds = Number(params.STATEMENT_TIMEOUT_IN_SECONDS ?? 0);
    let timedOut = false;
    const timer =
      timeoutSeconds > 0
        ? setTimeout(() => {
            timedOut = true;
            abort.abort();
          }, timeoutSeconds * 1000)
        : undefined;
    const onAbort = () => session.connection.interrupt();
    abort.signal.addEventListener('abort', onAbort, { once: true });
    running.done = (async () => {
      try {
        const alter = /^\s*ALTER\s+SESSION\s+SET\s+([\s\S]+?);?\s*$/i.exec(sqlText);
        const show = /^\s*SHOW\s+WAREHOUSES(?:\s+LIKE\s+'([^']*)')?\s*;?\s*$/i.exec(sqlText);
        const use = /^\s*USE\s+(WAREHOUSE|DATABASE|SCHEMA|ROLE)\s+("?[\w$]+"?)\s*;?\s*$/i.exec(sqlText);
        if (alter) {
          for (const assignment of (alter[1] ?? '').split(',')) {
            const [key, ...rest] = assignment.split('=');
            const raw = rest.join('=').trim();
            session.parameters[(key ?? '').trim().toUpperCase()] = /^'.*'$/s.test(raw)
              ? raw.slice(1, -1)
              : /^\d+$/.test(raw)
                ? Number(raw)
                : raw;
          }
          running.outcome = {
            body: statusResult(record, session, params, 'Statement executed successfully.'),
          };
        } else if (use) {
          const kind = (use[1] ?? '').toLowerCase() as 'warehouse' | 'database' | 'schema' | 'role';
          session[kind] = (use[2] ?? '').replaceAll('"', '');
          running.outcome = {
            body: statusResult(record, session, params, 'Statement executed successfully.'),
          };
        } else if (show) {
          running.outcome = { body: showWarehouses(record, session, params, show[1]) };
        } else {
          // Statements without a table run in Snowflake's cloud services; the rest need a running warehouse.
          const needsWarehouse = /\bFROM\b/i.test(sqlText);
          const blocked = needsWarehouse ? warehouseError(session) : undefined;
          if (blocked) throw blocked;
          const sql = await applyWaits(sqlText, abort.signal);
          const kind = statementKind(sql);
          if (kind === 'begin' || kind === 'commit' || kind === 'rollback') {
            if (kind === 'begin') session.inTransaction = true;
            else await endTransaction(session, kind === 'commit');
            running.outcome = {
              body: statusResult(record, session, params, 'Statement executed successfully.'),
            };
          } else if ((await statementCount(session, sql, params)) > 1) {
            await engine.executeAll(session.connection, sql, session);
            running.outcome = {
              body: statusResult(record, session, params, 'Multiple statements executed successfully.'),
            };
          } else {
            checkAccess(sql, users.get(session.user.toUpperCase())?.grants, session);
            const result = await writing(session, kind, () =>
              engine.execute(
                session.connection,
                sql,
                session,
                bindsOf(body),
                session.releaseLock !== undefined,
              ),
            );
            if (abort.signal.aborted) throw new Error('INTERRUPT');
            if (result.dml) {
              running.outcome = { body: dmlResult(record, session, params, result.dml) };
            } else if (result.table === undefined) {
              running.outcome = { body: statusResult(record, session, params, result.statusText ?? '') };
            } else {
              const stored: StoredResult = {
                table: result.table,
                columns: result.columns,
                total: result.total,
                qrmk: randomBytes(32).toString('base64'),
                ...(result.table.startsWith('temp.') ? { connection: session.connection } : {}),
              };
              results.set(record.queryId, stored);
              running.outcome = { body: await resultBody(record, session, params, stored) };
            }
          }
        }
        record.status = 'SUCCESS';
      } catch (error) {
        let sfError: SnowflakeSqlError;
        if (timedOut) {
          sfError = new SnowflakeSqlError(
            '000630',
            '57014',
            `Statement reached its statement or warehouse timeout of ${timeoutSeconds} second(s) and was canceled.`,
          );
        } else if (abort.signal.aborted) {
          sfError = new SnowflakeSqlError('000604', '57014', 'SQL execution canceled');
        } else sfError = toSnowflakeError(error);
        record.status = abort.signal.aborted ? 'ABORTED' : 'FAILED_WITH_ERROR';
        record.errorCode = sfError.code;
        running.outcome = {
          body: failure(sfError.code, sfError.message, {
            sqlState: sfError.sqlState,
            queryId: record.queryId,
            line: -1,
            pos: -1,
            age: 0,
            type: 'COMPILATION',
          }),
        };
      } finally {
        if (timer) clearTimeout(timer);
        abort.signal.removeEventListener('abort', onAbort);
      }
    })();
    queries.set(record.queryId, running);
    return running;
  }

  /** End the session's transaction: COMMIT or ROLLBACK what it wrote, and let other writers go. */
  async function endTransaction(session: Session, commit: boolean): Promise<void> {
    session.inTransaction = false;
    const release = session.releaseLock;
    if (!release) return;
    session.releaseLock = undefined;
    try {
      await session.connection.run(commit ? 'COMMIT' : 'ROLLBACK');
    } finally {
      release();
    }
  }

  /**
   * Run a statement under Snowflake's transaction rules: a write waits for the lock another transaction
   * holds; in a transaction, the lock and DuckDB's transaction start at its first write (so that the
   * statements before it read what is committed, as in Snowflake's READ COMMITTED), and a DDL statement
   * commits the open transaction first and then runs on its own.
   */
  async function writing<T>(session: Session, kind: string, run: () => Promise<T>): Promise<T> {
    if (kind === 'query') return run();
    if (kind === 'ddl' && session.inTransaction) await endTransaction(session, true);
    if (!session.inTransaction) {
      const release = await writeLock.acquire();
      try {
        return await run();
      } finally {
        release();
      }
    }
    if (!session.releaseLock) {
      session.releaseLock = await writeLock.acquire();
      await session.connection.run('BEGIN TRANSACTION');
    }
    return run();
  }

  /** A DML statement's answer: its counts, as Snowflake's columns of them (the SDK sums them). */
  function dmlResult(
    record: QueryRecord,
    session: Session,
    params: Record<string, unknown>,
    dml: { id: number; columns: string[]; counts: string[] },
  ): unknown {
    return ok({
      parameters: parameterList(params),
      rowtype: dml.columns.map((name) => ({
        name,
        database: '',
        schema: '',
        table: '',
        type: 'fixed',
        precision: 19,
        scale: 0,
        length: null,
        byteLength: null,
        nullable: false,
        collation: null,
      })),
      rowset: [dml.counts],
      total: 1,
      returned: 1,
      queryId: record.queryId,
      statementTypeId: dml.id,
      ...sessionFields(session),
    });
  }

  function sessionFields(session: Session) {
    return {
      finalDatabaseName: session.database?.toUpperCase() ?? null,
      finalSchemaName: session.schema?.toUpperCase() ?? null,
      finalWarehouseName: session.warehouse?.toUpperCase() ?? null,
      finalRoleName: (session.role ?? 'PUBLIC').toUpperCase(),
      databaseProvider: null,
      numberOfBinds: 0,
      arrayBindSupported: false,
      version: 1,
      queryResultFormat: 'json',
      queryContext: { entries: [] },
      sendResultTime: Date.now(),
    };
  }

  /** A result of text columns computed by the emulator itself (statement status, SHOW output). */
  function textResult(
    record: QueryRecord,
    session: Session,
    params: Record<string, unknown>,
    names: string[],
    rows: string[][],
  ): unknown {
    const textColumn = (name: string) => ({
      name,
      database: '',
      schema: '',
      table: '',
      type: 'text',
      precision: null,
      scale: null,
      length: 16777216,
      byteLength: 16777216,
      nullable: true,
      collation: null,
    });
    return ok({
      parameters: parameterList(params),
      rowtype: names.map(textColumn),
      rowset: rows,
      total: rows.length,
      returned: rows.length,
      queryId: record.queryId,
      statementTypeId: 0x3000,
      ...sessionFields(session),
    });
  }

  function statusResult(
    record: QueryRecord,
    session: Session,
    params: Record<string, unknown>,
    status: string,
  ): unknown {
    return textResult(record, session, params, ['status'], [[status]]);
  }

  /** SHOW WAREHOUSES [LIKE 'pattern']: name, state and auto_resume as Snowflake lists them. */
  function showWarehouses(
    record: QueryRecord,
    session: Session,
    params: Record<string, unknown>,
    pattern?: string,
  ): unknown {
    const re =
      pattern === undefined
        ? /.*/
        : new RegExp(
            `^${pattern
              .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
              .replaceAll('%', '.*')
              .replaceAll('_', '.')}$`,
            'i',
          );
    const rows = [...warehouses.entries()]
      .filter(([name]) => re.test(name))
      .map(([name, state]) => [
        name,
        state === 'STARTED' ? 'STARTED' : 'SUSPENDED',
        state === 'SUSPENDED' ? 'false' : 'true',
      ]);
    return textResult(record, session, params, ['name', 'state', 'auto_resume'], rows);
  }

  async function resultBody(
    record: QueryRecord,
    session: Session,
    params: Record<string, unknown>,
    stored: StoredResult,
  ): Promise<unknown> {
    const firstRows = Math.min(inlineRows, stored.total);
    const rowset = await engine.readRows(stored.table, stored.columns, 0, firstRows, stored.connection);
    const chunks: { url: string; rowCount: number; uncompressedSize: number; compressedSize: number }[] = [];
    for (let start = firstRows, n = 0; start < stored.total; start += rowsPerChunk, n++) {
      const rowCount = Math.min(rowsPerChunk, stored.total - start);
      chunks.push({
        url: `${baseUrl}/chunks/${record.queryId}/${n}?start=${start}&count=${rowCount}`,
        rowCount,
        uncompressedSize: 0,
        compressedSize: 0,
      });
    }
    return ok({
      parameters: parameterList(params),
      rowtype: stored.columns,
      rowset,
      total: stored.total,
      returned: stored.total,
      queryId: record.queryId,
      statementTypeId: 0x1000,
      ...(chunks.length > 0
        ? {
            chunks,
            qrmk: stored.qrmk,
            chunkHeaders: {
              'x-amz-server-side-encryption-customer-algorithm': 'AES256',
              'x-amz-server-side-encryption-customer-key': stored.qrmk,
            },
          }
        : {}),
      ...sessionFields(session),
    });
  }

  /** Answer with the outcome if the statement finishes within the wait, else "in progress". */
  async function answer(running: RunningQuery, res: ServerResponse): Promise<void> {
    const wait = new AbortController();
    const finished = await Promise.race([
      running.done.then(() => true),
      sleep(syncWaitMs, false, { signal: wait.signal }).catch(() => false),
    ]);
    wait.abort();
    if (finished && running.outcome) {
      send(res, 200, running.outcome.body);
      return;
    }
    running.record.polls++;
    send(res, 200, {
      data: {
        queryId: running.record.queryId,
        getResultUrl: `/queries/${running.record.queryId}/result`,
        queryAbortsAfterSecs: 300,
        progressDesc: null,
      },
      code: '333333',
      message:
        'Asynchronous execution in progress. Use provided query id to perform query monitoring and management.',
      success: true,
    });
  }

  async function serveChunk(url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const [, , queryId] = url.pathname.split('/');
    const stored = results.get(queryId ?? '');
    if (!stored || req.headers['x-amz-server-side-encryption-customer-key'] !== stored.qrmk) {
      stats.rejectedChunkRequests++;
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
      );
      return;
    }
    stats.chunkRequests++;
    const start = Number(url.searchParams.get('start'));
    const count = Number(url.searchParams.get('count'));
    const rows = await engine.readRows(stored.table, stored.columns, start, start + count, stored.connection);
    const text = rows.map((row) => JSON.stringify(row)).join(',');
    res.writeHead(200, { 'content-type': 'binary/octet-stream', 'content-encoding': 'gzip' });
    counted(res, gzipSync(Buffer.from(text, 'utf8')));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', baseUrl);
    const path = url.pathname;
    if (req.method === 'POST' && path === '/session/v1/login-request') return login(req, url, res);
    if (req.method === 'GET' && path.startsWith('/chunks/')) return serveChunk(url, req, res);
    if (req.method === 'POST' && path === '/session/token-request') {
      const match = /Snowflake Token="([^"]+)"/.exec(req.headers.authorization ?? '');
      const session = masterTokens.get(match?.[1] ?? '');
      await readBody(req);
      if (!session)
        return send(
          res,
          200,
          failure('390114', 'Authentication token has expired.  The user must authenticate again.'),
        );
      sessions.delete(session.token);
      session.token = `ETMsDgAAA${randomBytes(24).toString('hex')}`;
      sessions.set(session.token, session);
      return send(
        res,
        200,
        ok({
          sessionToken: session.token,
          validityInSecondsST: 3600,
          masterToken: session.masterToken,
          validityInSecondsMT: 14400,
          sessionId: session.id,
        }),
      );
    }
    const session = sessionOf(req);
    if (!session) {
      await readBody(req).catch(() => undefined);
      return send(res, 401, {
        code: '390104',
        message: 'Session token invalid or expired.',
        success: false,
        data: null,
      });
    }
    if (req.method === 'POST' && path === '/session' && url.searchParams.get('delete') === 'true') {
      sessions.delete(session.token);
      masterTokens.delete(session.masterToken);
      await endTransaction(session, false).catch(() => undefined);
      session.connection.closeSync();
      stats.sessionsClosed++;
      return send(res, 200, ok(null));
    }
    if (req.method === 'POST' && path === '/session/heartbeat') {
      stats.heartbeats++;
      return send(res, 200, ok({}));
    }
    if (req.method === 'POST' && path === '/telemetry/send') {
      stats.telemetry++;
      await readBody(req);
      return send(res, 200, ok(null));
    }
    if (req.method === 'POST' && path === '/queries/v1/query-request') {
      const body = (await readBody(req)) as Record<string, unknown>;
      const requestId = url.searchParams.get('requestId') ?? randomUUID();
      return answer(runStatement(session, requestId, body), res);
    }
    const resultMatch = /^\/queries\/([^/]+)\/result$/.exec(path);
    if (req.method === 'GET' && resultMatch) {
      const running = queries.get(resultMatch[1] ?? '');
      if (!running)
        return send(
          res,
          200,
          failure('000709', `Statement ${resultMatch[1]} not found`, { sqlState: '02000' }),
        );
      return answer(running, res);
    }
    const abortMatch = /^\/queries\/([^/]+)\/abort-request$/.exec(path);
    if (req.method === 'POST' && abortMatch) {
      const body = (await readBody(req)) as { requestId?: string };
      stats.abortRequests++;
      const running =
        abortMatch[1] === 'v1'
          ? [...queries.values()].find((q) => q.record.requestId === body.requestId)
          : queries.get(abortMatch[1] ?? '');
      if (running && running.record.status === 'RUNNING') running.abort.abort();
      return send(res, 200, ok(null));
    }
    const monitorMatch = /^\/monitoring\/queries\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && monitorMatch) {
      const running = queries.get(monitorMatch[1] ?? '');
      return send(
        res,
        200,
        ok({ queries: running ? [{ id: running.record.queryId, status: running.record.status }] : [] }),
      );
    }
    send(res, 404, { success: false, code: '404', message: `no route ${req.method} ${path}`, data: null });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent)
        send(res, 500, { success: false, code: '000603', message: String(error), data: null });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: baseUrl,
    account,
    engine,
    addUser({ name, password, publicKeyPem, defaultRole, parameters, grants }) {
      users.set(name.toUpperCase(), {
        name,
        password,
        publicKey: publicKeyPem ? createPublicKey(publicKeyPem) : undefined,
        defaultRole,
        parameters,
        grants,
      });
    },
    setWarehouse(name, state) {
      warehouses.set(name.toUpperCase(), state);
    },
    createDatabase: (name) => engine.createDatabase(name),
    async exec(sql, database, schema = 'PUBLIC') {
      const connection = await engine.connect({ user: 'admin', database, schema });
      try {
        for (const statement of sql.split(/;\s*(?:\n|$)/).filter((s) => s.trim() !== '')) {
          await connection.run(engine.rewrite(statement, { user: 'admin', database, schema }));
        }
      } finally {
        connection.closeSync();
      }
    },
    stats,
    async stop() {
      for (const running of queries.values()) running.abort.abort();
      await Promise.allSettled([...queries.values()].map((q) => q.done));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      for (const session of sessions.values()) session.connection.closeSync();
      engine.close();
    },
  };
}
