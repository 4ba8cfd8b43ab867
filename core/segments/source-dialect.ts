import type { SourceSpec } from '../../crds/index.ts';
import { SynclineError } from '../errors.ts';
import type { SegmentDialect } from './dialects.ts';

const BY_SOURCE_TYPE: Record<string, SegmentDialect> = {
  postgres: 'postgres',
  mysql: 'mysql',
  snowflake: 'snowflake',
  bigquery: 'bigquery',
  files: 'duckdb',
};

/** The SQL dialect a segment on this Source compiles to. */
export function segmentDialectOf(source: Pick<SourceSpec, 'type'>): SegmentDialect {
  const dialect = BY_SOURCE_TYPE[source.type];
  if (!dialect)
    throw new SynclineError(
      'InvalidSegment',
      `segments compile to the SQL of postgres, mysql, snowflake, bigquery and files Sources, not ${source.type}`,
    );
  return dialect;
}
