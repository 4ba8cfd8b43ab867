// The database a BI question's SQL is written for must be the one the Model's Source connects to: the
// same kind of database (its SQL dialect) and, where the BI tool says, the same database name.
import type { SourceSpec } from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';

/** The database a question targets, as the BI tool describes it. */
export interface QuestionDatabase {
  /** For messages: `Metabase database 2 ("Warehouse")`, `Looker connection "warehouse"`. */
  label: string;
  /** The Source type whose dialect it is; undefined when no Source type reads it (H2, Druid...). */
  type: SourceSpec['type'] | undefined;
  /** The tool's own name of its engine or dialect. */
  engine: string;
  /** Database (PostgreSQL, MySQL, Snowflake) or project (BigQuery) name, when the tool tells. */
  database?: string | undefined;
}

/** The database name a warehouse Source connects to. */
export function sourceDatabase(source: SourceSpec): string | undefined {
  return (
    source.postgres?.database ??
    source.mysql?.database ??
    source.snowflake?.database ??
    source.bigquery?.project
  );
}

export function assertSameWarehouse(target: QuestionDatabase, source: SourceSpec, question: string): void {
  const fix = "point the Model's spec.sourceRef at a Source of that database, or use as: results";
  if (target.type !== source.type) {
    throw new SynclineError(
      'BiDatabaseMismatch',
      `${question} is written for ${target.label}, a ${target.engine} database, but the Model's Source is of type ${source.type}; ${fix}`,
    );
  }
  const expected = sourceDatabase(source);
  if (target.database === undefined || expected === undefined) return;
  // Snowflake folds unquoted names to upper case, BigQuery projects are lower case: compare without case.
  if (target.database.toLowerCase() !== expected.toLowerCase()) {
    throw new SynclineError(
      'BiDatabaseMismatch',
      `${question} queries database "${target.database}" (${target.label}), but the Model's Source connects to "${expected}"; ${fix}`,
    );
  }
}
