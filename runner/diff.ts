import type { DuckDBConnection } from '@duckdb/node-api';
import type { RowOperation, SyncMode } from '../crds/index.ts';
import { ident, literal, queryAll, toCount } from './duck.ts';
import { fieldsSql, idempotencyKeySql } from './fields.ts';
import { SNAPSHOT_KEY, SNAPSHOT_STALE, type ComparedItem, type SyncShape } from './mappings.ts';

/** The previous snapshot as this run sees it: its file on local disk and the types it was written with. */
export interface PreviousSnapshot {
  file: string;
  /** Type of each compared value when it was committed (from the manifest). */
  types: Map<string, string>;
  rowCount: number;
}

export interface DiffOptions {
  shape: SyncShape;
  primaryKey: string;
  mode: SyncMode;
  deleteBehavior: 'ignore' | 'clear' | 'delete';
  archiveBehavior: 'archive' | 'delete';
  /** Undefined for a first run, or when the previous snapshot must not be used (primary key changed). */
  previous: PreviousSnapshot | undefined;
  /** Treat every row still in the model as changed. */
  resendAll: boolean;
}

export interface DiffResult {
  added: number;
  changed: number;
  removed: number;
  /** Planned row operations by kind. */
  operations: Partial<Record<RowOperation, number>>;
  totalOperations: number;
  /** Deletes and clears caused by rows leaving the model: what the safety rail weighs. */
  removalDeletes: number;
  previousRows: number;
  /** Columns of the `prev` view and their types as read back from Parquet. */
  previousColumns: Map<string, string>;
}

/** SQL reading one compared value of a previous-snapshot row (alias `p`) as the type it has now. */
export function previousValueSql(item: ComparedItem, previousColumns: Map<string, string>): string {
  const stored = previousColumns.get(item.name);
  if (stored === undefined) return `CAST(NULL AS ${item.type})`;
  if (stored === item.type) return `p.${ident(item.name)}`;
  return `TRY_CAST(p.${ident(item.name)} AS ${item.type})`;
}

function changedCondition(options: DiffOptions, previousColumns: Map<string, string>): string {
  if (options.resendAll) return 'TRUE';
  const terms = [`coalesce(p.${ident(SNAPSHOT_STALE)}, FALSE)`];
  for (const item of options.shape.compared) {
    const storedType = options.previous?.types.get(item.name);
    if (!previousColumns.has(item.name)) {
      // Never sent: counts as null, so only rows with a value are resent.
      terms.push(`(${item.sql}) IS NOT NULL`);
    } else if (storedType !== undefined && storedType !== item.type) {
      // A changed type is a change ('1' is not 1), even where the values compare equal.
      return 'TRUE';
    } else {
      terms.push(`(${item.sql}) IS DISTINCT FROM ${previousValueSql(item, previousColumns)}`);
    }
  }
  return terms.join(' OR ');
}

function operationSql(options: DiffOptions): string {
  const removal = options.deleteBehavior === 'ignore' ? 'NULL' : literal(options.deleteBehavior);
  switch (options.mode) {
    case 'upsert':
      return `CASE WHEN change = 'removed' THEN ${removal} ELSE 'upsert' END`;
    case 'update':
      return `CASE WHEN change = 'removed' THEN ${removal} ELSE 'update' END`;
    case 'insert':
      return `CASE WHEN change = 'removed' THEN ${removal} WHEN change = 'added' THEN 'insert' END`;
    case 'all':
      return `CASE WHEN change = 'removed' THEN 'delete' ELSE 'upsert' END`;
    case 'archive':
      return `CASE WHEN change = 'removed' THEN NULL ELSE ${literal(options.archiveBehavior)} END`;
  }
}

/**
 * Compare the model (view `valid_rows`) with the previous snapshot by primary key, entirely in DuckDB:
 * creates view `cur` (key text and the columns delivery reads), view `prev`, and table `diff` with one row
 * per key that is added, changed or removed (and, for modes all and archive, unchanged), with the row
 * operation it gets.
 */
