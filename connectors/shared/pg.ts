// Connecting to PostgreSQL (sources and destinations share it): client settings from the resource,
// TLS modes as libpq names them, and errors turned into SynclineErrors with reasons a person can act on.
import pg from 'pg';
import type { SecretValue } from '../../crds/index.ts';
import { SynclineError, isSynclineError } from '../../core/errors.ts';
import type { SecretResolver } from '../../core/secrets.ts';
import type { Logger } from '../../core/connectors.ts';
import { NETWORK_ERROR_CODES, TLS_ERROR_CODES } from './net-errors.ts';

export interface PgConnectionSettings {
  host: string;
  port?: number;
  database: string;
  user: string;
  password?: SecretValue;
  tls?: { mode?: 'disable' | 'require' | 'verify-ca' | 'verify-full'; caCert?: SecretValue };
}

export type Side = 'Source' | 'Destination';

const CONNECT_TIMEOUT_MS = 15_000;

function tlsOptions(settings: PgConnectionSettings, secrets: SecretResolver): pg.ClientConfig['ssl'] {
  // Without a tls block the connection is not encrypted (node-postgres cannot "prefer" TLS as libpq does).
  const mode = settings.tls ? (settings.tls.mode ?? 'require') : 'disable';
  if (mode === 'disable') return false;
  if (mode === 'require') return { rejectUnauthorized: false };
  const ca = settings.tls?.caCert ? secrets(settings.tls.caCert.secretKeyRef) : undefined;
  if (mode === 'verify-ca') return { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined };
  return { rejectUnauthorized: true, ca, servername: settings.host };
}

export function pgClientConfig(settings: PgConnectionSettings, secrets: SecretResolver): pg.ClientConfig {
  return {
    host: settings.host,
    port: settings.port ?? 5432,
    database: settings.database,
    user: settings.user,
    password: settings.password ? secrets(settings.password.secretKeyRef) : undefined,
    ssl: tlsOptions(settings, secrets),
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: 'syncline',
    keepAlive: true,
  };
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A PostgreSQL server error (it carries a five-character SQLSTATE). */
export function isPgServerError(error: unknown): error is pg.DatabaseError {
  const code = errorCode(error);
  return code !== undefined && /^[0-9A-Z]{5}$/.test(code) && !NETWORK_ERROR_CODES.has(code);
}

/** Whether an error means the connection is gone or could not be made (as opposed to a bad statement). */
export function isPgConnectionError(error: unknown): boolean {
  const code = errorCode(error);
  if (code !== undefined && (NETWORK_ERROR_CODES.has(code) || code.startsWith('08') || code === '57P01'))
    return true;
  const message = error instanceof Error ? error.message : String(error);
  return /Connection terminated|timeout expired|connection timeout|Client has encountered a connection error|not queryable/i.test(
    message,
  );
}

/** Turn a failure to connect (or to run the first statement) into a SynclineError. */
export function pgConnectError(error: unknown, settings: PgConnectionSettings, side: Side): SynclineError {
  if (isSynclineError(error)) return error;
  const where = `PostgreSQL at ${settings.host}:${settings.port ?? 5432}`;
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  const unreachable = side === 'Source' ? 'SourceUnreachable' : 'DestinationUnreachable';
  if (code === '28P01' || code === '28000') {
    return new SynclineError(
      'AuthenticationFailed',
      `${where} refused user "${settings.user}": ${message}. Check the user and the password Secret.`,
      { cause: error },
    );
  }
  if (code === '3D000') {
    return new SynclineError(
      'DatabaseNotFound',
      `${where} has no database "${settings.database}". Check the database name.`,
      { cause: error },
    );
  }
  if (code !== undefined && TLS_ERROR_CODES.has(code)) {
    return new SynclineError(
      'TlsVerificationFailed',
      `the TLS certificate of ${where} could not be verified (${code}). Provide the CA in tls.caCert, or use tls.mode require.`,
      { cause: error },
    );
  }
  if (/does not support SSL/i.test(message)) {
    return new SynclineError(
      unreachable,
      `${where} does not accept TLS connections: set tls.mode to disable.`,
      // A setting to change, not a passing failure (the reason's kind says transient).
      { cause: error, retryable: false },
    );
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new SynclineError(
      unreachable,
      `cannot resolve host "${settings.host}" (${code}). Check the host name.`,
      {
        cause: error,
        retryable: true,
      },
    );
  }
  if (code === 'ECONNREFUSED') {
    return new SynclineError(
      unreachable,
      `${where} refused the connection (ECONNREFUSED). Check the host and port, and that the server is running.`,
      { cause: error, retryable: true },
    );
  }
  if (isPgConnectionError(error)) {
    return new SynclineError(
      unreachable,
      `cannot connect to ${where}: ${message}. Check the host, port and network policies.`,
      { cause: error, retryable: true },
    );
  }
  if (isPgServerError(error)) {
    return new SynclineError(
      side === 'Source' ? 'SourceConnectionFailed' : 'DestinationConnectionFailed',
      `${where} refused the connection: ${code} ${message}`,
      {
        cause: error,
      },
    );
  }
  return new SynclineError(unreachable, `cannot connect to ${where}: ${message}`, {
    cause: error,
    retryable: true,
  });
}

/** Text of a server error with its SQLSTATE, detail and hint, for messages and rejected rows. */
export function describePgError(error: unknown): string {
  if (!isPgServerError(error)) return error instanceof Error ? error.message : String(error);
  const parts = [`${error.message} (SQLSTATE ${error.code})`];
  if (error.detail) parts.push(`detail: ${error.detail}`);
  if (error.hint) parts.push(`hint: ${error.hint}`);
  return parts.join('; ');
}

/**
 * Connect one client with session settings that make text output exact and parseable: UTC time zone,
 * ISO dates, shortest exact floats. An 'error' listener keeps a dropped idle connection from crashing the process.
 */
export async function connectPg(
  settings: PgConnectionSettings,
  secrets: SecretResolver,
  log: Logger,
  side: Side,
  sessionSettings: Record<string, string> = {},
): Promise<pg.Client> {
  const client = new pg.Client(pgClientConfig(settings, secrets));
  client.on('error', (error) =>
    log.warn({ err: error.message, host: settings.host }, 'PostgreSQL connection error'),
  );
  try {
    await client.connect();
    const session = {
      TimeZone: 'UTC',
      DateStyle: 'ISO, MDY',
      IntervalStyle: 'postgres',
      extra_float_digits: '1',
      ...sessionSettings,
    };
    const sets = Object.entries(session).map(([name, value]) => `SET ${name} = ${pgLiteral(value)}`);
    await client.query(sets.join('; '));
    return client;
  } catch (error) {
    await client
      .end()
      .catch((endError: unknown) => log.debug({ err: String(endError) }, 'closing a failed connection'));
    throw pgConnectError(error, settings, side);
  }
}

function pgLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
