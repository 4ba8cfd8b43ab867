// Snowflake as a Source, through snowflake-sdk. Password or key-pair (JWT) login; the model query runs
// with a query tag naming the Sync and run, the Source's statement timeout and output formats that make
// every value exact text; its result streams (the SDK fetches the large-result chunks a few at a time,
// and backpressure pauses it) into DuckDB through a CSV file.
// The model can only read as far as Snowflake lets a client enforce it (it has no read-only transaction):
// it runs as the subquery of SELECT * FROM (...) AS m, so it must be a query, and with MULTI_STATEMENT_COUNT=1,
// so a second statement is refused before any runs. The boundary is the role: see README.md.
import snowflake from 'snowflake-sdk';
import type { SourceSpec } from '../../crds/index.ts';
import { SynclineError, isSynclineError } from '../../core/errors.ts';
import type { SecretResolver } from '../../core/secrets.ts';
import { stageTextRows, type TextValue } from '../shared/text-stage.ts';
import type {
  ConnectorContext,
  SourceConnector,
  StageRequest,
  StageResult,
  WarehouseSnapshot,
  WarehouseSnapshotRequest,
} from '../../core/connectors.ts';
import { OUTPUT_FORMATS } from './types.ts';
import { SnowflakeClient } from './client.ts';
import { SnowflakeWarehouseSnapshot } from './snapshot.ts';
import { columnsOf, stageChosen } from './staging.ts';
import { modelLabel, modelNotReadOnly } from '../shared/read-only.ts';

type Settings = NonNullable<SourceSpec['snowflake']>;

// VARIANT, OBJECT and ARRAY values stay the JSON text Snowflake sent: JSON.parse would round big numbers.
// (The SDK's configuration is process-wide; nothing else in a runner uses snowflake-sdk.)
snowflake.configure({
  logLevel: 'OFF',
  additionalLogToConsole: false,
  jsonColumnVariantParser: (raw: string) => raw,
} as snowflake.ConfigureOptions);

// Every other type as text; semi-structured values are already text through the parser above.
export const FETCH_AS_STRING: snowflake.DataType[] = ['String', 'Boolean', 'Number', 'Date', 'Buffer'];

function settingsOf(spec: SourceSpec): Settings {
  if (!spec.snowflake)
    throw new SynclineError('InvalidSource', 'a snowflake Source needs the snowflake block');
  return spec.snowflake;
}

/** `host` may be a bare host name (HTTPS) or a full URL (private link, proxies, emulators). */
function accessUrl(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  return /^[a-z]+:\/\//i.test(host) ? host.replace(/\/+$/, '') : `https://${host}`;
}

function connectionOptions(
  settings: Settings,
  secrets: SecretResolver,
  queryTag?: string,
): snowflake.ConnectionOptions {
  const keyPair = settings.privateKey !== undefined;
  if (!keyPair && settings.password === undefined) {
    throw new SynclineError(
      'InvalidSource',
      'a snowflake Source needs password or privateKey (key-pair authentication)',
    );
  }
  return {
    account: settings.account,
    username: settings.user,
    ...(keyPair
      ? {
          authenticator: 'SNOWFLAKE_JWT',
          privateKey: secrets(settings.privateKey!.secretKeyRef),
          ...(settings.privateKeyPassphrase
            ? { privateKeyPass: secrets(settings.privateKeyPassphrase.secretKeyRef) }
            : {}),
        }
      : { authenticator: 'SNOWFLAKE', password: secrets(settings.password!.secretKeyRef) }),
    warehouse: settings.warehouse,
    role: settings.role,
    database: settings.database,
    schema: settings.schema,
    accessUrl: accessUrl(settings.host),
    application: 'Syncline',
    ...(queryTag ? { queryTag } : {}),
    // Keeps the session alive through a long stage (the SDK heartbeats in the background).
    clientSessionKeepAlive: true,
    // SQL NULL stays null (the SDK would otherwise hand over the text "NULL" for fetchAsString types).
    representNullAsStringNull: false,
    sfRetryMaxLoginRetries: 2,
    // One large-result chunk downloads ahead of the one being read: memory stays at about two chunks.
    resultPrefetch: 1,
  };
}

interface SdkError {
  code?: string | number;
  sqlState?: string;
  message?: string;
  response?: { status?: number; statusCode?: number };
  cause?: { code?: string; message?: string };
  data?: { nextAction?: string };
}

