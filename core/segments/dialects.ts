import {
  DummyDriver,
  Kysely,
  MysqlAdapter,
  MysqlIntrospector,
  MysqlQueryCompiler,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
  type Dialect,
  type Expression,
  type RawBuilder,
} from 'kysely';

// Compile-only Kysely instances, one per source dialect. Kysely ships PostgreSQL's and MySQL's query
// compilers; DuckDB speaks PostgreSQL's quoting, and Snowflake's and BigQuery's string literals and
// identifiers differ enough to need compilers of their own (below). Values are always inlined as literals
// by the compiler (sql.lit): a Model is one SQL text, with no parameters, on every source.

export const SEGMENT_DIALECTS = ['postgres', 'mysql', 'snowflake', 'bigquery', 'duckdb'] as const;
export type SegmentDialect = (typeof SEGMENT_DIALECTS)[number];

/** Snowflake: an unquoted name is stored upper-cased, so a quoted upper-cased name is what it means. */
class SnowflakeQueryCompiler extends PostgresQueryCompiler {
  protected override sanitizeIdentifier(identifier: string): string {
    return super.sanitizeIdentifier(identifier.toUpperCase());
  }
  // A backslash escapes in Snowflake's single-quoted strings; CHR(92) spells one without an escape, so
  // the literal means the same to Snowflake and to any engine that does not treat \ specially.
  protected override appendStringLiteral(value: string): void {
    const parts = value.split('\\');
    if (parts.length === 1) return super.appendStringLiteral(value);
    this.append('(');
    parts.forEach((part, i) => {
      if (i > 0) this.append(' || CHR(92) || ');
      super.appendStringLiteral(part);
    });
    this.append(')');
  }
}

/** GoogleSQL: backquoted names, and string literals where backslash is the escape character. */
class BigQueryQueryCompiler extends MysqlQueryCompiler {
  protected override sanitizeStringLiteral(value: string): string {
    return value.replace(
      /[\\'\n\r]/g,
      (c) => ({ '\\': '\\\\', "'": "\\'", '\n': '\\n', '\r': '\\r' })[c] ?? c,
    );
  }
  protected override sanitizeIdentifier(identifier: string): string {
    return identifier.replace(/[\\`]/g, (c) => `\\${c}`);
  }
}

function compileOnly(
  adapter: () => PostgresAdapter | MysqlAdapter,
  compiler: () => PostgresQueryCompiler | MysqlQueryCompiler,
  introspector: (db: Kysely<unknown>) => PostgresIntrospector | MysqlIntrospector,
): Dialect {
  return {
    createAdapter: adapter,
    createDriver: () => new DummyDriver(),
    createIntrospector: introspector,
    createQueryCompiler: compiler,
  };
}

const pg = (compiler: () => PostgresQueryCompiler) =>
  compileOnly(
    () => new PostgresAdapter(),
    compiler,
    (db) => new PostgresIntrospector(db),
  );
const my = (compiler: () => MysqlQueryCompiler) =>
  compileOnly(
    () => new MysqlAdapter(),
    compiler,
    (db) => new MysqlIntrospector(db),
  );

const DIALECTS: Record<SegmentDialect, Dialect> = {
  postgres: pg(() => new PostgresQueryCompiler()),
  duckdb: pg(() => new PostgresQueryCompiler()),
  snowflake: pg(() => new SnowflakeQueryCompiler()),
  mysql: my(() => new MysqlQueryCompiler()),
  bigquery: my(() => new BigQueryQueryCompiler()),
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the relations are SQL the user wrote: no schema to type them with
export type AnyDb = Kysely<any>;
const instances = new Map<SegmentDialect, AnyDb>();

export function builderFor(dialect: SegmentDialect): AnyDb {
  let db = instances.get(dialect);
  if (!db) {
    db = new Kysely({ dialect: DIALECTS[dialect] });
    instances.set(dialect, db);
  }
  return db;
}

export type RelativeUnit = 'minutes' | 'hours' | 'days' | 'weeks';

/** `now - amount units`, as a date when the column is a date, on each dialect. */
export function relativeStart(
  dialect: SegmentDialect,
  amount: number,
  unit: RelativeUnit,
  date: boolean,
): RawBuilder<unknown> {
  if (!Number.isSafeInteger(amount) || amount < 1) throw new RangeError(`amount ${amount} is not a count`);
  const n = sql.lit(amount);
  const singular = { minutes: 'MINUTE', hours: 'HOUR', days: 'DAY', weeks: 'WEEK' }[unit];
  switch (dialect) {
    case 'mysql':
      return date
        ? sql`CURRENT_DATE - INTERVAL ${n} ${sql.raw(singular)}`
        : sql`CURRENT_TIMESTAMP - INTERVAL ${n} ${sql.raw(singular)}`;
    case 'bigquery': {
      // TIMESTAMP_SUB takes no WEEK; DATE_SUB does, but days keep one spelling.
      const days = unit === 'weeks' ? sql.lit(amount * 7) : n;
      const part = sql.raw(unit === 'weeks' ? 'DAY' : singular);
      return date
        ? sql`DATE_SUB(CURRENT_DATE(), INTERVAL ${days} ${part})`
        : sql`TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL ${days} ${part})`;
    }
    default:
      // PostgreSQL, Snowflake and DuckDB read the same interval constant.
      return sql`${relativeEnd(dialect, date)} - INTERVAL ${sql.lit(`${amount} ${unit}`)}`;
  }
}

/** The upper end of a relative range: now (today for a date). */
export function relativeEnd(dialect: SegmentDialect, date: boolean): RawBuilder<unknown> {
  if (dialect === 'bigquery') return date ? sql`CURRENT_DATE()` : sql`CURRENT_TIMESTAMP()`;
  // Snowflake's timestamps are mostly TIMESTAMP_NTZ: now as one (in the session's TIMEZONE) compares with
  // NTZ, LTZ and TZ columns alike.
  if (dialect === 'snowflake' && !date) return sql.raw('CAST(CURRENT_TIMESTAMP AS TIMESTAMP)');
  return sql.raw(date ? 'CURRENT_DATE' : 'CURRENT_TIMESTAMP');
}

/** `text` contains `part`, literally and case-sensitively (MySQL compares bytes, past its collation). */
export function containsText(
  dialect: SegmentDialect,
  text: Expression<unknown>,
  part: string,
): RawBuilder<boolean> {
  const lit = sql.lit(part);
  switch (dialect) {
    case 'mysql':
      return sql<boolean>`LOCATE(CAST(${lit} AS BINARY), CAST(${text} AS BINARY)) > 0`;
    case 'snowflake':
      return sql<boolean>`CONTAINS(${text}, ${lit})`;
    default:
      return sql<boolean>`STRPOS(${text}, ${lit}) > 0`;
  }
}
