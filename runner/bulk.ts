import type { RowOperation } from '../core/connectors.ts';
import { ident, literal } from './duck.ts';
import { SNAPSHOT_KEY, staticValue, type SyncShape } from './mappings.ts';

// The bulk delivery path: DuckDB renders each row operation as one CSV line of plain scalar text (see
// BulkBatch in core/connectors.ts), so no JSON and no JavaScript object is built per row.

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
  // As JSON carries it: widened to a double first, non-finite values spelled as fields.ts spells them.
  if (t === 'FLOAT' || t === 'REAL' || t === 'DOUBLE') return doubleTextSql(`CAST(${expr} AS DOUBLE)`);
  if (VERBATIM_TYPES.test(t)) return `CAST(${expr} AS VARCHAR)`;
  return undefined;
}

function doubleTextSql(expr: string): string {
  return `CASE WHEN ${expr} IS NULL THEN NULL WHEN isfinite(${expr}) THEN CAST(${expr} AS VARCHAR) WHEN isnan(${expr}) THEN 'NaN' WHEN ${expr} > 0 THEN 'Infinity' ELSE '-Infinity' END`;
}

function quoted(textSql: string): string {
  // replace() builds a new string even when there is nothing to replace: only text with a quote needs it
  // (measured: a third of the time on text without quotes).
  return (
    `CASE WHEN (${textSql}) IS NULL THEN '' ` +
    `WHEN contains(${textSql}, '"') THEN concat('"', replace(${textSql}, '"', '""'), '"') ` +
    `ELSE concat('"', ${textSql}, '"') END`
  );
}

/** Text of a type that never holds a comma, quote or newline (nor is empty) goes unquoted: less to build. */
function field(textSql: string, type: string): string {
  return type.toUpperCase() === 'VARCHAR' ? quoted(textSql) : `coalesce(${textSql}, '')`;
}

