// What the operator checks of a Model of a BI question (spec.metabase / spec.looker) beyond its schema:
// the Sources it names exist, are Ready and are of the kinds its mode needs. A run would fail on each of
// these; the Model says so first.
import { BI_WAREHOUSE_TYPES } from '../crds/bi.ts';
import type { Model, Source } from '../crds/index.ts';
import { isConditionTrue, READY } from './conditions.ts';
import type { Verdict } from './validation.ts';

const WAREHOUSES: ReadonlySet<string> = new Set(BI_WAREHOUSE_TYPES);

/** The BI tool Source an as: sql Model reads its question from, if it names one. */
export function biSourceRef(model: Model): { name: string } | undefined {
  return (model.spec.metabase ?? model.spec.looker)?.sourceRef;
}

export function validateBiModel(model: Model, source: Source, biSource: Source | undefined): Verdict {
  const block = model.spec.metabase ? 'metabase' : model.spec.looker ? 'looker' : undefined;
  if (!block) return { ok: true };
  const as = (model.spec.metabase ?? model.spec.looker)!.as;
  const stalled = (reason: string, message: string): Verdict => ({
    ok: false,
    stalled: true,
    reason,
    message,
  });
  if (as === 'results') {
    return source.spec.type === block
      ? { ok: true }
      : stalled(
          'InvalidModel',
          `spec.sourceRef names Source "${source.metadata.name}" of type ${source.spec.type}; with ${block}.as: results it names the ${block} Source`,
        );
  }
  if (!WAREHOUSES.has(source.spec.type))
    return stalled(
      'InvalidModel',
      `spec.sourceRef names Source "${source.metadata.name}" of type ${source.spec.type}; with ${block}.as: sql it names the warehouse the question's SQL runs on (${BI_WAREHOUSE_TYPES.join(', ')})`,
    );
  const ref = biSourceRef(model)!;
  if (!biSource)
    return stalled(
      'SourceNotFound',
      `Source "${ref.name}" does not exist in namespace ${model.metadata.namespace}: create it, or fix spec.${block}.sourceRef.name`,
    );
  if (biSource.spec.type !== block)
    return stalled(
      'InvalidModel',
      `spec.${block}.sourceRef names Source "${ref.name}" of type ${biSource.spec.type}, not a ${block} Source`,
    );
  if (!isConditionTrue(biSource.status?.conditions, READY))
    return {
      ok: false,
      stalled: false,
      reason: 'SourceNotReady',
      message: `Source "${ref.name}" (${block}) is not Ready`,
    };
  return { ok: true };
}
