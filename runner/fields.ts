import { hash } from 'node:crypto';
import { JSON_NULL, parseDuckJson } from '../connectors/shared/values.ts';
import type { RowChange, RowOperation } from '../core/connectors.ts';
import { ident, literal } from './duck.ts';
import { liquid, staticValue, type SyncShape } from './mappings.ts';

// Destination fields are built as JSON inside DuckDB (in parallel, without a JavaScript object per
// value); JavaScript only parses each row's JSON text, and renders Liquid templates when there are any.

const MAX_SAFE = '9007199254740991';

/**
 * SQL turning a value of DuckDB type `type` into the JSON a field carries: integers that fit a JS number
 * as numbers (larger ones as exact strings), decimals as exact strings, timestamps with a time zone as
 * ISO 8601 (UTC), JSON columns as JSON, non-finite floats as strings, everything else as DuckDB's to_json.
 */
export function jsonValueSql(expr: string, type: string): string {
  const t = type.toUpperCase();
  if (/^(BIGINT|HUGEINT|UBIGINT|UHUGEINT|INT8|INT64|INT128|BIGNUM|VARINT)$/.test(t)) {
    return `CASE WHEN ${expr} BETWEEN -${MAX_SAFE} AND ${MAX_SAFE} THEN to_json(${expr}) ELSE to_json(CAST(${expr} AS VARCHAR)) END`;
  }
  if (/^(DECIMAL|NUMERIC)/.test(t)) return `to_json(CAST(${expr} AS VARCHAR))`;
  if (/^(DOUBLE|FLOAT|REAL|FLOAT4|FLOAT8)$/.test(t)) {
    // As JavaScript and PostgreSQL spell them (DuckDB's VARCHAR says inf/nan).
    return `CASE WHEN ${expr} IS NULL THEN NULL WHEN isfinite(${expr}) THEN to_json(${expr}) WHEN isnan(${expr}) THEN to_json('NaN') WHEN ${expr} > 0 THEN to_json('Infinity') ELSE to_json('-Infinity') END`;
  }
  if (t === 'TIMESTAMP WITH TIME ZONE' || t === 'TIMESTAMPTZ')
    return `to_json(strftime(${expr}, '%Y-%m-%dT%H:%M:%S.%fZ'))`;
  if (t === 'JSON') return `CAST(${expr} AS JSON)`;
  return `to_json(${expr})`;
}

