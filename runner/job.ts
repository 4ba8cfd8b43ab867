import { readFileSync, writeFileSync } from 'node:fs';
import type { Logger as PinoLogger } from 'pino';
import type { ZodType } from 'zod';
import { destinationConnector, sourceConnector } from '../connectors/registry.ts';
import { describeError, SynclineError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { checkPlan, runPlan, type CheckPlan, type RunPlan } from '../core/plan.ts';
import type { ConnectorContext, DestinationConnector, DestinationField } from '../core/connectors.ts';
import { DiffStore } from '../core/diffstore/index.ts';
import { openBlobStore } from '../core/storage/index.ts';
import { compactSummary } from './report.ts';
import { executeRun } from './run.ts';
import { mountedConfigMapReader } from './model.ts';
import { secretResolver } from '../core/secrets.ts';
import { TERMINATION_MESSAGE_LIMIT } from '../core/summary.ts';
import { resolveSnapshot } from '../core/settings.ts';
import type { SourceSpec } from '../crds/index.ts';

export const DEFAULT_TERMINATION_LOG = '/dev/termination-log';

export interface JobOptions {
  /** A plan file; otherwise the plan comes from the environment variable. */
  planFile?: string;
  env?: NodeJS.ProcessEnv;
  log?: PinoLogger;
}

export function readPlan<T>(schema: ZodType<T>, envName: string, options: JobOptions): T {
  const env = options.env ?? process.env;
  let text: string | undefined;
  let from: string;
  if (options.planFile) {
    from = options.planFile;
    text = readFileSync(options.planFile, 'utf8');
  } else {
    from = `$${envName}`;
    text = env[envName];
  }
  if (text === undefined || text.trim() === '') {
    throw new SynclineError('InvalidRunPlan', `no plan: set ${envName} or pass --plan FILE`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SynclineError('InvalidRunPlan', `the plan in ${from} is not JSON: ${(error as Error).message}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SynclineError(
      'InvalidRunPlan',
      `the plan in ${from} is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? ''}`,
    );
  }
  return parsed.data;
}

export function writeTermination(env: NodeJS.ProcessEnv, text: string, log: PinoLogger): void {
  const file = env['SYNCLINE_TERMINATION_LOG'] ?? DEFAULT_TERMINATION_LOG;
  try {
    writeFileSync(file, text.slice(0, TERMINATION_MESSAGE_LIMIT));
  } catch (error) {
    log.warn({ file, err: describeError(error).message }, 'could not write the termination message');
  }
}

export function abortOnSignals(log: PinoLogger): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const stop = (name: NodeJS.Signals) => {
    log.warn({ signal: name }, 'stopping the run');
    controller.abort(new SynclineError('Aborted', `received ${name}`, { retryable: false }));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    },
  };
}

/**
 * `syncline job`: the runner pod's entry. Runs the plan, logs JSON to stdout, writes a compact summary to
 * the termination log; exit code 0 for Succeeded and PartiallySucceeded, 1 for Failed.
 */
export async function runJob(options: JobOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const log = options.log ?? createLogger({ name: 'syncline-runner', fd: 1 });
  let plan: RunPlan;
  try {
    plan = readPlan(runPlan, 'SYNCLINE_RUN_PLAN', options);
  } catch (error) {
    const { reason, message } = describeError(error, 'InvalidRunPlan');
    log.error({ reason }, message);
    writeTermination(env, JSON.stringify({ result: 'Failed', reason, message }), log);
    return 1;
  }
  const signals = abortOnSignals(log);
  try {
    log.info(
      { runId: plan.runId, namespace: plan.namespace, sync: plan.sync.name, mode: plan.sync.spec.mode },
      'run starting',
    );
    let phase: string | undefined;
    let lastDeliveryLog = 0;
    const summary = await executeRun(plan, {
      secrets: secretResolver(env),
      readConfigMap: mountedConfigMapReader(env['SYNCLINE_CONFIGMAP_DIR']),
      log,
      signal: signals.signal,
      onProgress: (p) => {
        if (p.phase !== phase) {
          phase = p.phase;
          log.info({ runId: plan.runId, phase: p.phase, ...p.delivery }, `phase ${p.phase}`);
        } else if (p.delivery && Date.now() - lastDeliveryLog > 10_000) {
          lastDeliveryLog = Date.now();
          log.info({ runId: plan.runId, ...p.delivery }, 'delivering');
        }
      },
    });
    writeTermination(env, compactSummary(summary), log);
    return summary.result === 'Failed' ? 1 : 0;
  } finally {
    signals.dispose();
  }
}

/**
 * The objects and fields of a Destination for the objects its Syncs target, when its connector can tell
 * (`discover`), written to the diff store beside the namespace's Syncs for the operator to validate
 * mappings against. The termination message only says how many (it is limited to 4096 bytes). Returns
 * that sentence, or undefined when nothing was discovered (no `discover`, no objects, no diff store).
 */
export async function discoverObjects(
  plan: CheckPlan,
  connector: DestinationConnector,
  context: ConnectorContext,
): Promise<string | undefined> {
  if (plan.target.kind !== 'Destination' || !connector.discover) return undefined;
  if (plan.objects.length === 0 || !plan.diffStore) return undefined;
  const objects = await connector.discover(plan.target.spec, context, plan.objects);
  const blob = openBlobStore(plan.diffStore.url, {
    ...(plan.diffStore.s3 ? { s3: plan.diffStore.s3 } : {}),
    ...(plan.diffStore.gcs ? { gcs: plan.diffStore.gcs } : {}),
    secrets: context.secrets,
  });
  await DiffStore.writeDestinationObjects(blob, plan.namespace, {
    version: 1,
    destination: plan.target.name,
    discoveredAt: new Date().toISOString(),
    requested: plan.objects,
    objects: objects.map((o) => ({
      name: o.name,
      ...(o.label !== undefined ? { label: o.label } : {}),
      fields: o.fields.map((f) => compactField(f)),
    })),
  });
  const fields = objects.reduce((n, o) => n + o.fields.length, 0);
  const missing = plan.objects.filter((name) => !objects.some((o) => o.name === name));
  return (
    `discovered ${objects.length} object${objects.length === 1 ? '' : 's'} with ${fields} field${fields === 1 ? '' : 's'}` +
    (missing.length > 0 ? ` (not found: ${missing.join(', ')})` : '')
  );
}

/** A field with only what validation and `kubectl syncline fields` read, and no empty members. */
function compactField(field: DestinationField): DestinationField {
  return {
    name: field.name,
    ...(field.label !== undefined && field.label !== field.name ? { label: field.label } : {}),
    type: field.type,
    ...(field.required ? { required: true } : {}),
    ...(field.unique ? { unique: true } : {}),
    ...(field.readOnly ? { readOnly: true } : {}),
    ...(field.options && field.options.length > 0 ? { options: field.options } : {}),
  };
}

/** A Source's connection; and, when it keeps its Syncs' snapshots in the warehouse, the grants that needs. */
async function checkSource(spec: SourceSpec, context: ConnectorContext): Promise<void> {
  const connector = await sourceConnector(spec.type);
  await connector.check(spec, context);
  const placement = resolveSnapshot({}, spec);
  if (placement.location !== 'warehouse') return;
  if (!connector.warehouseSnapshot) {
    throw new SynclineError(
      'WarehouseSnapshotUnsupported',
      `the Source keeps its Syncs' snapshots in the warehouse (spec.snapshot.location: warehouse), which a ${spec.type} Source cannot: set spec.snapshot.location: diffStore`,
    );
  }
  // A connector that cannot check its grants without creating anything has them checked by each run's open.
  await connector.checkWarehouseSnapshot?.(spec, placement.schema, context);
}

/** `syncline check`: a connection check of one Source or Destination; writes {ok, reason, message}. */
export async function runCheck(options: JobOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const log = options.log ?? createLogger({ name: 'syncline-runner', fd: 1 });
  let result: { ok: boolean; reason: string; message: string };
  let discovered: string | undefined;
  try {
    const plan: CheckPlan = readPlan(checkPlan, 'SYNCLINE_CHECK_PLAN', options);
    const signals = abortOnSignals(log);
    const context = {
      secrets: secretResolver(env),
      log,
      signal: signals.signal,
      tmpDir: env['TMPDIR'] ?? '/tmp',
    };
    try {
      if (plan.target.kind === 'Source') {
        await checkSource(plan.target.spec, context);
      } else {
        const connector = await destinationConnector(plan.target.spec.type);
        await connector.check(plan.target.spec, context);
        discovered = await discoverObjects(plan, connector, context);
      }
    } finally {
      signals.dispose();
    }
    result = {
      ok: true,
      reason: 'Connected',
      message: `${plan.target.kind} ${plan.target.name} is reachable${discovered ? `; ${discovered}` : ''}`,
    };
  } catch (error) {
    const { reason, message } = describeError(error, 'CheckFailed');
    result = { ok: false, reason, message };
  }
  log.info(result, 'connection check finished');
  writeTermination(env, JSON.stringify(result), log);
  return result.ok ? 0 : 1;
}
