import type { Model, ModelStatus } from '../crds/index.ts';
import type { ConditionSet } from './conditions.ts';
import type { ReconcileContext } from './context.ts';
import type { ReconcileResult } from './runtime/controller.ts';
import { writeStatus } from './status-writer.ts';
import { validateModel } from './validation.ts';

/** The conditions a Model's validation leads to. */
export function modelConditions(model: Model, ctx: Pick<ReconcileContext, 'store'>): ConditionSet {
  const namespace = model.metadata.namespace ?? 'default';
  const verdict = validateModel(model, ctx.store.source(namespace, model.spec.sourceRef.name));
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
  // Only the keys this reconciler owns go into the patch, so columns written meanwhile are kept.
  await writeStatus(ctx, {
    plural: 'models',
    object: model,
    before: status,
    after: status,
    set: modelConditions(model, ctx),
    keys: [],
  });
}