function where(settings: Settings): string {
  return `Snowflake account "${settings.account}"`;
}

function networkCode(error: SdkError): string | undefined {
  const code =
    error.cause?.code ??
    (typeof error.code === 'string' && /^E[A-Z]+$/.test(error.code) ? error.code : undefined);
  if (code) return code;
  return /(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|ENETUNREACH)/.exec(
    error.message ?? '',
  )?.[1];
}

function httpStatus(error: SdkError): number | undefined {
  return (
    error.response?.status ??
    error.response?.statusCode ??
    Number(/status(?: code)?:? (\d{3})/i.exec(error.message ?? '')?.[1] ?? NaN)
  );
}

const SYNTAX_ERROR = '001003';

/** Snowflake's server error codes that mean the warehouse cannot run the query. */
const WAREHOUSE_CODES = new Set(['000606', '090073', '000625']);

/** Turn an SDK error into a SynclineError with a reason a person can act on. */
export function snowflakeError(
  error: unknown,
  settings: Settings,
  what: string,
  labels?: StageRequest['labels'],
): SynclineError {
  if (isSynclineError(error)) return error;
  const e = (error ?? {}) as SdkError;
  const code = e.code === undefined ? '' : String(e.code);
  const message = (e.message ?? String(error)).trim();
  const net = networkCode(e);
  // 000008: more statements than MULTI_STATEMENT_COUNT allows.
  if (labels && code === '000008')
    return modelNotReadOnly(labels, 'Snowflake', `${message} (code ${code})`, error);
  if (
    code === '390100' ||
    code === '390144' ||
    code === '390101' ||
    code === '390102' ||
    code === '390318' ||
    code === '390422'
  ) {
    const how = settings.privateKey
      ? 'the private key Secret and that its public key is set on the user (RSA_PUBLIC_KEY)'
      : 'the user and the password Secret';
    return new SynclineError(
      'AuthenticationFailed',
      `${where(settings)} refused user "${settings.user}": ${message} (code ${code}). Check ${how}.`,
      { cause: error },
    );
  }
  if (WAREHOUSE_CODES.has(code)) {
    return new SynclineError(
      'WarehouseSuspended',
      `warehouse "${settings.warehouse}" cannot run queries: ${message} (code ${code}). Resume it (ALTER WAREHOUSE ${settings.warehouse} RESUME), enable AUTO_RESUME, check its resource monitor, or grant the role USAGE on it.`,
      { cause: error, retryable: true },
    );
  }
  if (code === '000630') {
    return new SynclineError(
      'SourceQueryFailed',
      `${what} was cancelled by Snowflake's statement timeout: ${message} (code ${code}). Raise statementTimeoutSeconds or make the model cheaper.`,
      { cause: error },
    );
  }
  // Server errors carry Snowflake's code as a string; the SDK's own errors use numbers (4xxxxx).
  if (typeof e.code === 'string' && /^\d{6}$/.test(code)) {
    const state = e.sqlState ? `, SQLSTATE ${e.sqlState}` : '';
    // A statement that is not a query fails as the subquery it is read as: say why.
    const hint =
      labels && code === SYNTAX_ERROR
        ? `. ${modelLabel(labels)} must be a single read-only SELECT: Syncline reads it as SELECT * FROM (<query>) AS m`
        : '';
    return new SynclineError(
      'SourceQueryFailed',
      `${what} failed in Snowflake: ${message.replaceAll('\n', ' ')} (code ${code}${state})${hint}`,
      { cause: error },
    );
  }
  const status = httpStatus(e);
  if (status === 403 || status === 404) {
    return new SynclineError(
      'AccountNotFound',
      `${where(settings)} answered HTTP ${status} at login: the account identifier is probably wrong. Use the orgname-accountname form (or the account locator with its region) and check host.`,
      { cause: error },
    );
  }
  if (net === 'ENOTFOUND' || net === 'EAI_AGAIN') {
    return new SynclineError(
      'SourceUnreachable',
      `cannot resolve the host of ${where(settings)} (${net}). Check the account identifier and host.`,
      { cause: error, retryable: true },
    );
  }
  if (net !== undefined || /Network error|could not connect|socket hang up/i.test(message)) {
    return new SynclineError(
      'SourceUnreachable',
      `cannot reach ${where(settings)}: ${message}${net ? ` (${net})` : ''}. Check host, network policies and proxies.`,
      { cause: error, retryable: true },
    );
  }
  return new SynclineError('SourceQueryFailed', `${what} failed in Snowflake: ${message}`, { cause: error });
}