function staticText(value: unknown): string | null | undefined {
  if (value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return undefined;
}

/** Where the line SQL reads from: the batch table's columns (see bulkRowsSql). */
const ROW = 'b';
const CHANGE = '__syncline_change';
const PREVIOUS_KEY = '__syncline_previous_key';

/** The CSV line SQL of a row still in the model, and of a removed row (delete, clear). */
export interface BulkLines {
  current: string;
  removed: string;
}

/** The line SQL an operation's rows take: only delete and clear are of rows that left the model. */
export function lineFor(lines: BulkLines, op: RowOperation): string {
  return op === 'delete' || op === 'clear' ? lines.removed : lines.current;
}

/**
 * SQL of one CSV line (with its newline) per row of the batch table (alias `b`), carrying `fields` in
 * order; undefined when a field cannot be rendered as scalar text (a template, a nested field, a
 * non-scalar column or static value, or a field no mapping writes).
 */
export function bulkLineSql(shape: SyncShape, primaryKey: string, fields: string[]): BulkLines | undefined {
  const types = new Map(shape.readColumns.map((c) => [c.name, c.type]));
  const pkType = types.get(primaryKey);
  if (pkType === undefined) return undefined;
  // The batch table's own columns must not be shadowed by model columns of the same name.
  const reserved = [CHANGE, PREVIOUS_KEY, SNAPSHOT_KEY];
  if ([...types.keys()].some((name) => reserved.includes(name) || /^rowid$/i.test(name))) return undefined;
  const previousKey = scalarTextSql(`TRY_CAST(${ROW}.${PREVIOUS_KEY} AS ${pkType})`, pkType);
  if (previousKey === undefined) return undefined;
  const current: string[] = [];
  const removed: string[] = [];
  for (const name of fields) {
    if (shape.mappings.some((m) => m.to.startsWith(`${name}.`))) return undefined;
    // A later mapping to the same field replaces an earlier one, as in the row-object path.
    const mapping = shape.mappings.findLast((m) => m.to === name);
    if (mapping === undefined || mapping.template !== undefined) return undefined;
    if (mapping.from !== undefined) {
      const type = types.get(mapping.from);
      const sql = type === undefined ? undefined : scalarTextSql(`${ROW}.${ident(mapping.from)}`, type);
      if (sql === undefined || type === undefined) return undefined;
      current.push(field(sql, type));
    } else {
      const text = staticText(staticValue(mapping));
      if (text === undefined) return undefined;
      current.push(text === null ? "''" : literal(`"${text.replaceAll('"', '""')}"`));
    }
    // Removed rows (delete, clear) carry their previous key in the key fields and nothing else; the key
    // text where the snapshot has no typed value (keys recorded before delivery).
    removed.push(
      shape.keyFields.includes(name) ? quoted(`coalesce(${previousKey}, ${ROW}.${SNAPSHOT_KEY})`) : "''",
    );
  }
  if (current.length === 0) return undefined;
  // One concat: a chain of || builds an intermediate string per step.
  const line = (values: string[]) => `concat(${values.join(", ',', ")}, chr(10))`;
  return { current: line(current), removed: line(removed) };
}

/**
 * The statement creating table `name` with every operation `op` of the diff and the model columns its
 * lines read. A new table's rowids run from 0 without gaps, and a rowid range reads only the row groups
 * that hold it: a batch is a range of rowids. (A model column named rowid would hide them: such Syncs use
 * the row-object path.)
 */
export function bulkRowsSql(name: string, shape: SyncShape, primaryKey: string, op: RowOperation): string {
  const columns = shape.readColumns.map((c) => `c.${ident(c.name)}`).join(', ');
  return (
    `CREATE OR REPLACE TABLE ${ident(name)} AS SELECT ` +
    `d.${SNAPSHOT_KEY}, d.change AS ${CHANGE}, d.previous_key AS ${PREVIOUS_KEY}, ${columns} ` +
    `FROM diff d LEFT JOIN valid_rows c ON c.${ident(primaryKey)} = d.current_key WHERE d.op = ${literal(op)}`
  );
}

/** Where batches are read from: a table whose rowids number its rows, and the SQL of a row's key text. */
export interface BulkSource {
  table: string;
  key: string;
}

/** The table bulkRowsSql made. */
export function bulkRowsSource(table: string): BulkSource {
  return { table, key: `${ROW}.${SNAPSHOT_KEY}` };
}

/**
 * The staged model itself, when every one of its rows gets the same operation (a first sync, or mode
 * all with nothing removed): no table of operations needs to be built.
 */
export function stagedRowsSource(table: string, primaryKey: string): BulkSource {
  return { table, key: `CAST(${ROW}.${ident(primaryKey)} AS VARCHAR)` };
}

/** Separates the keys of a batch in bulkBatchSql's `keys` (the ASCII record separator). */
export const KEY_SEPARATOR = '\x1e';

/**
 * One batch of `source`, rows [from, to): its CSV text as one BLOB of UTF-8 and its keys joined by
 * KEY_SEPARATOR in the same order (`separated` is false when a key itself holds one: then bulkKeysSql
 * gives them), so that JavaScript handles a few values per batch rather than two per row.
 */
export function bulkBatchSql(source: BulkSource, lineSql: string, from: number, to: number): string {
  return (
    `SELECT encode(string_agg(line, '' ORDER BY seq)) AS csv, string_agg(k, chr(30) ORDER BY seq) AS keys, ` +
    `NOT bool_or(contains(k, chr(30))) AS separated FROM (` +
    `SELECT ${ROW}.rowid AS seq, ${source.key} AS k, ${lineSql} AS line FROM ${ident(source.table)} ${ROW} ` +
    `WHERE ${ROW}.rowid >= ${from} AND ${ROW}.rowid < ${to})`
  );
}

/** The keys of one batch as a JSON array, in the order of bulkBatchSql. */
export function bulkKeysSql(source: BulkSource, from: number, to: number): string {
  return (
    `SELECT to_json(list(k ORDER BY seq)) AS keys FROM (SELECT ${ROW}.rowid AS seq, ${source.key} AS k ` +
    `FROM ${ident(source.table)} ${ROW} WHERE ${ROW}.rowid >= ${from} AND ${ROW}.rowid < ${to})`
  );
}
