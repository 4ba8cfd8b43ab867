// MySQL and MariaDB as a Source, through mysql2. The model query streams with backpressure (the driver
// pauses the socket while the CSV file catches up); every value arrives as the raw bytes of MySQL's text
// protocol and is staged through DuckDB casts, so DECIMAL, BIGINT and temporal values stay exact.
// The model can only read: one query (read-only.ts), run in a READ ONLY transaction.
import mysql from 'mysql2';
import type { SourceSpec } from '../../crds/index.ts';
import { SynclineError, isSynclineError } from '../../core/errors.ts';
import type { SecretResolver } from '../../core/secrets.ts';
import { stageTextRows, type TextValue } from '../shared/text-stage.ts';
import type { ConnectorContext, SourceConnector, StageRequest, StageResult } from '../../core/connectors.ts';
import { planColumn, type MysqlColumnPlan, type MysqlField } from './types.ts';
import { ER_READ_ONLY_TRANSACTION, probeModel } from './read-only.ts';
import { modelNotReadOnly } from '../shared/read-only.ts';
import { NETWORK_ERROR_CODES, TLS_ERROR_CODES } from '../shared/net-errors.ts';

type Settings = NonNullable<SourceSpec['mysql']>;

const CONNECT_TIMEOUT_MS = 15_000;

function settingsOf(spec: SourceSpec): Settings {
  if (!spec.mysql) throw new SynclineError('InvalidSource', 'a mysql Source needs the mysql block');
  return spec.mysql;
}

function tlsOptions(settings: Settings, secrets: SecretResolver): mysql.SslOptions | undefined {
  const mode = settings.tls ? (settings.tls.mode ?? 'require') : 'disable';
  if (mode === 'disable') return undefined;
  if (mode === 'require') return { rejectUnauthorized: false };
  const ca = settings.tls?.caCert ? secrets(settings.tls.caCert.secretKeyRef) : undefined;
  if (mode === 'verify-ca') return { ca, rejectUnauthorized: true, verifyIdentity: false };
  return { ca, rejectUnauthorized: true, verifyIdentity: true };
}

function connectionOptions(settings: Settings, secrets: SecretResolver): mysql.ConnectionOptions {
  return {
    host: settings.host,
    port: settings.port ?? 3306,
    user: settings.user,
    password: settings.password ? secrets(settings.password.secretKeyRef) : undefined,
    database: settings.database,
    ssl: tlsOptions(settings, secrets),
    charset: 'UTF8MB4_UNICODE_CI',
    timezone: 'Z',
    connectTimeout: CONNECT_TIMEOUT_MS,
    enableKeepAlive: true,
    // mysql2's default, stated because the model's safety rests on it (read-only.ts): one statement a query.
    multipleStatements: false,
    // Raw bytes for every value: conversion happens once, exactly, in types.ts.
    typeCast: (field) => field.buffer(),
  };
}

// mysql2 reports a connection that dropped mid-protocol with its own code.
const NETWORK_CODES = new Set([...NETWORK_ERROR_CODES, 'PROTOCOL_CONNECTION_LOST']);

interface MysqlError {
  code?: string;
  errno?: number;
  sqlState?: string;
  sqlMessage?: string;
  message?: string;
  fatal?: boolean;
}

function describeMysqlError(error: unknown): string {
  const e = (error ?? {}) as MysqlError;
  const message = e.sqlMessage ?? e.message ?? String(error);
  if (e.errno !== undefined && e.sqlState !== undefined)
    return `${message} (error ${e.errno} ${e.code ?? ''}, SQLSTATE ${e.sqlState})`.replace(' , ', ', ');
  return message;
}

/** Turn a failure to connect into a SynclineError with a reason a person can act on. */
export function mysqlConnectError(error: unknown, settings: Settings): SynclineError {
  if (isSynclineError(error)) return error;
  const e = (error ?? {}) as MysqlError;
  const where = `MySQL at ${settings.host}:${settings.port ?? 3306}`;
  const code = e.code ?? '';
  if (
    code === 'ER_ACCESS_DENIED_ERROR' ||
    code === 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR' ||
    code === 'ER_NOT_SUPPORTED_AUTH_MODE'
  ) {
    return new SynclineError(
      'AuthenticationFailed',
      `${where} refused user "${settings.user}": ${describeMysqlError(error)}. Check the user and the password Secret.`,
      { cause: error },
    );
  }
  if (code === 'ER_BAD_DB_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR') {
    return new SynclineError(
      'DatabaseNotFound',
      `${where} has no database "${settings.database}" that user "${settings.user}" may use: ${describeMysqlError(error)}`,
      { cause: error },
    );
  }
  const tlsRejected = code === 'HANDSHAKE_SSL_ERROR' && /certificate|altnames|verify/i.test(e.message ?? '');
  if (TLS_ERROR_CODES.has(code) || tlsRejected) {
    return new SynclineError(
      'TlsVerificationFailed',
      `the TLS certificate of ${where} could not be verified (${e.message ?? code}). Provide the CA in tls.caCert, or use tls.mode require.`,
      { cause: error },
    );
  }
  if (code === 'HANDSHAKE_NO_SSL_SUPPORT') {
    return new SynclineError(
      'SourceUnreachable',
      `${where} does not accept TLS connections: set tls.mode to disable.`,
      {
        // A setting to change, not a passing failure (the reason's kind says transient).
        retryable: false,
        cause: error,
      },
    );
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new SynclineError(
      'SourceUnreachable',
      `cannot resolve host "${settings.host}" (${code}). Check the host name.`,
      {
        cause: error,
        retryable: true,
      },
    );
  }
  if (NETWORK_CODES.has(code)) {
    return new SynclineError(
      'SourceUnreachable',
      `cannot connect to ${where} (${code}). Check the host and port, that the server is running, and network policies.`,
      { cause: error, retryable: true },
    );
  }
  if (e.errno !== undefined) {
    return new SynclineError(
      'SourceConnectionFailed',
      `${where} refused the connection: ${describeMysqlError(error)}`,
      {
        cause: error,
      },
    );
  }
  return new SynclineError('SourceUnreachable', `cannot connect to ${where}: ${describeMysqlError(error)}`, {
    cause: error,
    retryable: true,
  });
}

