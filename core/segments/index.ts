export { compileSegment, relationOf, type CompiledSegment } from './compile.ts';
export { SEGMENT_DIALECTS, type SegmentDialect } from './dialects.ts';
export { resolveChain, type ModelLookup, type NamedModel } from './resolve.ts';
export { splitBounds, splitGroupOf } from './splits.ts';
export { segmentDialectOf } from './source-dialect.ts';
export { segmentQueryModel } from './run-model.ts';
