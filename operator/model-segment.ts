import type { Model, ModelStatus } from '../crds/index.ts';
import type { RunSummary } from '../core/summary.ts';
import { isSynclineError } from '../core/errors.ts';
import {
  compileSegment,
  segmentDialectOf,
  segmentQueryModel,
  type CompiledSegment,
} from '../core/segments/index.ts';
import type { Store } from './context.ts';
import { definitionHashOf } from './model-count.ts';

export type SegmentVerdict =
  | { ok: true; compiled: CompiledSegment }
  | { ok: false; reason: string; message: string; transient: boolean };

/**
 * A segment Model compiled against the Models of its namespace as the informer cache has them (its
 * parents, related Models and the segments it names), for its Source's dialect. What CEL cannot check
 * (names of other objects, cycles, depth, value types) comes back as a reason the Model stalls with.
 */
export function compileModelSegment(model: Model, store: Pick<Store, 'model' | 'source'>): SegmentVerdict {
  const namespace = model.metadata.namespace ?? 'default';
  const source = store.source(namespace, model.spec.sourceRef.name);
  if (!source)
    return {
      ok: false,
      reason: 'SourceNotFound',
      message: `Source "${model.spec.sourceRef.name}" does not exist in namespace ${namespace}: create it, or fix spec.sourceRef.name`,
      transient: false,
    };
  try {
    const compiled = compileSegment(
      { name: model.metadata.name, spec: model.spec },
      segmentDialectOf(source.spec),
      (name) => store.model(namespace, name)?.spec,
    );
    return { ok: true, compiled };
  } catch (error) {
    if (!isSynclineError(error)) throw error;
    return { ok: false, reason: error.reason, message: error.message, transient: error.retryable };
  }
}

/** The Model a run of a segment reads: a query Model of the compiled SQL, with the root's primary key. */
export function segmentRunModel(model: Model, store: Pick<Store, 'model' | 'source'>): Model {
  if (!model.spec.segment) return model;
  const namespace = model.metadata.namespace ?? 'default';
  const source = store.source(namespace, model.spec.sourceRef.name);
  if (!source) throw new Error(`Source "${model.spec.sourceRef.name}" disappeared`);
  const lookup = (name: string) => store.model(namespace, name)?.spec;
  return { ...model, spec: segmentQueryModel(model.metadata.name, model.spec, source.spec, lookup).spec };
}

/**
 * The size preview a finished run of a Sync of this segment gives: how many rows its query returned (the
 * runner, which can reach the Source, counted them), and when. Undefined for other Models and failed runs.
 */
export function segmentMembers(
  model: Model,
  summary: Pick<RunSummary, 'result' | 'dryRun' | 'finishedAt' | 'counts'>,
): ModelStatus['segment'] {
  if (!model.spec.segment || summary.result === 'Failed' || summary.dryRun) return undefined;
  const sql = model.status?.compiledSql;
  return {
    members: summary.counts.queried,
    countedAt: summary.finishedAt,
    ...(sql ? { definitionHash: definitionHashOf(sql) } : {}),
  };
}
