// Row values reach the destinations as whatever JavaScript the engine read from DuckDB: primitives,
// bigints, Dates, byte arrays, arrays, plain objects, or DuckDB's own value classes. These helpers turn
// them into exact text (JSON with big integers kept as digits, PostgreSQL literals) without rounding.
import {
  DuckDBBlobValue,
  DuckDBListValue,
  DuckDBArrayValue,
  DuckDBMapValue,
  DuckDBStructValue,
} from '@duckdb/node-api';

/** Convert DuckDB value classes into plain JavaScript; other values are returned as they are. */
export function plainValue(value: unknown): unknown {
  if (value instanceof DuckDBListValue || value instanceof DuckDBArrayValue)
    return value.items.map(plainValue);
  if (value instanceof DuckDBStructValue) {
    return Object.fromEntries(Object.entries(value.entries).map(([k, v]) => [k, plainValue(v)]));
  }
  if (value instanceof DuckDBMapValue) {
    return Object.fromEntries(value.entries.map((e) => [String(plainValue(e.key)), plainValue(e.value)]));
  }
  if (value instanceof DuckDBBlobValue) return value.bytes;
  // The other DuckDB value classes (decimals, dates, times, intervals, UUIDs...) print their exact text.
  if (typeof value === 'object' && value !== null && value.constructor?.name.startsWith('DuckDB'))
    return String(value);
  return value;
}

/**
 * A number kept as its exact JSON text (Node's JSON.rawJSON): JSON.stringify and toJson write the text as
 * it is, so 9007199254740993 or 0.1000000000000000000001 reach a destination with every digit.
 */
export interface RawJson {
  readonly rawJSON: string;
}

const NativeJson = JSON as JSON & {
  rawJSON(text: string): RawJson;
  isRawJSON(value: unknown): value is RawJson;
};

export function isRawJson(value: unknown): value is RawJson {
  return NativeJson.isRawJSON(value);
}

/**
 * A JSON column's JSON `null` (not SQL NULL): toJson writes it as `null` like SQL NULL, but toPgText
 * gives a json/jsonb column the JSON value `null` where SQL NULL gives NULL.
 */
export const JSON_NULL: RawJson = NativeJson.rawJSON('null');

/** The JSON number text `text` as a RawJson (it must be a valid JSON number). */
export function rawJson(text: string): RawJson {
  return NativeJson.rawJSON(text);
}

/** A JSON number's sign, digits (no leading or trailing zeros) and power of ten: "1.50e3" -> "15e2". */
function canonicalNumber(text: string): string | undefined {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return undefined;
  const fraction = m[3] ?? '';
  const digits = `${m[2]}${fraction}`.replace(/^0+/, '');
  if (digits === '') return `${m[1]}0`;
  const significant = digits.replace(/0+$/, '');
  const exponent = Number(m[4] ?? 0) - fraction.length + (digits.length - significant.length);
  return `${m[1]}${significant}e${exponent}`;
}

/**
 * The JSON number `source` (parsed as `value`) as JavaScript: the number when it is exactly the double's
 * value (-0 included), else its exact text as a RawJson (integers beyond 2^53, long decimals, 1e400).
 */
export function exactNumber(source: string, value: number): number | RawJson {
  const printed = Object.is(value, -0) ? '-0' : String(value);
  if (Number.isFinite(value) && canonicalNumber(printed) === canonicalNumber(source)) return value;
  return NativeJson.rawJSON(source);
}

/**
 * Text that may hold a number a double cannot: 16 or more digits in a row (one dot among them allowed),
 * or an exponent of three digits (overflow, underflow). A number with at most 15 significant digits and
 * a smaller exponent is always exactly the double JSON.parse makes of it (DBL_DIG), so text without
 * either is parsed without the reviver, which costs ~4x (measured on 100k rows with a jsonb value: 1.5 s
 * with it, 0.5 s without). A match inside a string only costs that time.
 */
const MAY_ROUND = /\d(?:\.?\d){15}|[eE][+-]?\d{3}/;

const exactReviver = (_key: string, value: unknown, context?: { source?: string }) =>
  typeof value === 'number' && context?.source !== undefined ? exactNumber(context.source, value) : value;

/** JSON.parse keeping every number exact: numbers a double cannot hold become RawJson (see exactNumber). */
export function parseJsonExact(text: string): unknown {
  return MAY_ROUND.test(text) ? JSON.parse(text, exactReviver) : JSON.parse(text);
}

/** A JSON string, or a bare NaN/Infinity/-Infinity token outside one. */
const NON_FINITE_TOKEN = /"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g;

/**
 * DuckDB's JSON text of a value, parsed as parseJsonExact does. DuckDB writes a non-finite double inside a
 * list or struct as a bare NaN / Infinity / -Infinity, which is not JSON: those become the strings
 * "NaN" / "Infinity" / "-Infinity", as a scalar double's are (runner/fields.ts jsonValueSql).
 */