export async function connect(
  settings: Settings,
  secrets: SecretResolver,
  queryTag?: string,
): Promise<snowflake.Connection> {
  const options = connectionOptions(settings, secrets, queryTag);
  let connection: snowflake.Connection;
  try {
    connection = snowflake.createConnection(options);
  } catch (error) {
    throw new SynclineError(
      'InvalidSource',
      `the snowflake settings are not valid: ${(error as Error).message}`,
      { cause: error },
    );
  }
  try {
    await new Promise<void>((resolve, reject) =>
      connection.connect((error) => (error ? reject(error) : resolve())),
    );
    return connection;
  } catch (error) {
    throw snowflakeError(error, settings, 'logging in');
  }
}

export async function destroy(connection: snowflake.Connection, ctx: ConnectorContext): Promise<void> {
  await new Promise<void>((resolve) =>
    connection.destroy((error) => {
      if (error) ctx.log.debug({ err: error.message }, 'closing the Snowflake session');
      resolve();
    }),
  );
}

/** Run a statement; `onStatement` receives it at once (to cancel it) and the promise settles when it finished. */
export function execute(
  connection: snowflake.Connection,
  options: Omit<snowflake.StatementOption, 'complete'>,
  onStatement: (statement: snowflake.RowStatement) => void = () => undefined,
): Promise<snowflake.RowStatement> {
  return new Promise((resolve, reject) => {
    const statement = connection.execute({
      ...options,
      complete: (error, done) => (error ? reject(error) : resolve(done as snowflake.RowStatement)),
    });
    onStatement(statement);
  });
}

/** Every row of a small statement, as objects keyed by column name. */
async function queryRows(
  connection: snowflake.Connection,
  sqlText: string,
): Promise<Record<string, unknown>[]> {
  const statement = await execute(connection, {
    sqlText,
    streamResult: true,
    parameters: { QUERY_TAG: JSON.stringify({ app: 'syncline', check: true }) },
  });
  return new Promise((resolve, reject) => {
    const rows: Record<string, unknown>[] = [];
    statement
      .streamRows()
      .on('data', (row: Record<string, unknown>) => rows.push(row))
      .on('end', () => resolve(rows))
      .on('error', reject);
  });
}

/** Quote a possibly qualified table name for Snowflake; unquoted parts keep Snowflake's upper-case folding. */
export function quoteSnowflakeName(name: string): string {
  const parts: string[] = [];
  const re = /\s*(?:"((?:[^"]|"")*)"|([^."]+))\s*(?:\.|$)/gy;
  let match: RegExpExecArray | null;
  while (re.lastIndex < name.length && (match = re.exec(name)) !== null) {
    if (match[1] !== undefined) parts.push(`"${match[1]}"`);
    else parts.push(`"${(match[2] ?? '').trim().toUpperCase().replaceAll('"', '""')}"`);
  }
  if (parts.length === 0 || re.lastIndex < name.length) return `"${name.replaceAll('"', '""')}"`;
  return parts.join('.');
}

export function modelSql(model: StageRequest['model']): string {
  if (model.query !== undefined) return model.query.trim().replace(/;+\s*$/, '');
  if (model.table !== undefined) return `SELECT * FROM ${quoteSnowflakeName(model.table)}`;
  throw new SynclineError(
    'InvalidModel',
    'a Model of a snowflake Source needs query or table (dbt models are resolved before the run)',
  );
}

/** The query tag of a run: which Sync and run issued the query, readable in Snowflake's QUERY_HISTORY. */
export function queryTagOf(labels: StageRequest['labels']): string {
  return JSON.stringify({
    app: 'syncline',
    namespace: labels.namespace,
    sync: labels.sync,
    run: labels.runId,
  });
}

/**
 * The statement a model is read with: as a subquery, which only a query can be (DELETE, DROP, CALL or a
 * chain of statements with ->> cannot), on lines of its own so that a trailing -- comment ends there.
 */
