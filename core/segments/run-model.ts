import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import { compileSegment, type CompiledSegment } from './compile.ts';
import type { ModelLookup } from './resolve.ts';
import { segmentDialectOf } from './source-dialect.ts';

/**
 * The Model a run of a segment reads: a query Model of its compiled SQL, with the root Model's primary
 * key, so the runner and every source connector treat it as any query Model.
 */
export function segmentQueryModel(
  name: string,
  spec: ModelSpec,
  source: Pick<SourceSpec, 'type'>,
  lookup: ModelLookup,
): { spec: ModelSpec; compiled: CompiledSegment } {
  const compiled = compileSegment({ name, spec }, segmentDialectOf(source), lookup);
  const { segment: _segment, filterable: _filterable, relationships: _relationships, ...rest } = spec;
  return { spec: { ...rest, query: compiled.sql, primaryKey: compiled.primaryKey }, compiled };
}
