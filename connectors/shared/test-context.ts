// Test helpers: a connector context with a real secrets resolver, a capturing logger and a scratch folder.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { isSynclineError, type SynclineError } from '../../core/errors.ts';
import { secretResolver } from '../../core/secrets.ts';
import { resolveDelivery } from '../../core/settings.ts';
import type { DestinationSpec, Mapping, SyncSpec } from '../../crds/index.ts';
import type {
  ColumnInfo,
  ConnectorContext,
  DebugRequest,
  DeliveryContext,
  Logger,
  RowChange,
  RowOperation,
} from '../../core/connectors.ts';

export interface LogLine {
  level: string;
  obj: object;
  msg?: string;
}

export function captureLogger(lines: LogLine[] = []): Logger & { lines: LogLine[] } {
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export function testContext(secrets: Record<string, Record<string, string>> = {}): ConnectorContext & {
  log: ReturnType<typeof captureLogger>;
  cleanup(): void;
} {
  const tmpDir = mkdtempSync(join(tmpdir(), 'syncline-connector-test-'));
  return {
    secrets: secretResolver({}, secrets),
    log: captureLogger(),
    signal: new AbortController().signal,
    tmpDir,
    cleanup: () => rmSync(tmpDir, { recursive: true, force: true }),
  };
}

export async function openDuck(): Promise<{ duck: DuckDBConnection; close(): void }> {
  const instance = await DuckDBInstance.create(':memory:');
  const duck = await instance.connect();
  await duck.run("SET TimeZone = 'UTC'");
  return {
    duck,
    close() {
      duck.closeSync();
      instance.closeSync();
    },
  };
}

/** Every row of a DuckDB query, with values in DuckDB's exact JSON-safe form. */
export async function rowsOf(duck: DuckDBConnection, sql: string): Promise<Record<string, unknown>[]> {
  return (await duck.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
}

export interface DeliveryHarness {
  ctx: DeliveryContext;
  requests: DebugRequest[];
  acquired: () => number;
}

/** A delivery context over real settings, recording debugger entries and rate-limiter calls. */
export function deliveryContext(
  base: ConnectorContext,
  options: {
    destination: DestinationSpec;
    sync: Partial<SyncSpec>;
    columns: ColumnInfo[];
    primaryKey: string;
    mappings?: Mapping[];
    runId?: string;
  },
): DeliveryHarness {
  const requests: DebugRequest[] = [];
  let acquired = 0;
  const spec = {
    modelRef: { name: 'm' },
    destinationRef: { name: 'd' },
    mode: 'upsert',
    deleteBehavior: 'ignore',
    archiveBehavior: 'archive',
    paused: false,
    invalidPrimaryKeys: 'fail',
    snapshotPolicy: 'retain',
    historyLimit: 10,
    ...options.sync,
  } as SyncSpec;
  const ctx: DeliveryContext = {
    ...base,
    sync: { namespace: 'default', name: 'test-sync', spec },
    runId: options.runId,
    destination: options.destination,
    columns: options.columns,
    primaryKey: options.primaryKey,
    mappings:
      options.mappings ??
      options.columns.map((c) => ({ to: c.name, from: c.name, valueType: 'string' as const })),
    delivery: resolveDelivery(options.destination, spec, { defaultBatchSize: 100 }),
    acquire: async () => {
      acquired += 1;
    },
    debug: (request) => void requests.push(request),
  };
  return { ctx, requests, acquired: () => acquired };
}

let changeCounter = 0;

/** A RowChange with a unique idempotency key. */
export function change(
  operation: RowOperation,
  key: string | number,
  fields: Record<string, unknown>,
): RowChange {
  changeCounter += 1;
  return { operation, key: String(key), fields, idempotencyKey: `idem-${changeCounter}-${operation}-${key}` };
}

/** The SynclineError a promise rejects with; fails the test when it resolves or rejects with anything else. */
export async function synclineFailure(promise: Promise<unknown>): Promise<SynclineError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isSynclineError(error)) throw new Error(`expected a SynclineError, got ${String(error)}`);
  return error;
}