export function readSql(sql: string): string {
  return `SELECT * FROM (\n${sql}\n) AS m`;
}

export const snowflakeSource: SourceConnector = {
  async check(spec: SourceSpec, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(spec);
    const connection = await connect(settings, ctx.secrets);
    try {
      const [session] = await queryRows(
        connection,
        'SELECT CURRENT_WAREHOUSE() AS WAREHOUSE, CURRENT_DATABASE() AS DATABASE',
      );
      if (session?.DATABASE === null || session?.DATABASE === undefined) {
        throw new SynclineError(
          'DatabaseNotFound',
          `database "${settings.database}" does not exist or the role cannot use it. Check database and role.`,
        );
      }
      // Constant queries run without a warehouse, so ask for its state: a suspended warehouse that does not
      // resume by itself would fail every model query.
      const pattern = settings.warehouse.replaceAll("'", "''");
      const [warehouse] = await queryRows(connection, `SHOW WAREHOUSES LIKE '${pattern}'`);
      if (session.WAREHOUSE === null || session.WAREHOUSE === undefined || warehouse === undefined) {
        throw new SynclineError(
          'WarehouseNotFound',
          `warehouse "${settings.warehouse}" does not exist or the role cannot use it. Check warehouse and role (GRANT USAGE ON WAREHOUSE).`,
        );
      }
      if (
        String(warehouse.state).toUpperCase() === 'SUSPENDED' &&
        String(warehouse.auto_resume).toLowerCase() === 'false'
      ) {
        throw new SynclineError(
          'WarehouseSuspended',
          `warehouse "${settings.warehouse}" is suspended and does not resume automatically. Resume it (ALTER WAREHOUSE ${settings.warehouse} RESUME) or enable AUTO_RESUME.`,
          { retryable: true },
        );
      }
    } catch (error) {
      throw snowflakeError(error, settings, 'a test query');
    } finally {
      await destroy(connection, ctx);
    }
  },

  /** The Sync's snapshot in tables of the Source's own database (snapshot.ts). */
  warehouseSnapshot(req: WarehouseSnapshotRequest): Promise<WarehouseSnapshot> {
    return SnowflakeWarehouseSnapshot.open(req, settingsOf(req.source));
  },

  async stage(req: StageRequest): Promise<StageResult> {
    const settings = settingsOf(req.source);
    const sql = modelSql(req.model);
    const queryTag = queryTagOf(req.labels);
    const connection = await connect(settings, req.secrets, queryTag);
    let statement: snowflake.RowStatement | undefined;
    const onAbort = () =>
      statement?.cancel(
        (error) => error && req.log.warn({ err: error.message }, 'cancelling the Snowflake query'),
      );
    req.signal.addEventListener('abort', onAbort, { once: true });
    try {
      // One statement, whatever the account or user default says (0 would run any number).
      const parameters: Record<string, unknown> = {
        ...OUTPUT_FORMATS,
        QUERY_TAG: queryTag,
        MULTI_STATEMENT_COUNT: 1,
      };
      if (settings.statementTimeoutSeconds !== undefined)
        parameters.STATEMENT_TIMEOUT_IN_SECONDS = settings.statementTimeoutSeconds;
      const query = async (sqlText: string): Promise<snowflake.RowStatement> => {
        try {
          statement = await execute(
            connection,
            { sqlText, streamResult: true, fetchAsString: FETCH_AS_STRING, rowMode: 'array', parameters },
            (running) => (statement = running),
          );
        } catch (error) {
          throw snowflakeError(error, settings, 'the model query', req.labels);
        }
        req.signal.throwIfAborted();
        return statement;
      };
      if (req.chooseStaging) {
        const client = new SnowflakeClient(connection, queryTag);
        return await stageChosen({ req, settings, sql, query, client });
      }
      const done = await query(readSql(sql));
      req.log.info(
        { queryId: done.getQueryId(), rows: done.getNumRows(), queryTag },
        'Snowflake model query finished',
      );
      return await stageTextRows(req, 'Snowflake', columnsOf(done), done.streamRows(), {
        toValues: (row: TextValue[]) => row,
        onReadError: (error) => snowflakeError(error, settings, 'reading the model rows'),
      });
    } finally {
      req.signal.removeEventListener('abort', onAbort);
      await destroy(connection, req);
    }
  },
};