export function parseDuckJson(text: string, parse: (text: string) => unknown = parseJsonExact): unknown {
  try {
    return parse(text);
  } catch (error) {
    if (!(error instanceof SyntaxError) || !/NaN|Infinity/.test(text)) throw error;
    return parse(text.replace(NON_FINITE_TOKEN, (token) => (token.startsWith('"') ? token : `"${token}"`)));
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || NativeJson.isRawJSON(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** A finite number as JSON and PostgreSQL read it: String(), except that -0 keeps its sign. */
function numberText(v: number): string {
  return Object.is(v, -0) ? '-0' : String(v);
}

/**
 * JSON text of a value. Unlike JSON.stringify it keeps bigints exact (as JSON numbers), writes -0 as -0,
 * RawJson numbers as their text, bytes as base64 and DuckDB values as their text; NaN and infinities
 * become null as JSON requires.
 */
export function toJson(value: unknown): string {
  const v = plainValue(value);
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? numberText(v) : 'null';
    case 'bigint':
      return v.toString();
    case 'boolean':
      return v ? 'true' : 'false';
    case 'function':
    case 'symbol':
      return 'null';
  }
  if (NativeJson.isRawJSON(v)) return v.rawJSON;
  if (v instanceof Date) return JSON.stringify(Number.isNaN(v.getTime()) ? null : v.toISOString());
  if (v instanceof Uint8Array) return JSON.stringify(Buffer.from(v).toString('base64'));
  if (Array.isArray(v)) return `[${v.map((item) => toJson(item)).join(',')}]`;
  const withToJson = v as { toJSON?: () => unknown };
  if (!isPlainObject(v) && typeof withToJson.toJSON === 'function') return toJson(withToJson.toJSON());
  const entries = Object.entries(v as Record<string, unknown>).filter(([, item]) => item !== undefined);
  return `{${entries.map(([k, item]) => `${JSON.stringify(k)}:${toJson(item)}`).join(',')}}`;
}

/** A value meant for a JSON column: text that already is JSON is kept as it is (DuckDB hands JSON columns over as text). */
export function toJsonDocument(value: unknown): string {
  const v = plainValue(value);
  if (typeof v === 'string') {
    try {
      JSON.parse(v);
      return v;
    } catch {
      return JSON.stringify(v);
    }
  }
  return toJson(v);
}

/**
 * The bytes of a BLOB in DuckDB's text form, as the engine reads it: printable ASCII as itself, every
 * other byte as \xHH.
 */
export function duckBlobText(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && text[i + 1] === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 2, i + 4))) {
      bytes.push(parseInt(text.slice(i + 2, i + 4), 16));
      i += 3;
    } else {
      bytes.push(...Buffer.from(text[i] ?? '', 'utf8'));
    }
  }
  return Buffer.from(bytes);
}

/** JSON.parse, with every number kept as its exact source text (no rounding of big integers or decimals). */
export function parseJsonKeepingNumberText(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' && context?.source !== undefined ? context.source : value,
  );
}

/** Scalar text as PostgreSQL's input functions read it. */
export function toPgScalarText(value: unknown): string {
  const v = plainValue(value);
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
      if (Number.isNaN(v)) return 'NaN';
      if (!Number.isFinite(v)) return v > 0 ? 'Infinity' : '-Infinity';
      return numberText(v);
    case 'bigint':
      return v.toString();
    case 'boolean':
      return v ? 'true' : 'false';
  }
  if (NativeJson.isRawJSON(v)) return v.rawJSON;
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return `\\x${Buffer.from(v).toString('hex')}`;
  return toJson(v);
}

/** A PostgreSQL array literal: {1,2,"a \"b\"",NULL}; nested arrays nest. */
export function toPgArrayLiteral(items: unknown[]): string {
  const parts = items.map((raw) => {
    const item = plainValue(raw);
    if (item === null || item === undefined) return 'NULL';
    if (Array.isArray(item)) return toPgArrayLiteral(item);
    const text = isPlainObject(item) ? toJson(item) : toPgScalarText(item);
    return `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
  });
  return `{${parts.join(',')}}`;
}

/** Text of a value for a PostgreSQL column of the given type (format_type spelling), or null for SQL NULL. */
export function toPgText(value: unknown, pgType: string): string | null {
  // Fast paths for the common scalars: this runs once per value delivered.
  if (value === null || value === undefined) return null;
  if (
    typeof value === 'string' &&
    pgType !== 'json' &&
    pgType !== 'jsonb' &&
    pgType !== 'bytea' &&
    !pgType.endsWith('[]')
  ) {
    return value;
  }
  if (typeof value === 'number' && Number.isFinite(value)) return numberText(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'bigint') return value.toString();
  const v = plainValue(value);
  if (v === null || v === undefined) return null;
  if (pgType === 'json' || pgType === 'jsonb') return toJsonDocument(v);
  if (pgType === 'bytea' && typeof v === 'string') return `\\x${duckBlobText(v).toString('hex')}`;
  if (pgType.endsWith('[]')) {
    if (Array.isArray(v)) return toPgArrayLiteral(v);
    if (typeof v === 'string' && v.startsWith('[')) {
      try {
        const parsed = parseJsonKeepingNumberText(v);
        if (Array.isArray(parsed)) return toPgArrayLiteral(parsed);
      } catch {
        return v;
      }
    }
    return toPgScalarText(v);
  }
  return toPgScalarText(v);
}