function queryError(
  error: unknown,
  settings: Settings,
  what: string,
  labels?: StageRequest['labels'],
): SynclineError {
  if (isSynclineError(error)) return error;
  const e = (error ?? {}) as MysqlError;
  if (NETWORK_CODES.has(e.code ?? '') || (e.fatal && e.errno === undefined))
    return mysqlConnectError(error, settings);
  if (labels && e.errno === ER_READ_ONLY_TRANSACTION)
    return modelNotReadOnly(labels, 'MySQL', describeMysqlError(error), error);
  return new SynclineError('SourceQueryFailed', `${what} failed in MySQL: ${describeMysqlError(error)}`, {
    cause: error,
  });
}

async function connect(
  settings: Settings,
  secrets: SecretResolver,
  ctx: ConnectorContext,
): Promise<mysql.Connection> {
  const options = connectionOptions(settings, secrets);
  const connection = mysql.createConnection(options);
  // A dropped idle connection must not crash the process.
  connection.on('error', (error) =>
    ctx.log.warn({ err: error.message, host: settings.host }, 'MySQL connection error'),
  );
  try {
    await new Promise<void>((resolve, reject) =>
      connection.connect((error) => (error ? reject(error) : resolve())),
    );
    await connection.promise().query("SET time_zone = '+00:00'");
    return connection;
  } catch (error) {
    connection.destroy();
    throw mysqlConnectError(error, settings);
  }
}

async function close(connection: mysql.Connection, ctx: ConnectorContext): Promise<void> {
  await connection
    .promise()
    .end()
    .catch((error: unknown) => {
      ctx.log.debug({ err: String(error) }, 'closing the MySQL connection');
      connection.destroy();
    });
}

/** Quote a possibly schema-qualified table name with backticks, part by part. */
export function quoteMysqlName(name: string): string {
  const parts: string[] = [];
  const re = /\s*(?:`((?:[^`]|``)*)`|([^.`]+))\s*(?:\.|$)/gy;
  let match: RegExpExecArray | null;
  while (re.lastIndex < name.length && (match = re.exec(name)) !== null) {
    const part = match[1] !== undefined ? match[1].replaceAll('``', '`') : (match[2] ?? '').trim();
    parts.push(`\`${part.replaceAll('`', '``')}\``);
  }
  if (parts.length === 0 || re.lastIndex < name.length) return `\`${name.replaceAll('`', '``')}\``;
  return parts.join('.');
}

export function modelSql(model: StageRequest['model']): string {
  if (model.query !== undefined) return model.query.trim().replace(/;+\s*$/, '');
  if (model.table !== undefined) return `SELECT * FROM ${quoteMysqlName(model.table)}`;
  throw new SynclineError(
    'InvalidModel',
    'a Model of a mysql Source needs query or table (dbt models are resolved before the run)',
  );
}

/** Wait for the result's column definitions, which the driver reports before the first row. */
function fieldsOf(stream: NodeJS.EventEmitter): Promise<MysqlField[]> {
  return new Promise((resolve, reject) => {
    stream.once('fields', (fields: MysqlField[] | undefined) => resolve(fields ?? []));
    stream.once('error', reject);
    stream.once('end', () => resolve([]));
  });
}

function converter(plans: MysqlColumnPlan[]): (row: (Buffer | null)[]) => TextValue[] {
  return (row) => {
    const values = new Array<TextValue>(plans.length);
    for (let i = 0; i < plans.length; i++) {
      const raw = row[i];
      values[i] = raw === null || raw === undefined ? null : plans[i]!.convert(raw);
    }
    return values;
  };
}

export const mysqlSource: SourceConnector = {
  async check(spec: SourceSpec, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(spec);
    const connection = await connect(settings, ctx.secrets, ctx);
    try {
      await connection.promise().query('SELECT 1');
    } catch (error) {
      throw queryError(error, settings, 'a test query');
    } finally {
      await close(connection, ctx);
    }
  },

  async stage(req: StageRequest): Promise<StageResult> {
    const settings = settingsOf(req.source);
    const sql = modelSql(req.model);
    const connection = await connect(settings, req.secrets, req);
    const onAbort = () => connection.destroy();
    req.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const { namespace, sync, runId } = req.labels;
      // The comment shows in the server's process list and logs: which Sync and run issued the query.
      const label = `syncline ${namespace}/${sync} ${runId}`.replaceAll('*/', '');
      const tagged = `/* ${label} */ ${sql}`;
      try {
        await connection.promise().query('START TRANSACTION READ ONLY');
        await probeModel(connection, sql, req.labels, describeMysqlError);
      } catch (error) {
        throw queryError(error, settings, 'the model query', req.labels);
      }
      const rows = connection.query({ sql: tagged, rowsAsArray: true }).stream({ highWaterMark: 512 });
      let fields: MysqlField[];
      try {
        fields = await fieldsOf(rows);
      } catch (error) {
        throw queryError(error, settings, 'the model query', req.labels);
      }
      const plans = fields.map(planColumn);
      return await stageTextRows(req, 'MySQL', plans, rows, {
        toValues: converter(plans),
        onReadError: (error) => queryError(error, settings, 'reading the model rows', req.labels),
      });
    } finally {
      req.signal.removeEventListener('abort', onAbort);
      await close(connection, req);
    }
  },
};
