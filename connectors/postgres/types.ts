// How a PostgreSQL result column becomes a DuckDB column: the DuckDB type, the expression that writes it
// in the COPY ... TO STDOUT (FORMAT csv) stream, and the DuckDB expression that loads it from the CSV text.
import { quoteIdent } from '../shared/sql.ts';

export interface PgTypeInfo {
  oid: number;
  /** pg_type.typname of the column's type, or of a domain's base type. */
  name: string;
  /** For arrays: typname of the element type. */
  element?: string;
  /** Whether the column's type is a domain (then `name` is its base type's). */
  domain?: boolean;
}

export interface ColumnPlan {
  name: string;
  /** DuckDB type of the staged column. */
  duckType: string;
  /** The type as PostgreSQL names it, for messages. */
  sourceType: string;
  /** Expression over the model row `m` in the COPY query. */
  copyExpr: string;
  /** DuckDB type the CSV field is read as. */
  csvType: string;
  /** DuckDB expression turning the CSV field `field` into the staged value. */
  loadExpr: (field: string) => string;
  /** Expression over the model row `m` that PostgreSQL's row hash covers (see hash.ts). */
  hashExpr: string;
}

/** DuckDB decimals hold at most 38 digits. */
const MAX_DECIMAL_PRECISION = 38;

/** numeric(p,s) from an attribute typmod; undefined for unconstrained numeric (or one DuckDB cannot hold exactly). */
export function numericPrecision(typmod: number): { precision: number; scale: number } | undefined {
  if (typmod < 4) return undefined;
  const precision = ((typmod - 4) >> 16) & 0xffff;
  const scale = (typmod - 4) & 0xffff;
  // PostgreSQL 15 allows a negative scale (stored in 11 bits) and a scale above the precision.
  if (precision < 1 || precision > MAX_DECIMAL_PRECISION || scale > precision) return undefined;
  return { precision, scale };
}

const SCALARS: Record<string, string> = {
  int2: 'SMALLINT',
  int4: 'INTEGER',
  int8: 'BIGINT',
  oid: 'BIGINT',
  float4: 'FLOAT',
  float8: 'DOUBLE',
  bool: 'BOOLEAN',
  text: 'VARCHAR',
  varchar: 'VARCHAR',
  bpchar: 'VARCHAR',
  char: 'VARCHAR',
  name: 'VARCHAR',
  citext: 'VARCHAR',
  uuid: 'UUID',
  date: 'DATE',
  time: 'TIME',
  timetz: 'TIME WITH TIME ZONE',
  timestamp: 'TIMESTAMP',
  timestamptz: 'TIMESTAMP WITH TIME ZONE',
  json: 'JSON',
  jsonb: 'JSON',
};

/** Element types whose to_json() form DuckDB casts to a typed LIST exactly. */
const LIST_ELEMENTS = new Set([
  'int2',
  'int4',
  'int8',
  'bool',
  'text',
  'varchar',
  'bpchar',
  'name',
  'citext',
  'uuid',
  'date',
  'timestamp',
  'timestamptz',
  'json',
  'jsonb',
]);

const identity = (field: string) => field;

/**
 * Types whose own hash function (hash_record_extended uses the default hash operator class) follows
 * equality of values exactly; other types are hashed as their text form. Text types are hashed under the
 * "C" collation: a nondeterministic collation would hash 'a' and 'A' alike.
 */
const HASHED_AS_IS = new Set([
  'int2',
  'int4',
  'int8',
  'oid',
  'float4',
  'float8',
  'numeric',
  'bool',
  'char',
  'date',
  'time',
  'timestamp',
  'timestamptz',
  'interval',
  'uuid',
  'bytea',
  'jsonb',
]);
const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar']);

function hashExprOf(col: string, info: PgTypeInfo): string {
  if (!info.domain) {
    if (info.element === undefined && HASHED_AS_IS.has(info.name)) return col;
    if (info.element === undefined && TEXT_TYPES.has(info.name)) return `${col} COLLATE "C"`;
    if (info.element !== undefined && HASHED_AS_IS.has(info.element)) return col;
  }
  return `(${col})::text COLLATE "C"`;
}

