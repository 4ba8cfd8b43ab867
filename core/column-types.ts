// What a model column's values look like when they reach a destination, by the column's DuckDB type (the
// type the engine stages, as Model.status.columns lists it): the engine turns booleans into JSON
// booleans, integers and floats into numbers, decimals into their exact text, dates, timestamps, times and
// intervals into text in DuckDB's or ISO 8601 form, lists, arrays, structs and maps into JSON values
// (runner/fields.ts). A connector says which of these kinds it can never convert to a field of a given
// type (DestinationCapabilities.refusedColumns), and the operator refuses such a mapping before any run.

/** The kind of a column's values as a destination receives them. */
export type ColumnKind =
  | 'boolean'
  | 'integer'
  | 'decimal'
  | 'float'
  | 'date'
  | 'timestamp'
  | 'time'
  | 'interval'
  | 'text'
  | 'nested'
  /** JSON, BLOB, UNION and types not known here: any value may arrive, so nothing is refused. */
  | 'other';

/** A DuckDB type of each kind, for messages. */
export const COLUMN_KIND_EXAMPLES: Record<Exclude<ColumnKind, 'other'>, string> = {
  boolean: 'BOOLEAN',
  integer: 'INTEGER, BIGINT',
  decimal: 'DECIMAL',
  float: 'DOUBLE',
  date: 'DATE',
  timestamp: 'TIMESTAMP, TIMESTAMPTZ',
  time: 'TIME',
  interval: 'INTERVAL',
  text: 'VARCHAR',
  nested: 'lists, structs, maps',
};

const INTEGER = /^(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|INT[1248]|INT(16|32|64|128)|BIGNUM|VARINT)$/;

/** The kind of the values of a column of DuckDB type `type`. */
export function columnKind(type: string): ColumnKind {
  const t = type.trim().toUpperCase();
  if (/\[\d*\]$/.test(t) || /^(STRUCT|MAP)\(/.test(t)) return 'nested';
  if (t === 'BOOLEAN' || t === 'BOOL' || t === 'LOGICAL') return 'boolean';
  if (INTEGER.test(t)) return 'integer';
  if (/^(DECIMAL|NUMERIC)\b/.test(t)) return 'decimal';
  if (/^(DOUBLE|FLOAT|REAL|FLOAT4|FLOAT8)$/.test(t)) return 'float';
  if (t === 'DATE') return 'date';
  if (/^(TIMESTAMP|DATETIME)/.test(t)) return 'timestamp';
  if (/^TIME( WITH TIME ZONE)?$|^TIMETZ$/.test(t)) return 'time';
  if (t === 'INTERVAL') return 'interval';
  if (/^(VARCHAR|TEXT|STRING|CHAR|BPCHAR|UUID|BIT|BITSTRING)\b/.test(t) || t.startsWith('ENUM('))
    return 'text';
  return 'other';
}
