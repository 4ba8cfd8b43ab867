// Deliver: the planned row operations out to the destination connector, with checkpoints of delivered
// progress; the request log of the run kept in the diff store when the run ends.
import { join } from 'node:path';
import type { DeliveryContext, DestinationWriter } from '../../core/connectors.ts';
import { describeError } from '../../core/errors.ts';
import { resolveDelivery } from '../../core/settings.ts';
import { DEFAULT_BACKOFF, rateLimiter } from '../backoff.ts';
import type { RunCommitter } from '../committer.ts';
import { REJECTED_SAMPLE } from '../../core/summary.ts';
import { createFailedTable, deliver, type DeliveryOutcome } from '../deliver.ts';
import { FETCHED_TABLE, recordUnfetched } from '../fetch.ts';
import { RequestLog } from '../requestlog.ts';
import type { RunContext } from './context.ts';
import type { Diffed } from './diff.ts';
import type { Fetched } from './fetch.ts';
import { STAGED_TABLE, type Queried } from './query.ts';
import type { Validated } from './validate.ts';

/** How often a run commits its delivered progress while delivering, unless the plan says otherwise. */
export const DEFAULT_CHECKPOINT_SECONDS = 30;

export interface Delivered extends Omit<DeliveryOutcome, 'closeError'> {
  /** The reason the writer failed to finish with, when it did (every change then counts as failed). */
  closeReason: string | undefined;
  /** Commits of delivered progress made while delivering. */
  checkpoints: number;
}

export interface DeliveryInputs {
  queried: Queried;
  validated: Validated;
  diffed: Diffed;
  fetched: Fetched;
  committer: RunCommitter;
}

export async function deliverChanges(ctx: RunContext, inputs: DeliveryInputs): Promise<Delivered> {
  const total = inputs.diffed.diff.totalOperations;
  let delivered: Delivered = {
    delivered: 0,
    failed: 0,
    byOperation: {},
    rejected: [],
    closeReason: undefined,
    checkpoints: 0,
  };
  if (total > 0) {
    ctx.progress('Delivering', { total, delivered: 0, failed: 0 });
    delivered = await send(ctx, inputs, openRequestLog(ctx));
  } else {
    await createFailedTable(ctx.conn);
  }
  const missing = inputs.fetched.fetched;
  if (missing && missing.missingCount > 0) {
    await recordUnfetched(ctx.conn);
    delivered.failed += missing.missingCount;
    for (const [op, n] of Object.entries(missing.missing)) {
      const counts = (delivered.byOperation[op as keyof typeof delivered.byOperation] ??= {
        delivered: 0,
        failed: 0,
      });
      counts.failed += n;
    }
    for (const { key, operation } of missing.missingSample) {
      if (delivered.rejected.length >= REJECTED_SAMPLE) break;
      delivered.rejected.push({
        key,
        operation,
        reason:
          'the source did not return this row when the changed rows were read (is the model query deterministic?); retried next run',
      });
    }
  }
  return delivered;
}

/** The run's request log; closed and kept in the diff store when the run ends (before DuckDB's folder goes). */
function openRequestLog(ctx: RunContext): RequestLog {
  const log = new RequestLog(
    join(ctx.duck.dir, 'requests.jsonl.gz'),
    ctx.plan.runId,
    () => ctx.secrets.resolved,
  );
  ctx.resources.defer(async () => {
    try {
      await log.close();
      if (log.entries > 0) await ctx.store.writeRequestLog(ctx.plan.runId, log.file);
    } catch (error) {
      ctx.log.warn(
        { ...ctx.labels, err: describeError(error).message },
        'could not keep the request log of the run',
      );
    }
  });
  return log;
}

async function send(ctx: RunContext, inputs: DeliveryInputs, requestLog: RequestLog): Promise<Delivered> {
  const { plan, spec, duck, signal } = ctx;
  const { queried, validated, diffed, fetched } = inputs;
  const caps = ctx.destination.capabilities;
  const settings = resolveDelivery(plan.destination.spec, spec, caps);
  const limiter = rateLimiter(settings.requestsPerSecond);
  const deliveryContext: DeliveryContext = {
    ...ctx.connector,
    sync: { namespace: plan.namespace, name: plan.sync.name, spec },
    runId: plan.runId,
    destination: plan.destination.spec,
    columns: queried.staged.columns,
    primaryKey: ctx.primaryKey,
    mappings: validated.shape.mappings,
    delivery: settings,
    acquire: () => limiter.acquire(signal),
    debug: (request) => requestLog.record(request),
  };
  const writer: DestinationWriter = await ctx.destination.open(deliveryContext);
  await using connections = new AsyncDisposableStack();
  const connect = async () => connections.adopt(await duck.instance.connect(), (c) => c.closeSync());
  const [reader, progress, checkpointConn] = [await connect(), await connect(), await connect()];
  let checkpoints = 0;
  const { keys } = validated;
  const everyStagedRowChanges =
    keys.nullCount + keys.duplicateKeys === 0 &&
    diffed.diff.totalOperations === (fetched.fetched ? fetched.fetched.rows : queried.staged.rows);
  const outcome = await deliver({
    reader,
    recorder: ctx.conn,
    writer,
    recordIds: caps.recordIds === true,
    shape: validated.shape,
    primaryKey: ctx.primaryKey,
    syncId: `${plan.namespace}/${plan.sync.name}`,
    runId: plan.runId,
    progress,
    // A writer that publishes only when closed has nothing confirmed before then.
    ...(caps.publishesOnClose
      ? {}
      : {
          checkpoint: {
            intervalMs: (plan.runner.checkpointSeconds ?? DEFAULT_CHECKPOINT_SECONDS) * 1000,
            commit: async () => {
              ctx.lease?.check();
              await inputs.committer.checkpoint(checkpointConn);
              checkpoints++;
            },
          },
        }),
    total: diffed.diff.totalOperations,
    batchSize: settings.batchSize,
    concurrency: settings.concurrency,
    maxRetries: settings.maxRetries,
    backoff: ctx.deps.backoff ?? DEFAULT_BACKOFF,
    signal,
    onProgress: (p) => ctx.progress('Delivering', p),
    bulk: {
      operations: diffed.diff.operations,
      batchSize: settings.bulkBatchSize,
      connect: () => duck.instance.connect(),
      renderers: duck.threads,
      ...(everyStagedRowChanges ? { stagedTable: fetched.fetched ? FETCHED_TABLE : STAGED_TABLE } : {}),
    },
  });
  const { closeError, ...rest } = outcome;
  return { ...rest, closeReason: closeError?.reason, checkpoints };
}
