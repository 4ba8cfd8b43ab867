// BigQuery as a Source, through @google-cloud/bigquery: a query job labelled with the Sync and run, whose
// results are read page by page (raw REST rows, so nothing is parsed into a JavaScript number) and staged
// into DuckDB through a CSV file. Credentials: a service-account JSON key from a Secret, or the pod's
// workload identity (Application Default Credentials) when no key is given.
// The model can only read: it is read as a subquery (only a query parses), and a dry run first must report
// the statement type SELECT, which a script (several statements), DML, DDL or EXPORT DATA does not.
import { Readable } from 'node:stream';
import { BigQuery, type Job, type QueryResultsOptions } from '@google-cloud/bigquery';
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
import { BqWarehouseSnapshot } from './snapshot.ts';
import { stageHashed } from './stage-hashed.ts';
import { planColumn, type BigQueryField, type BigQueryColumnPlan, type RawCell } from './types.ts';
import { modelLabel, modelNotReadOnly } from '../shared/read-only.ts';

type Settings = NonNullable<SourceSpec['bigquery']>;

const PAGE_ROWS = 10_000;

function settingsOf(spec: SourceSpec): Settings {
  if (!spec.bigquery) throw new SynclineError('InvalidSource', 'a bigquery Source needs the bigquery block');
  return spec.bigquery;
}

function credentialsOf(
  settings: Settings,
  secrets: SecretResolver,
): { client_email: string; private_key: string } | undefined {
  if (!settings.serviceAccountKey) return undefined;
  const text = secrets(settings.serviceAccountKey.secretKeyRef);
  try {
    const key = JSON.parse(text) as { client_email?: string; private_key?: string };
    if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string')
      throw new Error('client_email or private_key missing');
    return { client_email: key.client_email, private_key: key.private_key };
  } catch (error) {
    throw new SynclineError(
      'InvalidCredentials',
      `Secret "${settings.serviceAccountKey.secretKeyRef.name}" key "${settings.serviceAccountKey.secretKeyRef.key}" is not a service-account JSON key (${(error as Error).message})`,
    );
  }
}

export function client(settings: Settings, secrets: SecretResolver): BigQuery {
  return new BigQuery({
    projectId: settings.project,
    location: settings.location,
    credentials: credentialsOf(settings, secrets),
    ...(settings.apiEndpoint ? { apiEndpoint: settings.apiEndpoint } : {}),
    maxRetries: 2,
  });
}

interface ApiError {
  code?: number | string;
  message?: string;
  errors?: { reason?: string; message?: string }[];
}

/** Turn a client error into a SynclineError with a reason a person can act on. */
export function bigqueryError(
  error: unknown,
  settings: Settings,
  what: string,
  labels?: StageRequest['labels'],
): SynclineError {
  if (isSynclineError(error)) return error;
  const e = (error ?? {}) as ApiError;
  const message = (e.message ?? String(error)).split('\n')[0] ?? '';
  const reason = e.errors?.[0]?.reason ?? '';
  const status = typeof e.code === 'number' ? e.code : undefined;
  const code = typeof e.code === 'string' ? e.code : '';
  if (
    status === 401 ||
    /invalid_grant|Could not load the default credentials|invalid_client|unauthorized_client/i.test(message)
  ) {
    return new SynclineError(
      'AuthenticationFailed',
      `BigQuery refused the credentials for project "${settings.project}": ${message}. Check serviceAccountKey, or the workload identity of the pod.`,
      { cause: error },
    );
  }
  if (status === 403 || reason === 'accessDenied') {
    return new SynclineError(
      'PermissionDenied',
      `BigQuery denied access in project "${settings.project}": ${message}. Grant the service account BigQuery Job User and Data Viewer.`,
      { cause: error },
    );
  }
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|socket hang up/i.test(`${code} ${message}`)) {
    return new SynclineError(
      'SourceUnreachable',
      `cannot reach BigQuery${settings.apiEndpoint ? ` at ${settings.apiEndpoint}` : ''}: ${message}`,
      { cause: error, retryable: true },
    );
  }
  const detail = reason
    ? ` (${status ?? ''} ${reason})`.replace('( ', '(')
    : status
      ? ` (HTTP ${status})`
      : '';
  // A statement that is not a query fails as the subquery it is read as: say why.
  const hint =
    labels && /Syntax error/i.test(message)
      ? `. ${modelLabel(labels)} must be a single read-only SELECT: Syncline reads it as SELECT * FROM (<query>)`
      : '';
  return new SynclineError('SourceQueryFailed', `${what} failed in BigQuery: ${message}${detail}${hint}`, {
    cause: error,
    retryable: status !== undefined && status >= 500,
  });
}

/**
 * The statement a model is read with: as a subquery, which only a query can be (not DELETE, CREATE,
 * EXPORT DATA), on lines of its own so that a trailing -- or # comment ends there.
 */
export function readSql(sql: string): string {
  return `SELECT * FROM (\n${sql}\n)`;
}

/**
 * Refuse a model whose statement type is not SELECT: a model that closes the subquery's parenthesis to add
 * statements makes a script, which BigQuery would run whole. A dry run compiles the job and reports the
 * type without running it (and is not billed).
 */
