// Shared set-up of the engine tests: real PostgreSQL as source and destination, a file:// diff store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import type { DestinationSpec, SyncSpec } from '../../crds/index.ts';
import type { BackoffSettings } from '../../runner/backoff.ts';
import { silentLogger } from '../../core/logger.ts';
import { runPlan, type RunPlan } from '../../core/plan.ts';
import { executeRun, type RunProgress } from '../../runner/run.ts';
import { secretResolver } from '../../core/secrets.ts';
import type { RunSummary } from '../../core/summary.ts';
import type { PostgresServer } from '../stack/postgres.ts';

export const PG_SECRET = { secretKeyRef: { name: 'pg', key: 'password' } };

export function pgSettings(server: PostgresServer, database: string) {
  return {
    host: server.host,
    port: server.port,
    database,
    user: server.user,
    password: PG_SECRET,
    tls: { mode: 'disable' as const },
  };
}

export function secretsFor(server: PostgresServer) {
  return secretResolver({}, { pg: { password: server.password } });
}

let runCounter = 0;

export interface PlanInput {
  server: PostgresServer;
  sourceDb: string;
  /** SQL of the model, run against sourceDb. */
  query: string;
  primaryKey?: string;
  destination: DestinationSpec;
  sync: Partial<SyncSpec> & { mode: SyncSpec['mode'] };
  stateUrl: string;
  name?: string;
  fullResync?: boolean;
  dryRun?: boolean;
  /** Credentials of an s3:// or gs:// diff store. */
  diffStore?: Omit<RunPlan['diffStore'], 'url'>;
}

export function makePlan(input: PlanInput): RunPlan {
  runCounter++;
  return runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId: `run-${Date.now()}-${process.pid}-${runCounter}`,
    namespace: 'test',
    fullResync: input.fullResync ?? false,
    dryRun: input.dryRun ?? false,
    sync: {
      name: input.name ?? 'engine-sync',
      spec: { modelRef: { name: 'model' }, destinationRef: { name: 'dest' }, ...input.sync },
    },
    model: {
      name: 'model',
      spec: { sourceRef: { name: 'src' }, query: input.query, primaryKey: input.primaryKey ?? 'id' },
    },
    source: { name: 'src', spec: { type: 'postgres', postgres: pgSettings(input.server, input.sourceDb) } },
    destination: { name: 'dest', spec: input.destination },
    diffStore: { url: input.stateUrl, ...input.diffStore },
  });
}

export async function run(
  plan: RunPlan,
  server: PostgresServer,
  options: { backoff?: BackoffSettings; onProgress?: (p: RunProgress) => void; signal?: AbortSignal } = {},
): Promise<RunSummary> {
  return executeRun(plan, {
    secrets: secretsFor(server),
    log: silentLogger(),
    signal: options.signal ?? new AbortController().signal,
    backoff: options.backoff ?? { baseMs: 5, capMs: 50 },
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
}

export function tempState(): { dir: string; url: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-state-'));
  return { dir, url: pathToFileURL(dir).href, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function sql<T extends pg.QueryResultRow = Record<string, unknown>>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}
