// Shared set-up of the BigQuery warehouse-snapshot tests and bench: the emulator behind a counting proxy,
// a model table in it, PostgreSQL as the destination, and run plans with the bigquery Source.
import { BigQuery } from '@google-cloud/bigquery';
import type { DestinationSpec, SyncSpec } from '../../../crds/index.ts';
import { createLogger, silentLogger } from '../../../core/logger.ts';
import { runPlan, type RunPlan } from '../../../core/plan.ts';
import { secretResolver } from '../../../core/secrets.ts';
import type { RunSummary } from '../../../core/summary.ts';
import { executeRun } from '../../../runner/run.ts';
import { startBigQueryEmulator, type BigQueryEmulator } from '../../stack/bigquery.ts';
import type { PostgresServer } from '../../stack/postgres.ts';
import { CountingProxy } from './proxy.ts';

export interface BigQueryStack {
  emulator: BigQueryEmulator;
  proxy: CountingProxy;
  /** A client straight to the emulator (the test's own statements are not counted). */
  bq: BigQuery;
  stop(): Promise<void>;
}

export async function startBigQueryStack(dataset = 'analytics'): Promise<BigQueryStack> {
  const emulator = await startBigQueryEmulator({ dataset });
  const proxy = new CountingProxy(emulator.endpoint);
  await proxy.start();
  const bq = new BigQuery({ projectId: emulator.project, apiEndpoint: emulator.endpoint });
  return {
    emulator,
    proxy,
    bq,
    async stop() {
      await proxy.stop();
      await emulator.stop();
    },
  };
}

/** Run a statement in the emulator and return its rows (plain objects, values as BigQuery's library parses them). */
export async function bqQuery(bq: BigQuery, query: string): Promise<Record<string, unknown>[]> {
  const [rows] = await bq.query({ query, useLegacySql: false });
  return rows as Record<string, unknown>[];
}

export const PG_PASSWORD = { secretKeyRef: { name: 'pg', key: 'password' } };

let plans = 0;

export function bigqueryPlan(input: {
  stack: BigQueryStack;
  query: string;
  primaryKey?: string;
  destination: DestinationSpec;
  sync: Partial<SyncSpec> & { mode: SyncSpec['mode'] };
  stateUrl: string;
  name: string;
  fullResync?: boolean;
}): RunPlan {
  plans++;
  return runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId: `run-${Date.now()}-${process.pid}-${plans}`,
    namespace: 'test',
    fullResync: input.fullResync ?? false,
    dryRun: false,
    sync: {
      name: input.name,
      spec: { modelRef: { name: 'model' }, destinationRef: { name: 'dest' }, ...input.sync },
    },
    model: {
      name: 'model',
      spec: { sourceRef: { name: 'src' }, query: input.query, primaryKey: input.primaryKey ?? 'id' },
    },
    source: {
      name: 'src',
      spec: {
        type: 'bigquery',
        bigquery: {
          project: input.stack.emulator.project,
          dataset: 'analytics',
          apiEndpoint: input.stack.proxy.endpoint,
        },
      },
    },
    destination: { name: 'dest', spec: input.destination },
    diffStore: { url: input.stateUrl },
  });
}

export function runBigQuery(plan: RunPlan, pg: PostgresServer): Promise<RunSummary> {
  return executeRun(plan, {
    secrets: secretResolver({}, { pg: { password: pg.password } }),
    // SYNCLINE_TEST_LOG=debug shows the runs' logs on stderr.
    log: process.env['SYNCLINE_TEST_LOG']
      ? createLogger({ level: process.env['SYNCLINE_TEST_LOG'], fd: 2 })
      : silentLogger(),
    signal: new AbortController().signal,
    backoff: { baseMs: 5, capMs: 50 },
  });
}
