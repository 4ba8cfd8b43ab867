// Query: the source streams the model into DuckDB table STAGED_TABLE. Once the model's columns are known,
// before any row is read, the engine chooses how to stage (staging.ts): which row hashes to keep beside
// the rows, and whether only keys and hashes need to leave the source.
import { join } from 'node:path';
import type { StageResult, StagingChoice } from '../../core/connectors.ts';
import { describeError } from '../../core/errors.ts';
import { resolveShape } from '../mappings.ts';
import { chooseStaging, type StagingDecision } from '../staging.ts';
import { releasing, type RunContext } from './context.ts';

export const STAGED_TABLE = 'model_rows';

export interface Queried {
  staged: StageResult;
  /** Undefined when the source did not ask (it stages every row and no hash). */
  decision: StagingDecision | undefined;
  /** Ends a keys-only read (the source's transaction) once; also done when the run ends. */
  endRead: () => Promise<void>;
  /** After a narrowed staging: the snapshot rows of the keys that may differ, on local disk. */
  previousFile: string | undefined;
}

/** Where a narrowed staging writes the snapshot rows of the keys that may differ. */
const NARROWED_PREVIOUS = 'narrowed-previous.parquet';

export async function queryModel(ctx: RunContext): Promise<Queried> {
  const { plan, spec, primaryKey, log, labels } = ctx;
  const comparesAllColumns = ctx.destination.capabilities.comparesAllColumns;
  // A snapshot the source keeps itself (a warehouse snapshot) may be compared there.
  const warehouse = ctx.snapshots.takesDeltas ? ctx.snapshots : undefined;
  let decision: StagingDecision | undefined;
  const staged = await ctx.source.stage({
    ...ctx.connector,
    source: plan.source.spec,
    model: plan.model.spec,
    duck: ctx.conn,
    table: STAGED_TABLE,
    labels: { ...labels, model: `${plan.namespace}/${plan.model.name}` },
    ...(warehouse ? { snapshot: warehouse } : {}),
    chooseStaging: (columns, sourceHash) => {
      let early;
      try {
        early = resolveShape({
          mappings: spec.mappings,
          columns,
          primaryKey,
          comparesAllColumns,
          contextColumns: spec.target?.associations?.map((a) => a.from),
        });
      } catch (error) {
        // The same check runs on the staged columns (validate) and reports it; here it only means no hash.
        log.debug({ ...labels, err: describeError(error).message }, 'no row hash while staging');
      }
      decision = chooseStaging({
        columns,
        shape: early,
        primaryKey,
        previous: ctx.stored.current?.manifest,
        fullResync: plan.fullResync,
        mode: spec.mode,
        destinationType: plan.destination.spec.type,
        engineProbe: ctx.engineProbe,
        sourceHash,
        warehouse: warehouse ? { destinationIdentity: ctx.identity } : undefined,
      });
      return stagingChoice(ctx, decision);
    },
  });
  // A keys-only read keeps the source's transaction open until the changed rows are fetched.
  let ended: Promise<void> | undefined;
  const endRead = () => (ended ??= staged.keysOnly?.close() ?? Promise.resolve());
  ctx.resources.defer(releasing(log, 'the source read', endRead));
  ctx.signal.throwIfAborted();
  const previousFile = staged.narrowed ? join(ctx.duck.dir, NARROWED_PREVIOUS) : undefined;
  return { staged, decision, endRead, previousFile };
}

/** The choice handed to the source: a narrowed staging with the run's file and the snapshot version it read. */
function stagingChoice(ctx: RunContext, decision: StagingDecision): StagingChoice {
  const { narrow, ...rest } = decision.choice;
  const etag = ctx.stored.etag;
  if (!narrow || etag === undefined) return rest;
  return { ...rest, narrow: { ...narrow, previousFile: join(ctx.duck.dir, NARROWED_PREVIOUS), etag } };
}