export function checkStatementType(statementType: string | undefined, labels: StageRequest['labels']): void {
  if (statementType === 'SELECT') return;
  throw modelNotReadOnly(
    labels,
    'BigQuery',
    `a dry run reports the statement type ${statementType ?? '(none)'}, not SELECT`,
  );
}

/** Quote a possibly qualified table name with backticks, as BigQuery does (project.dataset.table). */
export function quoteBigQueryName(name: string): string {
  return name.startsWith('`') ? name : `\`${name.replaceAll('`', '')}\``;
}

export function modelSql(model: StageRequest['model']): string {
  if (model.query !== undefined) return model.query.trim().replace(/;+\s*$/, '');
  if (model.table !== undefined) return `SELECT * FROM ${quoteBigQueryName(model.table)}`;
  throw new SynclineError(
    'InvalidModel',
    'a Model of a bigquery Source needs query or table (dbt models are resolved before the run)',
  );
}

/** BigQuery labels: lower case letters, digits, _ and -, at most 63 characters. */
function label(value: string): string {
  return value
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '_')
    .slice(0, 63);
}

interface Page {
  rows: { f: RawCell[] }[];
  fields: BigQueryField[];
  pageToken?: string;
}

async function page(job: Job, pageToken: string | undefined): Promise<Page> {
  const options: QueryResultsOptions & { skipParsing: boolean } = {
    maxResults: PAGE_ROWS,
    autoPaginate: false,
    skipParsing: true,
    ...(pageToken ? { pageToken } : {}),
  };
  const [rows, , response] = await job.getQueryResults(options);
  const meta = response as { schema?: { fields?: BigQueryField[] }; pageToken?: string } | undefined;
  return {
    rows: rows as unknown as { f: RawCell[] }[],
    fields: meta?.schema?.fields ?? [],
    pageToken: meta?.pageToken,
  };
}

export const bigquerySource: SourceConnector = {
  warehouseSnapshot(req: WarehouseSnapshotRequest): Promise<WarehouseSnapshot> {
    const settings = settingsOf(req.source);
    return BqWarehouseSnapshot.open(req, client(settings, req.secrets), {
      project: settings.project,
      dataset: req.schema,
      location: settings.location,
    });
  },

  async check(spec: SourceSpec, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(spec);
    try {
      const [rows] = await client(settings, ctx.secrets).query({
        query: 'SELECT 1 AS ok',
        location: settings.location,
      });
      if ((rows as unknown[]).length !== 1)
        throw new SynclineError('SourceQueryFailed', 'BigQuery answered a test query without its row');
    } catch (error) {
      throw bigqueryError(error, settings, 'a test query');
    }
  },

  async stage(req: StageRequest): Promise<StageResult> {
    const settings = settingsOf(req.source);
    const sql = modelSql(req.model);
    const bq = client(settings, req.secrets);
    let job: Job;
    const options = {
      query: readSql(sql),
      location: settings.location,
      useLegacySql: false,
      ...(settings.dataset
        ? { defaultDataset: { projectId: settings.project, datasetId: settings.dataset } }
        : {}),
      labels: {
        app: 'syncline',
        namespace: label(req.labels.namespace),
        sync: label(req.labels.sync),
        run: label(req.labels.runId),
      },
    };
    try {
      const [dryRun] = await bq.createQueryJob({ ...options, dryRun: true });
      const statistics = (dryRun.metadata as { statistics?: { query?: { statementType?: string } } })
        .statistics;
      checkStatementType(statistics?.query?.statementType, req.labels);
      if (req.snapshot instanceof BqWarehouseSnapshot && req.chooseStaging) {
        const { query: _query, ...job } = options;
        return await stageHashed({
          req,
          bq,
          store: req.snapshot,
          sql,
          job,
          readError: (error) => bigqueryError(error, settings, 'reading the model rows'),
        });
      }
      [job] = await bq.createQueryJob(options);
    } catch (error) {
      throw bigqueryError(error, settings, 'the model query', req.labels);
    }
    const onAbort = () =>
      void job
        .cancel()
        .catch((error: unknown) => req.log.warn({ err: String(error) }, 'cancelling the BigQuery job'));
    req.signal.addEventListener('abort', onAbort, { once: true });
    try {
      let first: Page;
      try {
        first = await page(job, undefined);
      } catch (error) {
        throw bigqueryError(error, settings, 'the model query', req.labels);
      }
      const plans: BigQueryColumnPlan[] = first.fields.map(planColumn);
      // Pages are fetched only as the CSV writer asks for rows.
      async function* rows(): AsyncGenerator<{ f: RawCell[] }> {
        let current: Page = first;
        for (;;) {
          yield* current.rows;
          if (!current.pageToken) return;
          current = await page(job, current.pageToken);
        }
      }
      return await stageTextRows(req, 'BigQuery', plans, Readable.from(rows(), { highWaterMark: 256 }), {
        toValues: (row: { f: RawCell[] }): TextValue[] =>
          plans.map((plan, i) => plan.convert(row.f[i] ?? { v: null })),
        onReadError: (error) => bigqueryError(error, settings, 'reading the model rows'),
      });
    } finally {
      req.signal.removeEventListener('abort', onAbort);
    }
  },
};