export async function computeDiff(conn: DuckDBConnection, options: DiffOptions): Promise<DiffResult> {
  const { shape, primaryKey } = options;
  const columns = shape.readColumns.map((c) => ident(c.name)).join(', ');
  await conn.run(
    `CREATE OR REPLACE VIEW cur AS SELECT CAST(${ident(primaryKey)} AS VARCHAR) AS ${SNAPSHOT_KEY}, ${columns} FROM valid_rows`,
  );
  if (options.previous) {
    // Loaded into a table rather than read in place: joins against a table can spill to disk under the
    // memory limit, while joins against a Parquet scan run out of memory first.
    await conn.run(
      `CREATE OR REPLACE TABLE prev AS SELECT * FROM read_parquet(${literal(options.previous.file)})`,
    );
  } else {
    await conn.run(`CREATE OR REPLACE TABLE prev (${SNAPSHOT_KEY} VARCHAR, ${SNAPSHOT_STALE} BOOLEAN)`);
  }
  const described = await queryAll(conn, 'DESCRIBE prev');
  const previousColumns = new Map(described.map((r) => [String(r['column_name']), String(r['column_type'])]));

  const keepUnchanged = options.mode === 'all' || options.mode === 'archive';
  const k = SNAPSHOT_KEY;
  const pk = ident(primaryKey);
  const pkType = shape.readColumns.find((c) => c.name === primaryKey)?.type;
  // Join on the typed key when the snapshot has it with the same type (much faster than text); the key
  // text is only built for the rows that differ.
  const typedJoin =
    pkType !== undefined &&
    previousColumns.get(primaryKey) === pkType &&
    (options.previous?.types.get(primaryKey) ?? pkType) === pkType;
  const join = typedJoin ? `c.${pk} = p.${pk}` : `CAST(c.${pk} AS VARCHAR) = p.${k}`;
  // A key the model now holds more than once (left out with invalidPrimaryKeys: skip) is 'held': it has
  // not left the model, so it is neither deleted nor cleared, and its snapshot row is carried over.
  // The previous key value of a removed row (as last delivered) is kept, so that delivery reads the diff
  // and the model only.
  const previousKey = previousColumns.has(primaryKey) ? `p.${pk}` : 'NULL';
  await conn.run(`
    CREATE OR REPLACE TABLE diff AS
    SELECT coalesce(CAST(current_key AS VARCHAR), previous_text_key) AS ${k}, change, ${operationSql(options)} AS op,
      current_key, CASE WHEN change = 'removed' THEN previous_key END AS previous_key
    FROM (
      SELECT c.${pk} AS current_key, p.${k} AS previous_text_key, ${previousKey} AS previous_key,
        CASE WHEN p.${k} IS NULL THEN 'added'
             WHEN c.${pk} IS NULL AND p.${k} IN (SELECT CAST(k AS VARCHAR) FROM duplicate_keys) THEN 'held'
             WHEN c.${pk} IS NULL THEN 'removed'
             WHEN ${changedCondition(options, previousColumns)} THEN 'changed'
             ELSE 'same' END AS change
      FROM (SELECT ${columns} FROM valid_rows) c FULL OUTER JOIN prev p ON ${join}
    ) ${keepUnchanged ? "WHERE change <> 'held'" : "WHERE change NOT IN ('same', 'held')"}`);

  const groups = await queryAll(conn, 'SELECT change, op, count(*) AS n FROM diff GROUP BY ALL');
  const result: DiffResult = {
    added: 0,
    changed: 0,
    removed: 0,
    operations: {},
    totalOperations: 0,
    removalDeletes: 0,
    previousRows: options.previous?.rowCount ?? 0,
    previousColumns,
  };
  for (const g of groups) {
    const n = toCount(g['n']);
    const change = g['change'] as string;
    const op = g['op'] as RowOperation | null;
    if (change === 'added') result.added += n;
    else if (change === 'changed') result.changed += n;
    else if (change === 'removed') result.removed += n;
    if (op !== null) {
      result.operations[op] = (result.operations[op] ?? 0) + n;
      result.totalOperations += n;
      if (change === 'removed' && (op === 'delete' || op === 'clear')) result.removalDeletes += n;
    }
  }
  return result;
}

/**
 * The row operations of the diff, one JSON text per row shaped as the RowChange a destination receives
 * (built in DuckDB: fields, and the idempotency key), plus the row's columns and kind of change when
 * Liquid templates must be rendered in JavaScript.
 */
export function operationsQuery(options: {
  shape: SyncShape;
  primaryKey: string;
  syncId: string;
  where?: string;
  limit?: number;
}): string {
  const k = SNAPSHOT_KEY;
  const sql = fieldsSql(options.shape, options.primaryKey, 'd.previous_key');
  const fields =
    `CASE WHEN d.change <> 'removed' THEN ${sql.fields} ` +
    `WHEN d.op = 'clear' THEN ${sql.removal.clear} ELSE ${sql.removal.delete} END`;
  const change = sql.row
    ? `json_object('operation', op, 'key', ${k}, 'fields', fields, 'change', change, 'row', row_json)`
    : `json_object('operation', op, 'key', ${k}, 'fields', fields, 'idempotencyKey', ${idempotencyKeySql(options.syncId, k, 'op', 'fields')})`;
  return (
    `SELECT CAST(${change} AS VARCHAR) AS change_json FROM (` +
    `SELECT d.op, d.${k}, d.change, ${fields} AS fields${sql.row ? `, ${sql.row} AS row_json` : ''} ` +
    `FROM diff d LEFT JOIN valid_rows c ON c.${ident(options.primaryKey)} = d.current_key ` +
    `WHERE d.op IS NOT NULL${options.where ? ` AND (${options.where})` : ''}` +
    (options.limit === undefined ? '' : ` LIMIT ${options.limit}`) +
    ')'
  );
}
