// JSON bodies of the http destination carry integers and decimals as exact JSON numbers. The engine
// hands decimals, and integers beyond 2^53, over as their exact text (a double would round them, and
// other destinations want the text); here the fields filled from such columns become numbers again,
// digit for digit. Inside JSON columns and lists the engine keeps numbers exact itself (RawJson).
import type { Mapping } from '../../crds/index.ts';
import { rawJson } from '../shared/values.ts';
import type { ColumnInfo } from '../../core/connectors.ts';

const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

const NUMBER_TYPES =
  /^(DECIMAL|NUMERIC|BIGINT|HUGEINT|UBIGINT|UHUGEINT|INT8|INT64|INT128|BIGNUM|VARINT)(\(|\[|$)/;

/** Decimal and wide integer columns, or PostgreSQL numeric kept as text (beyond DECIMAL(38) or unconstrained). */
function isNumber(column: ColumnInfo): boolean {
  const type = column.type.toUpperCase();
  if (NUMBER_TYPES.test(type)) return true;
  return /^numeric(\(.*\))?(\[\])?$/i.test(column.sourceType ?? '') && /^VARCHAR(\[\])?$/.test(type);
}

/** The field paths whose values may be number text, from the mappings and the staged column types. */
export function numberPaths(mappings: Mapping[], columns: ColumnInfo[]): string[][] {
  const numbers = new Set(columns.filter(isNumber).map((c) => c.name));
  return mappings.filter((m) => m.from !== undefined && numbers.has(m.from)).map((m) => m.to.split('.'));
}

function asNumber(value: unknown): unknown {
  if (typeof value === 'string') {
    const text = value.trim();
    // NaN and Infinity (PostgreSQL numeric has both) are no JSON numbers: they stay text.
    return JSON_NUMBER.test(text) ? rawJson(text) : value;
  }
  return Array.isArray(value) ? value.map(asNumber) : value;
}

/** A copy of `fields` with the number text at `paths` as exact JSON numbers; `fields` is not changed. */
export function withExactNumbers(
  fields: Record<string, unknown>,
  paths: string[][],
): Record<string, unknown> {
  if (paths.length === 0) return fields;
  const copy = { ...fields };
  for (const path of paths) {
    let node: Record<string, unknown> = copy;
    for (const part of path.slice(0, -1)) {
      const next = node[part];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) {
        node = {};
        break;
      }
      node[part] = { ...(next as Record<string, unknown>) };
      node = node[part] as Record<string, unknown>;
    }
    const last = path[path.length - 1] as string;
    if (last in node) node[last] = asNumber(node[last]);
  }
  return copy;
}
