// The destination table: its columns as PostgreSQL names their types, whether its key column is unique,
// and creating it (from the staged DuckDB column types) when it does not exist yet.
import type pg from 'pg';
import type { Mapping } from '../../crds/index.ts';
import { quoteIdent } from '../shared/sql.ts';
import type { ColumnInfo } from '../../core/connectors.ts';

export const ARCHIVED_AT = 'archived_at';

export interface TableInfo {
  /** Column name -> type as format_type() spells it (numeric(38,9), timestamp with time zone, text[], ...). */
  columns: Map<string, string>;
  /** Whether the key column has a unique index (ON CONFLICT needs one). */
  keyIsUnique: boolean;
}

export async function readTable(
  client: pg.PoolClient,
  schema: string,
  table: string,
  key: string,
): Promise<TableInfo | undefined> {
  const columns = await client.query<{ name: string; type: string }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [schema, table],
  );
  if (columns.rows.length === 0) return undefined;
  const unique = await client.query<{ unique: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_index i
         JOIN pg_class c ON c.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
        WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indnkeyatts = 1
          AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $3) AS unique`,
    [schema, table, key],
  );
  return {
    columns: new Map(columns.rows.map((r) => [r.name, r.type])),
    keyIsUnique: unique.rows[0]?.unique === true,
  };
}

const DUCK_TO_PG: [RegExp, (m: RegExpExecArray) => string][] = [
  [/^BOOLEAN$/, () => 'boolean'],
  [/^(TINYINT|SMALLINT|UTINYINT)$/, () => 'smallint'],
  [/^(INTEGER|USMALLINT)$/, () => 'integer'],
  [/^(BIGINT|UINTEGER)$/, () => 'bigint'],
  [/^(HUGEINT|UBIGINT|UHUGEINT|BIGNUM)$/, () => 'numeric'],
  [/^FLOAT$/, () => 'real'],
  [/^DOUBLE$/, () => 'double precision'],
  [/^DECIMAL\((\d+),(\d+)\)$/, (m) => `numeric(${m[1]},${m[2]})`],
  [/^UUID$/, () => 'uuid'],
  [/^DATE$/, () => 'date'],
  [/^TIME$/, () => 'time'],
  [/^TIME WITH TIME ZONE$/, () => 'time with time zone'],
  [/^TIMESTAMP WITH TIME ZONE$/, () => 'timestamp with time zone'],
  [/^TIMESTAMP(_S|_MS|_NS)?$/, () => 'timestamp'],
  [/^INTERVAL$/, () => 'interval'],
  [/^JSON$/, () => 'jsonb'],
  [/^BLOB$/, () => 'bytea'],
  [/^(STRUCT|MAP|UNION)\b/, () => 'jsonb'],
];

/** The PostgreSQL type for a staged DuckDB type; text for anything without a better match. */
export function pgTypeFor(duckType: string): string {
  const list = /^(.*)\[\]$/.exec(duckType);
  if (list?.[1] !== undefined) {
    const element = pgTypeFor(list[1]);
    return element === 'jsonb' ? 'jsonb' : `${element}[]`;
  }
  for (const [re, to] of DUCK_TO_PG) {
    const m = re.exec(duckType);
    if (m) return to(m);
  }
  return 'text';
}

const STATIC_TYPES: Record<Mapping['valueType'], string> = {
  string: 'text',
  number: 'numeric',
  boolean: 'boolean',
  json: 'jsonb',
};

/**
 * The top-level destination columns the mappings write, in order, with the types a new table gets; of
 * two mappings to one field, the later one's type.
 */
export function mappedColumns(mappings: Mapping[], columns: ColumnInfo[]): { name: string; type: string }[] {
  const types = new Map(columns.map((c) => [c.name, c.type]));
  const result = new Map<string, string>();
  for (const m of mappings) {
    const [top = m.to, ...rest] = m.to.split('.');
    let type: string;
    if (rest.length > 0) type = 'jsonb';
    else if (m.from !== undefined) type = pgTypeFor(types.get(m.from) ?? 'VARCHAR');
    else if (m.template !== undefined) type = 'text';
    else type = STATIC_TYPES[m.valueType] ?? 'text';
    // As the engine builds the fields (runner/fields.ts): a later mapping replaces an earlier one at the
    // same place (a nested one makes the field an object), which keeps the earlier one's position.
    result.set(top, type);
  }
  return [...result].map(([name, type]) => ({ name, type }));
}

export function createTableSql(
  schema: string,
  table: string,
  columns: { name: string; type: string }[],
  key: string,
  withArchivedAt: boolean,
): string {
  const defs = columns.map((c) => `${quoteIdent(c.name)} ${c.type}${c.name === key ? ' PRIMARY KEY' : ''}`);
  if (withArchivedAt && !columns.some((c) => c.name === ARCHIVED_AT))
    defs.push(`${quoteIdent(ARCHIVED_AT)} timestamp with time zone`);
  return `CREATE TABLE IF NOT EXISTS ${quoteIdent(schema)}.${quoteIdent(table)} (${defs.join(', ')})`;
}
