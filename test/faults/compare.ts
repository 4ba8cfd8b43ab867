// Value-for-value comparison of a destination with the model. PostgreSQL: every column as PostgreSQL
// renders it as text on both sides (jsonb text is canonical, so JSON null and SQL NULL differ; float8
// text keeps -0). HTTP: every record's fields as connectors/http/README.md documents them — integers and
// decimals as exact JSON numbers, NaN/±Infinity as strings, -0 as -0, jsonb as JSON.
import { isLosslessNumber, parse } from 'lossless-json';
import { sql } from '../engine/helpers.ts';
import { COLUMNS } from './model.ts';

export interface Mismatch {
  key: string;
  column: string;
  expected: string;
  got: string;
}

type TextRow = Record<string, string | null>;

const ARRAYS = new Set<string>(['ids', 'tags']);

/** Every column as text; with `arraysAsJson`, arrays as their JSON text (to_json). */
export async function modelRows(url: string, table: string, arraysAsJson = false): Promise<TextRow[]> {
  const select = COLUMNS.map((c) =>
    arraysAsJson && ARRAYS.has(c) ? `to_json(${c})::text AS ${c}` : `${c}::text AS ${c}`,
  ).join(', ');
  return sql<TextRow>(url, `SELECT ${select} FROM ${table} ORDER BY id`);
}

function show(value: unknown): string {
  if (value === undefined) return '(missing)';
  if (value === null) return 'NULL';
  const text =
    typeof value === 'string'
      ? value
      : JSON.stringify(value, (_, v: unknown) => (isLosslessNumber(v) ? `#${String(v)}` : v));
  return text.length > 120 ? `${text.slice(0, 120)}… (${text.length} chars)` : text;
}

export async function comparePostgres(
  modelUrl: string,
  modelTable: string,
  copyUrl: string,
  copyTable: string,
): Promise<Mismatch[]> {
  const model = await modelRows(modelUrl, modelTable);
  const copy = new Map((await modelRows(copyUrl, copyTable)).map((r) => [r['id'] as string, r]));
  const mismatches: Mismatch[] = [];
  for (const row of model) {
    const key = row['id'] as string;
    const got = copy.get(key);
    copy.delete(key);
    if (!got) {
      mismatches.push({ key, column: '(row)', expected: 'present', got: '(missing)' });
      continue;
    }
    for (const column of COLUMNS) {
      if (row[column] !== got[column])
        mismatches.push({ key, column, expected: show(row[column]), got: show(got[column]) });
    }
  }
  for (const key of copy.keys())
    mismatches.push({ key, column: '(row)', expected: '(absent)', got: 'present' });
  return mismatches;
}

/** A JSON number's value as sign, digits without leading/trailing zeros, and exponent: "1.50e3" → "15e2". */
export function canonicalNumber(text: string): string | undefined {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text.trim());
  if (!m) return undefined;
  const fraction = m[3] ?? '';
  let digits = `${m[2]}${fraction}`.replace(/^0+/, '');
  let exponent = Number(m[4] ?? 0) - fraction.length;
  if (digits === '') return '0';
  const trailing = /0+$/.exec(digits)?.[0].length ?? 0;
  digits = digits.slice(0, digits.length - trailing);
  exponent += trailing;
  return `${m[1]}${digits}e${exponent}`;
}

/** Deep equality of two lossless-parsed JSON values, numbers by exact value. */
function sameJson(a: unknown, b: unknown): boolean {
  if (isLosslessNumber(a) || isLosslessNumber(b)) {
    return (
      isLosslessNumber(a) && isLosslessNumber(b) && canonicalNumber(String(a)) === canonicalNumber(String(b))
    );
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]))
    );
  }
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return (
      ka.length === kb.length &&
      ka.every(
        (k, i) =>
          k === kb[i] && sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
      )
    );
  }
  return a === b;
}

const NON_FINITE = new Set(['NaN', 'Infinity', '-Infinity']);

/** A number value of the model's text, as lossless-json would parse its JSON number. */
function numberOf(text: string): unknown {
  return parse(text);
}

/** What the HTTP body carries for each model column (as a lossless-parsed JSON value). */
function expectedField(column: string, text: string | null): unknown {
  if (text === null) return null;
  switch (column) {
    case 'id':
    case 'num':
      return numberOf(text);
    case 'f8':
      return NON_FINITE.has(text) ? text : numberOf(text);
    case 'doc': // JSON null and SQL NULL are both null in a JSON body
    case 'ids':
    case 'tags':
      return parse(text);
    default:
      return text;
  }
}

/** Doubles are compared as doubles (the two sides may print the same double differently); -0 ≠ 0. */
function sameField(column: string, expected: unknown, got: unknown): boolean {
  if (column === 'f8' && isLosslessNumber(expected)) {
    return isLosslessNumber(got) && Object.is(Number(String(expected)), Number(String(got)));
  }
  return sameJson(expected, got);
}

export async function compareHttp(
  modelUrl: string,
  modelTable: string,
  records: Map<string, string>,
): Promise<Mismatch[]> {
  const model = await modelRows(modelUrl, modelTable, true);
  const left = new Map(records);
  const mismatches: Mismatch[] = [];
  for (const row of model) {
    const key = row['id'] as string;
    const raw = left.get(key);
    left.delete(key);
    if (raw === undefined) {
      mismatches.push({ key, column: '(record)', expected: 'present', got: '(missing)' });
      continue;
    }
    const got = parse(raw) as Record<string, unknown>;
    for (const column of COLUMNS) {
      const expected = expectedField(column, row[column] ?? null);
      if (!sameField(column, expected, got[column]))
        mismatches.push({ key, column, expected: show(expected), got: show(got[column]) });
    }
    for (const extra of Object.keys(got).filter((k) => !(COLUMNS as readonly string[]).includes(k)))
      mismatches.push({ key, column: extra, expected: '(no such field)', got: show(got[extra]) });
  }
  for (const key of left.keys())
    mismatches.push({ key, column: '(record)', expected: '(absent)', got: 'present' });
  return mismatches;
}
