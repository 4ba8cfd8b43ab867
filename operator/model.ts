import type { Model, ModelStatus } from '../crds/index.ts';
import { biSourceRef, validateBiModel } from './bi-model.ts';
import type { ConditionSet } from './conditions.ts';
import type { ReconcileContext } from './context.ts';
import { countSegment } from './model-count.ts';
import { compileModelSegment, type SegmentVerdict } from './model-segment.ts';
import type { ReconcileResult } from './runtime/controller.ts';
import { writeStatus } from './status-writer.ts';
import { validateModel } from './validation.ts';

/** The conditions a Model's validation leads to. */
export function modelConditions(
  model: Model,
  ctx: Pick<ReconcileContext, 'store'>,
  segment: SegmentVerdict | undefined = model.spec.segment
    ? compileModelSegment(model, ctx.store)
    : undefined,
): ConditionSet {
  if (segment && !segment.ok) {
    return {
      ready: { status: 'False', reason: segment.reason, message: segment.message },
      ...(segment.transient ? {} : { stalled: { reason: segment.reason, message: segment.message } }),
    };
  }
  const namespace = model.metadata.namespace ?? 'default';
  const source = ctx.store.source(namespace, model.spec.sourceRef.name);
  const biRef = biSourceRef(model);
  let verdict = validateModel(model, source);
  if (verdict.ok && source)
    verdict = validateBiModel(model, source, biRef ? ctx.store.source(namespace, biRef.name) : undefined);
  if (!verdict.ok) {
    return {
      ready: { status: 'False', reason: verdict.reason, message: verdict.message },
      ...(verdict.stalled ? { stalled: { reason: verdict.reason, message: verdict.message } } : {}),
    };
  }
  const columns = model.status?.columns;
  return {
    ready: {
      status: 'True',
      reason: 'SourceReady',
      message: columns?.length
        ? `Source "${model.spec.sourceRef.name}" is Ready; the last run saw ${columns.length} columns`
        : `Source "${model.spec.sourceRef.name}" is Ready; columns are known after the first run`,
    },
  };
}

/** A Model is Ready when its Source is; its columns and fingerprint are written by the Sync reconciler after runs. */
export async function reconcileModel(ctx: ReconcileContext, model: Model): Promise<ReconcileResult> {
  const status: ModelStatus = model.status ?? {};
  const segment = model.spec.segment ? compileModelSegment(model, ctx.store) : undefined;
  const counted = segment?.ok ? await countSegment(ctx, model, segment.compiled) : {};
  // A segment's compiled SQL is shown as long as it compiles; a definition that no longer does clears it.
  const after: ModelStatus =
    segment === undefined
      ? status
      : {
          ...status,
          compiledSql: segment.ok ? segment.compiled.sql : undefined,
          ...(counted.segment ? { segment: counted.segment } : {}),
        };
  // Only the keys this reconciler owns go into the patch, so columns written meanwhile are kept.
  await writeStatus(ctx, {
    plural: 'models',
    object: model,
    before: status,
    after,
    set: modelConditions(model, ctx, segment),
    keys: segment === undefined ? [] : counted.segment ? ['compiledSql', 'segment'] : ['compiledSql'],
  });
  return counted.requeueAfterMs === undefined ? undefined : { requeueAfterMs: counted.requeueAfterMs };
}