export function planColumn(name: string, info: PgTypeInfo, typmod: number): ColumnPlan {
  return { ...planLoad(name, info, typmod), hashExpr: hashExprOf(`m.${quoteIdent(name)}`, info) };
}

function planLoad(name: string, info: PgTypeInfo, typmod: number): Omit<ColumnPlan, 'hashExpr'> {
  const col = `m.${quoteIdent(name)}`;
  const plain = (duckType: string): Omit<ColumnPlan, 'hashExpr'> => ({
    name,
    duckType,
    sourceType: info.name,
    copyExpr: col,
    csvType: duckType === 'JSON' ? 'VARCHAR' : duckType,
    loadExpr: duckType === 'JSON' ? (f) => `CAST(${f} AS JSON)` : identity,
  });

  if (info.element !== undefined) {
    const element = info.element;
    const sourceType = `${element}[]`;
    if (element === 'float4' || element === 'float8') {
      // As text: DuckDB reads the JSON number -0 as 0, the string "-0" as -0.0 (NaN, Infinity alike).
      return listPlan(name, sourceType, `to_json(${col}::text[])`, SCALARS[element] ?? 'DOUBLE');
    }
    if (element === 'numeric') {
      // Elements as JSON strings: DuckDB parses the text exactly, where a JSON number would go through a double.
      const decimal = numericPrecision(typmod);
      const elementType = decimal ? `DECIMAL(${decimal.precision},${decimal.scale})` : 'VARCHAR';
      return listPlan(name, sourceType, `to_json(${col}::text[])`, elementType);
    }
    if (LIST_ELEMENTS.has(element)) {
      return listPlan(name, sourceType, `to_json(${col})`, SCALARS[element] ?? 'VARCHAR');
    }
    return listPlan(name, sourceType, `to_json(${col}::text[])`, 'VARCHAR');
  }

  switch (info.name) {
    case 'numeric': {
      const decimal = numericPrecision(typmod);
      // Beyond DECIMAL(38): keep PostgreSQL's exact text rather than round.
      return {
        ...plain(decimal ? `DECIMAL(${decimal.precision},${decimal.scale})` : 'VARCHAR'),
        sourceType: 'numeric',
      };
    }
    case 'bytea':
      return {
        name,
        duckType: 'BLOB',
        sourceType: 'bytea',
        copyExpr: `encode(${col}, 'hex')`,
        csvType: 'VARCHAR',
        loadExpr: (f) => `unhex(${f})`,
      };
    case 'interval':
      // DuckDB cannot parse PostgreSQL's interval output ("-1 days +02:00:00"); spell out the three parts.
      return {
        name,
        duckType: 'INTERVAL',
        sourceType: 'interval',
        copyExpr:
          `(extract(year from ${col}) * 12 + extract(month from ${col}))::bigint || ' months ' || ` +
          `extract(day from ${col})::bigint || ' days ' || ` +
          `(extract(hour from ${col}) * 3600000000 + extract(minute from ${col}) * 60000000 + extract(microseconds from ${col}))::bigint || ' microseconds'`,
        csvType: 'VARCHAR',
        loadExpr: (f) => `CAST(${f} AS INTERVAL)`,
      };
    default: {
      const duckType = SCALARS[info.name];
      // Anything else (enums, inet, money, geometry, ...) keeps PostgreSQL's text form.
      return { ...plain(duckType ?? 'VARCHAR'), sourceType: info.name };
    }
  }
}

function listPlan(
  name: string,
  sourceType: string,
  copyExpr: string,
  elementType: string,
): Omit<ColumnPlan, 'hashExpr'> {
  return {
    name,
    duckType: `${elementType}[]`,
    sourceType,
    copyExpr,
    csvType: 'VARCHAR',
    loadExpr: (f) => `CAST(CAST(${f} AS JSON) AS ${elementType}[])`,
  };
}
