// How a BigQuery result column becomes a DuckDB column, and how a raw REST value (rows read with
// skipParsing: every scalar as text, TIMESTAMP as int64 microseconds, BYTES as base64, REPEATED fields as
// {v: [...]} and RECORDs as {v: {f: [...]}}) becomes the exact text DuckDB casts.
import type { TextColumn, TextValue } from '../shared/text-stage.ts';

export interface BigQueryField {
  name: string;
  type: string;
  mode?: string;
  precision?: string;
  scale?: string;
  fields?: BigQueryField[];
}

/** One raw cell: {v: scalar text | null | cells | {f: cells}}. */
export interface RawCell {
  v: unknown;
}

export interface BigQueryColumnPlan extends TextColumn {
  convert: (cell: RawCell) => TextValue;
}

const MAX_DECIMAL_PRECISION = 38;

function quoteDuckIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The DuckDB type of a (non-repeated) field. */
function scalarDuckType(field: BigQueryField): string {
  switch (field.type.toUpperCase()) {
    case 'INTEGER':
    case 'INT64':
      return 'BIGINT';
    case 'FLOAT':
    case 'FLOAT64':
      return 'DOUBLE';
    case 'BOOLEAN':
    case 'BOOL':
      return 'BOOLEAN';
    case 'NUMERIC': {
      const precision = Number(field.precision ?? 38);
      const scale = Number(field.scale ?? 9);
      return precision <= MAX_DECIMAL_PRECISION ? `DECIMAL(${precision},${scale})` : 'VARCHAR';
    }
    case 'BIGNUMERIC': {
      // BIGNUMERIC holds up to 76 digits: exact text unless declared narrow enough for DuckDB.
      if (field.precision === undefined) return 'VARCHAR';
      const precision = Number(field.precision);
      return precision <= MAX_DECIMAL_PRECISION
        ? `DECIMAL(${precision},${Number(field.scale ?? 0)})`
        : 'VARCHAR';
    }
    case 'BYTES':
      return 'BLOB';
    case 'DATE':
      return 'DATE';
    case 'DATETIME':
      return 'TIMESTAMP';
    case 'TIME':
      return 'TIME';
    case 'TIMESTAMP':
      return 'TIMESTAMP WITH TIME ZONE';
    case 'JSON':
      return 'JSON';
    case 'RECORD':
    case 'STRUCT':
      return `STRUCT(${(field.fields ?? []).map((f) => `${quoteDuckIdent(f.name)} ${duckType(f)}`).join(', ')})`;
    default:
      // STRING, GEOGRAPHY (WKT), INTERVAL, RANGE: their text.
      return 'VARCHAR';
  }
}

export function duckType(field: BigQueryField): string {
  const scalar = scalarDuckType(field);
  return field.mode?.toUpperCase() === 'REPEATED' ? `${scalar}[]` : scalar;
}

function sourceType(field: BigQueryField): string {
  const base = field.type.toUpperCase() === 'RECORD' ? 'STRUCT' : field.type.toUpperCase();
  const params =
    field.precision !== undefined
      ? `(${field.precision}${field.scale !== undefined ? `,${field.scale}` : ''})`
      : '';
  return field.mode?.toUpperCase() === 'REPEATED' ? `ARRAY<${base}${params}>` : `${base}${params}`;
}

/** int64 microseconds since the epoch as an ISO instant DuckDB reads exactly. */
export function microsToIso(text: string): string {
  const micros = BigInt(text);
  const millis = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
  const rest = micros - millis * 1000n;
  const iso = new Date(Number(millis)).toISOString(); // yyyy-mm-ddThh:mm:ss.mmmZ
  return `${iso.slice(0, 23)}${rest.toString().padStart(3, '0')}+00:00`;
}

function scalarText(field: BigQueryField, value: string): string {
  switch (field.type.toUpperCase()) {
    case 'TIMESTAMP':
      // Int64 microseconds (formatOptions.useInt64Timestamp); older servers send float seconds.
      return /^-?\d+$/.test(value) ? microsToIso(value) : new Date(Number(value) * 1000).toISOString();
    case 'DATETIME':
      return value.replace('T', ' ');
    case 'BYTES':
      return Buffer.from(value, 'base64').toString('hex');
    default:
      return value;
  }
}

/**
 * A nested value (inside an ARRAY or STRUCT) as JSON for DuckDB's JSON-to-typed cast: scalars as JSON
 * strings so numbers are parsed from their exact text, bytes as \x escapes, records as objects.
 */
function nestedJson(field: BigQueryField, raw: unknown): unknown {
  if (raw === null || raw === undefined) return null;
  const type = field.type.toUpperCase();
  if (type === 'RECORD' || type === 'STRUCT') {
    const cells = (raw as { f?: RawCell[] }).f ?? [];
    return Object.fromEntries((field.fields ?? []).map((sub, i) => [sub.name, cellJson(sub, cells[i])]));
  }
  const text = scalarText(field, String(raw));
  if (type === 'BYTES') return (text.match(/../g) ?? []).map((byte) => `\\x${byte}`).join('');
  if (type === 'JSON') return text;
  return text;
}

function cellJson(field: BigQueryField, cell: RawCell | undefined): unknown {
  const value = cell?.v;
  if (value === null || value === undefined) return null;
  if (field.mode?.toUpperCase() === 'REPEATED') {
    return (value as RawCell[]).map((item) => nestedJson({ ...field, mode: 'NULLABLE' }, item.v));
  }
  return nestedJson(field, value);
}

export function planColumn(field: BigQueryField): BigQueryColumnPlan {
  const type = duckType(field);
  const nested =
    field.mode?.toUpperCase() === 'REPEATED' || ['RECORD', 'STRUCT'].includes(field.type.toUpperCase());
  if (nested) {
    return {
      name: field.name,
      duckType: type,
      sourceType: sourceType(field),
      load: (f) => `CAST(CAST(${f} AS JSON) AS ${type})`,
      convert: (cell) =>
        cell.v === null || cell.v === undefined ? null : JSON.stringify(cellJson(field, cell)),
    };
  }
  return {
    name: field.name,
    duckType: type,
    sourceType: sourceType(field),
    ...(type === 'TIMESTAMP WITH TIME ZONE' ? { load: (f: string) => `CAST(${f} AS TIMESTAMPTZ)` } : {}),
    convert: (cell) => (cell.v === null || cell.v === undefined ? null : scalarText(field, String(cell.v))),
  };
}
