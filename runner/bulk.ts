import type { RowOperation } from '../connectors/types.ts';
import { ident, literal } from './duck.ts';
import { SNAPSHOT_KEY, staticValue, type SyncShape } from './mappings.ts';

// The bulk delivery path: DuckDB renders each row operation as one CSV line of plain scalar text (see
// BulkBatch in connectors/types.ts), so no JSON and no JavaScript object is built per row.

const VERBATIM_TYPES =
  /^(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|DOUBLE|DATE|TIME|TIMESTAMP|TIMESTAMP_S|TIMESTAMP_MS|TIMESTAMP_NS|UUID|INTERVAL|DECIMAL\(\d+,\d+\))$/;

/**
 * SQL giving a value of DuckDB type `type` as plain scalar text: the same text the row-object path
 * delivers for it (fields.ts builds JSON of the same values). Undefined for types it does not carry
 * (lists, structs, maps, JSON, blobs, ...): those Syncs use the row-object path.
 */
export function scalarTextSql(expr: string, type: string): string | undefined {
  const t = type.toUpperCase();
  if (t === 'VARCHAR') return expr;
  if (t === 'TIMESTAMP WITH TIME ZONE' || t === 'TIMESTAMPTZ')
    return `strftime(${expr}, '%Y-%m-%dT%H:%M:%S.%fZ')`;
  // As JSON carries it: widened to a double first.
  if (t === 'FLOAT' || t === 'REAL') return `CAST(CAST(${expr} AS DOUBLE) AS VARCHAR)`;
  if (VERBATIM_TYPES.test(t)) return `CAST(${expr} AS VARCHAR)`;
  return undefined;
}

function quoted(textSql: string): string {
  return `CASE WHEN (${textSql}) IS NULL THEN '' ELSE concat('"', replace(${textSql}, '"', '""'), '"') END`;
}

function staticText(value: unknown): string | null | undefined {
  if (value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return undefined;
}

/**
 * SQL of one CSV line (with its newline) per row of `diff d LEFT JOIN valid_rows c`, carrying `fields` in
 * order; undefined when a field cannot be rendered as scalar text (a template, a nested field, a
 * non-scalar column or static value, or a field no mapping writes).
 */
export function bulkLineSql(shape: SyncShape, primaryKey: string, fields: string[]): string | undefined {
  const types = new Map(shape.readColumns.map((c) => [c.name, c.type]));
  const pkType = types.get(primaryKey);
  if (pkType === undefined) return undefined;
  const previousKey = scalarTextSql(`TRY_CAST(d.previous_key AS ${pkType})`, pkType);
  if (previousKey === undefined) return undefined;
  const values: string[] = [];
  for (const field of fields) {
    if (shape.mappings.some((m) => m.to.startsWith(`${field}.`))) return undefined;
    // A later mapping to the same field replaces an earlier one, as in the row-object path.
    const mapping = shape.mappings.findLast((m) => m.to === field);
    if (mapping === undefined || mapping.template !== undefined) return undefined;
    let current: string;
    if (mapping.from !== undefined) {
      const type = types.get(mapping.from);
      const sql = type === undefined ? undefined : scalarTextSql(`c.${ident(mapping.from)}`, type);
      if (sql === undefined) return undefined;
      current = quoted(sql);
    } else {
      const text = staticText(staticValue(mapping));
      if (text === undefined) return undefined;
      current = text === null ? "''" : literal(`"${text.replaceAll('"', '""')}"`);
    }
    // Removed rows (delete, clear) carry their previous key in the key fields and nothing else; the key
    // text where the snapshot has no typed value (keys recorded before delivery).
    const removed = shape.keyFields.includes(field)
      ? quoted(`coalesce(${previousKey}, d.${SNAPSHOT_KEY})`)
      : "''";
    values.push(`CASE WHEN d.change = 'removed' THEN ${removed} ELSE ${current} END`);
  }
  if (values.length === 0) return undefined;
  // One concat: a chain of || builds an intermediate string per step.
  return `concat(${values.join(", ',', ")}, chr(10))`;
}

/** The keys and CSV lines of every operation `op` of the diff, streamed by delivery. */
export function bulkOperationsQuery(lineSql: string, primaryKey: string, op: RowOperation): string {
  return (
    `SELECT d.${SNAPSHOT_KEY} AS k, ${lineSql} AS line ` +
    `FROM diff d LEFT JOIN valid_rows c ON c.${ident(primaryKey)} = d.current_key WHERE d.op = ${literal(op)}`
  );
}