/** JSON columns, lists, arrays, structs, maps and unions: values that hold JSON of their own. */
function isNested(type: string): boolean {
  return /^(JSON|STRUCT\(|MAP\(|UNION\()|\[\d*\]$/i.test(type.trim());
}

/**
 * The JSON a field carries, as fieldsSql builds it: a nested value (see isNested) travels as a JSON string
 * of its JSON text, because DuckDB's json_object parses the JSON it embeds and rounds every number a
 * double cannot hold (123456789012345678901234567890, 0.1000000000000000000001). changeBuilder parses
 * that text back, keeping every number exact.
 */
function fieldValueSql(expr: string, type: string): string {
  const json = jsonValueSql(expr, type);
  return isNested(type) ? `to_json(CAST(${json} AS VARCHAR))` : json;
}

type Node = { leaf: string } | { children: Map<string, Node> };

/**
 * A json_object(...) expression for the mappings, with dotted targets as nested objects. `leafSql` gives
 * each mapping's value (undefined leaves the field out). A later mapping replaces an earlier one at the
 * same place, as assigning the fields one after the other would.
 */
function objectSql(shape: SyncShape, leafSql: (index: number) => string | undefined): string {
  const root: Node = { children: new Map() };
  shape.mappings.forEach((m, index) => {
    const sql = leafSql(index);
    if (sql === undefined) return;
    const parts = m.to.split('.');
    let node = root as { children: Map<string, Node> };
    for (const part of parts.slice(0, -1)) {
      const next = node.children.get(part);
      if (next && 'children' in next) node = next;
      else {
        const created: Node = { children: new Map() };
        node.children.set(part, created);
        node = created;
      }
    }
    node.children.set(parts[parts.length - 1] as string, { leaf: sql });
  });
  const render = (node: Node): string =>
    'leaf' in node
      ? node.leaf
      : `json_object(${[...node.children].map(([k, v]) => `${literal(k)}, ${render(v)}`).join(', ')})`;
  return render(root);
}

export interface FieldsSql {
  /** JSON text of the fields of a row still in the model (alias `c`). */
  fields: string;
  /** JSON text of the fields of a removed row, for `delete` and for `clear`. */
  removal: { delete: string; clear: string };
  /** JSON text of the row's columns, for templates; undefined when no mapping is a template. */
  row: string | undefined;
  /** JSON text of the context columns (SyncShape.contextColumns); undefined when there are none. */
  context: string | undefined;
}

export function fieldsSql(shape: SyncShape, primaryKey: string, previousKeyExpr: string): FieldsSql {
  const types = new Map(shape.readColumns.map((c) => [c.name, c.type]));
  const pkType = types.get(primaryKey) ?? 'VARCHAR';
  const fields = objectSql(shape, (i) => {
    const m = shape.mappings[i]!;
    if (m.from !== undefined) return fieldValueSql(`c.${ident(m.from)}`, types.get(m.from) ?? 'VARCHAR');
    if (m.template !== undefined) return 'CAST(NULL AS JSON)'; // rendered in JavaScript, in this position
    return `json(${literal(JSON.stringify(staticValue(m)))})`;
  });
  const previousKey = fieldValueSql(`TRY_CAST(${previousKeyExpr} AS ${pkType})`, pkType);
  const isKey = (i: number) => shape.keyFields.includes(shape.mappings[i]!.to);
  const removal = {
    delete: objectSql(shape, (i) => (isKey(i) ? previousKey : undefined)),
    clear: objectSql(shape, (i) => (isKey(i) ? previousKey : 'CAST(NULL AS JSON)')),
  };
  const row =
    shape.templates.size === 0
      ? undefined
      : `json_object(${shape.readColumns.map((col) => `${literal(col.name)}, ${jsonValueSql(`c.${ident(col.name)}`, col.type)}`).join(', ')})`;
  const context =
    shape.contextColumns.length === 0
      ? undefined
      : `json_object(${shape.contextColumns.map((col) => `${literal(col.name)}, ${jsonValueSql(`c.${ident(col.name)}`, col.type)}`).join(', ')})`;
  return { fields, removal, row, context };
}

/**
 * Stable across retries of one change and unique across changes: the Sync, the key, the operation, the
 * values, and the epoch — the run that first planned this change (see pending.ts). A value changed A→B→A
 * is three changes with three epochs, so an API that honours idempotency keys applies each; a change
 * retried by a later run after a crash keeps its epoch, so such an API applies it once.
 */
export function idempotencyKey(
  syncId: string,
  key: string,
  operation: RowOperation,
  fieldsJson: string,
  epoch: string,
): string {
  return hash('sha256', `${syncId}\0${key}\0${operation}\0${fieldsJson}\0${epoch}`, 'hex').slice(0, 40);
}

/** The same key computed by DuckDB, for rows without templates. */
export function idempotencyKeySql(
  syncId: string,
  keyExpr: string,
  opExpr: string,
  fieldsJsonExpr: string,
  epochExpr: string,
): string {
  return `left(sha256(${literal(syncId)} || chr(0) || ${keyExpr} || chr(0) || ${opExpr} || chr(0) || CAST(${fieldsJsonExpr} AS VARCHAR) || chr(0) || ${epochExpr}), 40)`;
}

function setPath(target: Record<string, unknown>, parts: readonly string[], value: unknown): void {
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next === 'object' && next !== null && !Array.isArray(next))
      node = next as Record<string, unknown>;
    else {
      const created: Record<string, unknown> = {};
      node[part] = created;
      node = created;
    }
  }
  node[parts[parts.length - 1] as string] = value;
}

/** The field paths that carry a nested value as JSON text (see fieldValueSql). */
function nestedPaths(shape: SyncShape): string[][] {
  const types = new Map(shape.readColumns.map((c) => [c.name, c.type]));
  return shape.mappings
    .filter((m) => m.from !== undefined && isNested(types.get(m.from) ?? 'VARCHAR'))
    .map((m) => m.to.split('.'));
}

/**
 * Nested values back from their JSON text, every number exact (RawJson where a double would round it). A
 * JSON column's JSON null comes back as JSON_NULL, so that it stays apart from SQL NULL (JavaScript null).
 */
function restoreNested(fields: Record<string, unknown>, paths: string[][]): void {
  for (const path of paths) {
    let node: unknown = fields;
    for (const part of path.slice(0, -1)) node = (node as Record<string, unknown> | undefined)?.[part];
    if (typeof node !== 'object' || node === null) continue;
    const holder = node as Record<string, unknown>;
    const last = path[path.length - 1] as string;
    const text = holder[last];
    if (typeof text === 'string') holder[last] = text === 'null' ? JSON_NULL : parseDuckJson(text);
  }
}

/**
 * Turns one row of `operationsQuery` (JSON text) into the change a destination receives, rendering the
 * Liquid templates when the Sync has any.
 */
export function changeBuilder(shape: SyncShape, syncId: string): (json: string) => RowChange {
  const build = parsedChangeBuilder(shape, syncId);
  const nested = nestedPaths(shape);
  return (json) => {
    const change = build(json);
    if (nested.length > 0) restoreNested(change.fields, nested);
    // A key the destination has no record id for yet (or a destination without ids).
    if (change.recordId === null) delete change.recordId;
    if (change.context === null) delete change.context;
    return change;
  };
}

/** The change as operationsQuery built it, templates rendered; nested values still JSON text. */
function parsedChangeBuilder(shape: SyncShape, syncId: string): (json: string) => RowChange {
  const templates = shape.mappings
    .filter((m) => m.template !== undefined)
    .map((m) => ({ path: m.to.split('.'), template: shape.templates.get(m.to) ?? [] }));
  if (templates.length === 0) return (json) => JSON.parse(json) as RowChange;
  return (json) => {
    // Liquid reads the row as doubles, as before; only DuckDB's bare NaN/Infinity need care.
    const parsed = parseDuckJson(json, JSON.parse) as Omit<RowChange, 'idempotencyKey'> & {
      change: string;
      row: Record<string, unknown>;
      epoch: string;
    };
    const { operation, key, fields, change, row, epoch, recordId, context } = parsed;
    if (change !== 'removed')
      for (const t of templates) setPath(fields, t.path, liquid.renderSync(t.template, { row }));
    return {
      operation,
      key,
      fields,
      idempotencyKey: idempotencyKey(syncId, key, operation, JSON.stringify(fields), epoch),
      ...(recordId ? { recordId } : {}),
      ...(context ? { context } : {}),
    };
  };
}
