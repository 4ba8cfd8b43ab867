// `syncline drop-snapshot`: the operator's finalizer of a Sync deleted with snapshotPolicy delete starts
// it as a Job when the Sync kept its snapshot in the warehouse, which only a runner can reach. It drops
// the Sync's tables there (the schema and the state rows of other Syncs stay) and reports how many.
import type { Logger as PinoLogger } from 'pino';
import { sourceConnector } from '../connectors/registry.ts';
import { describeError, SynclineError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { snapshotDropPlan, type SnapshotDropPlan } from '../core/plan.ts';
import { secretResolver } from '../core/secrets.ts';
import { openEmbeddedDuck } from './duck.ts';
import { abortOnSignals, readPlan, writeTermination, type JobOptions } from './job.ts';

export interface DropResult {
  ok: boolean;
  reason: string;
  message: string;
  dropped?: number;
}

/** Drop the tables of one Sync's warehouse snapshot; writes {ok, reason, message, dropped}. */
export async function runSnapshotDrop(options: JobOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const log = options.log ?? createLogger({ name: 'syncline-runner', fd: 1 });
  let result: DropResult;
  try {
    const plan = readPlan(snapshotDropPlan, 'SYNCLINE_DROP_PLAN', options);
    const dropped = await dropTables(plan, env, log);
    result = {
      ok: true,
      reason: 'WarehouseSnapshotDropped',
      message: `dropped ${dropped} table(s) of Sync ${plan.namespace}/${plan.sync} in schema ${plan.schema} of Source ${plan.source.name}`,
      dropped,
    };
  } catch (error) {
    const { reason, message } = describeError(error, 'SnapshotCleanupFailed');
    result = { ok: false, reason, message };
  }
  log.info(result, 'warehouse snapshot drop finished');
  writeTermination(env, JSON.stringify(result), log);
  return result.ok ? 0 : 1;
}

async function dropTables(plan: SnapshotDropPlan, env: NodeJS.ProcessEnv, log: PinoLogger): Promise<number> {
  const connector = await sourceConnector(plan.source.spec.type);
  if (!connector.warehouseSnapshot) {
    throw new SynclineError(
      'WarehouseSnapshotUnsupported',
      `Source ${plan.source.name} is of type ${plan.source.spec.type}, which keeps no warehouse snapshot: nothing to drop`,
    );
  }
  const signals = abortOnSignals(log);
  const duck = await openEmbeddedDuck(env['TMPDIR'] ? { tmpDir: env['TMPDIR'] } : {});
  try {
    const store = await connector.warehouseSnapshot({
      secrets: secretResolver(env),
      log,
      signal: signals.signal,
      tmpDir: duck.dir,
      source: plan.source.spec,
      namespace: plan.namespace,
      sync: plan.sync,
      schema: plan.schema,
      duck: duck.connection,
      // Creates nothing: a schema that is gone has nothing to drop.
      readOnly: true,
    });
    try {
      return await store.dropAll();
    } finally {
      await store.close();
    }
  } finally {
    duck.close();
    signals.dispose();
  }
}
