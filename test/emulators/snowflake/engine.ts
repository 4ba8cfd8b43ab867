// The SQL side of the Snowflake emulator: Snowflake statements run on an embedded DuckDB after a few
// rewrites (Snowflake type names in DDL, PARSE_JSON, CURRENT_*(), HASH and HASH_AGG: functions.ts), and result columns are described
// with Snowflake's types and encoded as Snowflake's JSON rowsets encode them (every value a string:
// numbers as exact text, dates as days since the epoch, times and timestamps as seconds with the
// fraction, TIMESTAMP_TZ with its offset index, binary as hex, booleans as 1/0).
import { DuckDBInstance, type DuckDBConnection, type DuckDBType } from '@duckdb/node-api';
import { rewriteHashes } from './functions.ts';

/**
 * A request's bind values (its `bindings`, in order): one value each, or, in an array bind, one array of
 * values per placeholder (a row per index), which an INSERT ... VALUES (?, ...) inserts as many rows.
 */
export type Binds =
  { kind: 'values'; values: (string | null)[] } | { kind: 'arrays'; columns: (string | null)[][] };

/** Snowflake's DML results: the columns of counts a statement answers with, and its statementTypeId. */
const DML_RESULTS: Record<string, { id: number; columns: string[] }> = {
  INSERT: { id: 0x3100, columns: ['number of rows inserted'] },
  UPDATE: { id: 0x3200, columns: ['number of rows updated', 'number of multi-joined rows updated'] },
  DELETE: { id: 0x3300, columns: ['number of rows deleted'] },
  MERGE: {
    id: 0x3400,
    columns: ['number of rows inserted', 'number of rows updated', 'number of rows deleted'],
  },
};

export interface SnowflakeColumn {
  name: string;
  database: string;
  schema: string;
  table: string;
  type: string;
  precision: number | null;
  scale: number | null;
  length: number | null;
  byteLength: number | null;
  nullable: boolean;
  collation: null;
}

/** A Snowflake type as declared in DDL, remembered per table column (DuckDB cannot tell LTZ from TZ). */
interface DeclaredType {
  type: string;
  precision?: number;
  scale?: number;
}

/** Snowflake's SQL errors, with the codes and SQLSTATEs Snowflake returns. */
export class SnowflakeSqlError extends Error {
  readonly code: string;
  readonly sqlState: string;
  constructor(code: string, sqlState: string, message: string) {
    super(message);
    this.code = code;
    this.sqlState = sqlState;
  }
}

const TYPE_REWRITES: [RegExp, (m: RegExpExecArray) => { duck: string; declared: DeclaredType }][] = [
  [
    /^(?:NUMBER|NUMERIC|DECIMAL)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$/i,
    (m) => {
      const precision = Number(m[1]);
      const scale = Number(m[2] ?? 0);
      return { duck: `DECIMAL(${precision},${scale})`, declared: { type: 'fixed', precision, scale } };
    },
  ],
  [
    /^(?:NUMBER|NUMERIC|DECIMAL|INT|INTEGER|BIGINT|SMALLINT|TINYINT|BYTEINT)$/i,
    () => ({ duck: 'DECIMAL(38,0)', declared: { type: 'fixed', precision: 38, scale: 0 } }),
  ],
  [
    /^(?:FLOAT|FLOAT4|FLOAT8|DOUBLE|DOUBLE PRECISION|REAL)$/i,
    () => ({ duck: 'DOUBLE', declared: { type: 'real' } }),
  ],
  [
    /^(?:VARCHAR|STRING|TEXT|CHAR|CHARACTER|NCHAR|NVARCHAR)(?:\s*\(\s*\d+\s*\))?$/i,
    () => ({ duck: 'VARCHAR', declared: { type: 'text' } }),
  ],
  [/^(?:BINARY|VARBINARY)(?:\s*\(\s*\d+\s*\))?$/i, () => ({ duck: 'BLOB', declared: { type: 'binary' } })],
  [/^BOOLEAN$/i, () => ({ duck: 'BOOLEAN', declared: { type: 'boolean' } })],
  [/^DATE$/i, () => ({ duck: 'DATE', declared: { type: 'date' } })],
  [
    /^TIME(?:\s*\(\s*(\d)\s*\))?$/i,
    (m) => ({ duck: 'TIME', declared: { type: 'time', scale: Number(m[1] ?? 9) } }),
  ],
  [
    /^(?:TIMESTAMP_NTZ|DATETIME|TIMESTAMP)(?:\s*\(\s*(\d)\s*\))?$/i,
    (m) => ({ duck: 'TIMESTAMP_NS', declared: { type: 'timestamp_ntz', scale: Number(m[1] ?? 9) } }),
  ],
  [
    /^TIMESTAMP_LTZ(?:\s*\(\s*(\d)\s*\))?$/i,
    (m) => ({ duck: 'TIMESTAMPTZ', declared: { type: 'timestamp_ltz', scale: Number(m[1] ?? 9) } }),
  ],
  [
    /^TIMESTAMP_TZ(?:\s*\(\s*(\d)\s*\))?$/i,
    (m) => ({ duck: 'TIMESTAMPTZ', declared: { type: 'timestamp_tz', scale: Number(m[1] ?? 9) } }),
  ],
  [/^(?:VARIANT)$/i, () => ({ duck: 'JSON', declared: { type: 'variant' } })],
  [/^(?:OBJECT)$/i, () => ({ duck: 'JSON', declared: { type: 'object' } })],
  [/^(?:ARRAY)$/i, () => ({ duck: 'JSON', declared: { type: 'array' } })],
];

/** Split the inside of a CREATE TABLE's parentheses on top-level commas. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  if (current.trim() !== '') parts.push(current);
  return parts;
}

function unquote(identifier: string): string {
  const trimmed = identifier.trim();
  return trimmed.startsWith('"') ? trimmed.slice(1, -1).replaceAll('""', '"') : trimmed.toUpperCase();
}

export interface SessionContext {
  database?: string;
  schema?: string;
  warehouse?: string;
  role?: string;
  user: string;
}

export class SnowflakeEngine {
  readonly instance: DuckDBInstance;
  private readonly admin: DuckDBConnection;
  /** TABLE (upper case, last name part) -> COLUMN (upper case) -> declared type. */
  private readonly declared = new Map<string, Map<string, DeclaredType>>();
  private resultCounter = 0;

  private constructor(instance: DuckDBInstance, admin: DuckDBConnection) {
    this.instance = instance;
    this.admin = admin;
  }

  static async create(): Promise<SnowflakeEngine> {
    const instance = await DuckDBInstance.create(':memory:', { preserve_insertion_order: 'true' });
    const admin = await instance.connect();
    await admin.run("SET TimeZone = 'UTC'");
    await admin.run('CREATE SCHEMA IF NOT EXISTS memory.__results');
    return new SnowflakeEngine(instance, admin);
  }

  /** Create a database (a DuckDB catalog) with a PUBLIC schema. */
  async createDatabase(name: string): Promise<void> {
    await this.admin.run(`ATTACH ':memory:' AS "${name.toUpperCase()}"`);
    await this.admin.run(`CREATE SCHEMA IF NOT EXISTS "${name.toUpperCase()}"."PUBLIC"`);
  }

  async connect(session: SessionContext): Promise<DuckDBConnection> {
    const connection = await this.instance.connect();
    await connection.run("SET TimeZone = 'UTC'");
    if (session.database) {
      const target = session.schema
        ? `"${session.database.toUpperCase()}"."${session.schema.toUpperCase()}"`
        : `"${session.database.toUpperCase()}"`;
      await connection.run(`USE ${target}`).catch(() => undefined);
    }
    return connection;
  }

  /** Rewrite Snowflake DDL types to DuckDB's and remember the declared types of each column. */
  rewriteDdl(sql: string): string {
    const match =
      /^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+|TRANSIENT\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([^\s(]+)\s*\(([\s\S]*)\)\s*;?\s*$/i.exec(
        sql,
      );
    if (!match) return sql;
    const tableName = unquote((match[1] ?? '').split('.').at(-1) ?? '');
    const columns = new Map<string, DeclaredType>();
    const defs = splitTopLevel(match[2] ?? '').map((def) => {
      const col =
        /^\s*("(?:[^"]|"")+"|[A-Za-z_][\w$]*)\s+(.+?)(\s+(?:NOT\s+NULL|NULL|PRIMARY\s+KEY|DEFAULT\b.*|UNIQUE).*)?$/is.exec(
          def,
        );
      if (!col) return def;
      const typeText = (col[2] ?? '').trim();
      for (const [re, fn] of TYPE_REWRITES) {
        const m = re.exec(typeText);
        if (m) {
          const { duck, declared } = fn(m);
          columns.set(unquote(col[1] ?? ''), declared);
          return `${col[1]} ${duck}${col[3] ?? ''}`;
        }
      }
      return def;
    });
    this.declared.set(tableName, columns);
    return sql.replace(match[2] ?? '', defs.join(','));
  }

  rewrite(sql: string, session: SessionContext): string {
    const literal = (value: string | undefined) =>
      value === undefined ? 'NULL' : `'${value.replaceAll("'", "''")}'`;
    return rewriteHashes(this.rewriteDdl(sql))
      .replace(/\bCURRENT_WAREHOUSE\s*\(\s*\)/gi, literal(session.warehouse?.toUpperCase()))
      .replace(/\bCURRENT_DATABASE\s*\(\s*\)/gi, literal(session.database?.toUpperCase()))
      .replace(/\bCURRENT_SCHEMA\s*\(\s*\)/gi, literal(session.schema?.toUpperCase()))
      .replace(/\bCURRENT_ROLE\s*\(\s*\)/gi, literal(session.role?.toUpperCase() ?? 'PUBLIC'))
      .replace(/\bCURRENT_USER\s*\(\s*\)/gi, literal(session.user.toUpperCase()))
      .replace(/\bPARSE_JSON\s*\(/gi, 'json(')
      .replace(/\bBOOLOR_AGG\s*\(/gi, 'bool_or(')
      .replace(/\bTO_BINARY\s*\(\s*('[^']*')\s*,\s*'HEX'\s*\)/gi, 'unhex($1)');
  }

  /**
   * How many statements a request holds, counted by DuckDB's parser (Snowflake, too, counts the statements
   * between top-level semicolons); undefined when DuckDB cannot parse it, and then running it reports the
   * syntax error.
   */
  async statementCount(
    connection: DuckDBConnection,
    sql: string,
    session: SessionContext,
  ): Promise<number | undefined> {
    try {
      return (await connection.extractStatements(this.rewrite(sql, session))).count;
    } catch {
      return undefined;
    }
  }

  /** Run several statements in order, as a multi-statement request does (their own results are not kept). */
  async executeAll(connection: DuckDBConnection, sql: string, session: SessionContext): Promise<void> {
    try {
      await connection.run(this.rewrite(sql, session));
    } catch (error) {
      throw toSnowflakeError(error);
    }
  }

  /** Run one statement; a query's rows land in a result table the chunks are read from. */
  async execute(
    connection: DuckDBConnection,
    sql: string,
    session: SessionContext,
    binds?: Binds,
    /** The connection is in a DuckDB transaction that wrote: the result goes to its own temp catalog (a transaction writes one database). */
    inTransaction = false,
  ): Promise<{
    table?: string;
    columns: SnowflakeColumn[];
    total: number;
    statusText?: string;
    dml?: { id: number; columns: string[]; counts: string[] };
  }> {
    let rewritten = this.rewrite(sql, session)
      .trim()
      .replace(/;+\s*$/, '');
    const isQuery = /^\s*(SELECT|WITH|VALUES|FROM|\()/i.test(rewritten);
    let values: (string | null)[] = [];
    let bindTable: string | undefined;
    try {
      if (binds?.kind === 'values') values = binds.values;
      if (binds?.kind === 'arrays') {
        bindTable = `__binds_${++this.resultCounter}`;
        rewritten = await this.arrayBind(connection, rewritten, bindTable, binds.columns);
      }
      if (!isQuery) {
        const reader = await connection.runAndReadAll(rewritten, values.length > 0 ? values : undefined);
        const changed = reader.currentRowCount > 0 ? Number(reader.getRows()[0]?.[0] ?? 0) : 0;
        const kind = /^\s*(INSERT|UPDATE|DELETE|MERGE)\b/i.exec(rewritten)?.[1]?.toUpperCase();
        const dml = kind ? DML_RESULTS[kind] : undefined;
        if (dml) {
          const counts = dml.columns.map((_c, i) => String(i === 0 ? changed : 0));
          return { columns: [], total: 1, dml: { ...dml, counts } };
        }
        return {
          columns: [column('status', { type: 'text' })],
          total: 1,
          statusText: 'Statement executed successfully.',
        };
      }
      const table = `${inTransaction ? 'temp.main' : 'memory.__results'}.q${++this.resultCounter}`;
      const temp = inTransaction ? 'TEMP ' : '';
      await connection.run(
        `CREATE ${temp}TABLE ${table} AS ${rewritten}`,
        values.length > 0 ? values : undefined,
      );
      const describe = await connection.runAndReadAll(`SELECT * FROM ${table} LIMIT 0`);
      const tables = [...rewritten.matchAll(/\b(?:FROM|JOIN)\s+([^\s,()]+)/gi)].map((m) =>
        unquote((m[1] ?? '').split('.').at(-1) ?? ''),
      );
      const columns: SnowflakeColumn[] = [];
      for (let i = 0; i < describe.columnCount; i++) {
        const name = describe.columnName(i);
        const computed = typeOfDuck(describe.columnType(i));
        // A declared type only where DuckDB's cannot tell it (LTZ from TZ, VARIANT from OBJECT): an
        // expression of another type (a CAST) is of that type.
        const declared = tables
          .map((t) => this.declared.get(t)?.get(name.toUpperCase()))
          .find(
            (d) =>
              d !== undefined &&
              (family(d.type) === family(computed.type) ||
                (computed.type === 'text' && family(d.type) === 'semi')),
          );
        const quotedInSql = sql.includes(`"${name}"`);
        columns.push(column(quotedInSql ? name : name.toUpperCase(), declared ?? computed));
      }
      const count = await connection.runAndReadAll(`SELECT count(*) FROM ${table}`);
      return { table, columns, total: Number(count.getRows()[0]?.[0] ?? 0) };
    } catch (error) {
      throw toSnowflakeError(error);
    } finally {
      if (bindTable)
        await connection.run(`DROP TABLE IF EXISTS temp.main.${bindTable}`).catch(() => undefined);
    }
  }

  /**
   * An array bind: the values into a temporary table of text columns, and the statement's VALUES (?, ...)
   * turned into a SELECT of it (the INSERT casts each text to its column's type, as Snowflake does).
   */
  private async arrayBind(
    connection: DuckDBConnection,
    sql: string,
    table: string,
    columns: (string | null)[][],
  ): Promise<string> {
    const match = /\bVALUES\s*\(([^()]*)\)\s*$/i.exec(sql);
    const slots = match?.[1]?.split(',').map((s) => s.trim()) ?? [];
    if (!match || slots.length !== columns.length || slots.some((s) => s !== '?')) {
      throw new SnowflakeSqlError(
        '002049',
        '22000',
        'Array bind is supported only for INSERT ... VALUES (?, ...).',
      );
    }
    const names = columns.map((_c, i) => `c${i}`);
    await connection.run(`CREATE TEMP TABLE ${table} (${names.map((n) => `${n} VARCHAR`).join(', ')})`);
    const appender = await connection.createAppender(table, 'main', 'temp');
    const rows = columns[0]?.length ?? 0;
    for (let r = 0; r < rows; r++) {
      for (const values of columns) {
        const value = values[r];
        if (value === null || value === undefined) appender.appendNull();
        else appender.appendVarchar(value);
      }
      appender.endRow();
    }
    appender.closeSync();
    return `${sql.slice(0, match.index)}SELECT ${names.join(', ')} FROM temp.main.${table}`;
  }

  /** Rows [from, to) of a result, encoded as Snowflake's JSON rowset values. */
  async readRows(
    table: string,
    columns: SnowflakeColumn[],
    from: number,
    to: number,
    /** The session's connection, for a result in its temp catalog. */
    connection: DuckDBConnection = this.admin,
  ): Promise<(string | null)[][]> {
    const describe = await connection.runAndReadAll(`SELECT * FROM ${table} LIMIT 0`);
    const selects = columns.map((c, i) =>
      encodeSql(`"${describe.columnName(i).replaceAll('"', '""')}"`, c, describe.columnType(i)),
    );
    // Rows a transaction wrote are numbered from 2^62 until it commits: they are counted by position.
    const range = table.startsWith('temp.')
      ? `ORDER BY rowid LIMIT ${to - from} OFFSET ${from}`
      : `WHERE rowid >= ${from} AND rowid < ${to} ORDER BY rowid`;
    const reader = await connection.runAndReadAll(`SELECT ${selects.join(', ')} FROM ${table} ${range}`);
    const rows = reader.getRows();
    return rows.map((row) =>
      row.map((value, i) => (value === null ? null : finishValue(String(value), columns[i]!))),
    );
  }

  async drop(table: string): Promise<void> {
    await this.admin.run(`DROP TABLE IF EXISTS ${table}`);
  }

  close(): void {
    this.admin.closeSync();
    this.instance.closeSync();
  }
}

function column(name: string, declared: DeclaredType): SnowflakeColumn {
  const isText =
    declared.type === 'text' ||
    declared.type === 'binary' ||
    declared.type === 'variant' ||
    declared.type === 'object' ||
    declared.type === 'array';
  return {
    name,
    database: '',
    schema: '',
    table: '',
    type: declared.type,
    precision: declared.type === 'fixed' ? (declared.precision ?? 38) : null,
    scale:
      declared.type === 'fixed'
        ? (declared.scale ?? 0)
        : declared.type.startsWith('time')
          ? (declared.scale ?? 9)
          : null,
    length: isText ? 16777216 : null,
    byteLength: isText ? 16777216 : null,
    nullable: true,
    collation: null,
  };
}

/** Types DuckDB stores alike. */
function family(type: string): string {
  if (type.startsWith('timestamp')) return 'timestamp';
  if (type === 'variant' || type === 'object' || type === 'array') return 'semi';
  return type;
}

function typeOfDuck(type: DuckDBType): DeclaredType {
  const text = type.toString();
  const decimal = /^DECIMAL\((\d+),(\d+)\)$/.exec(text);
  if (decimal) return { type: 'fixed', precision: Number(decimal[1]), scale: Number(decimal[2]) };
  if (/^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT)$/.test(text))
    return { type: 'fixed', precision: 38, scale: 0 };
  if (/^(FLOAT|DOUBLE)$/.test(text)) return { type: 'real' };
  if (text === 'BOOLEAN') return { type: 'boolean' };
  if (text === 'DATE') return { type: 'date' };
  if (text.startsWith('TIME') && !text.startsWith('TIMESTAMP')) return { type: 'time', scale: 9 };
  if (text === 'TIMESTAMP WITH TIME ZONE') return { type: 'timestamp_ltz', scale: 9 };
  if (text.startsWith('TIMESTAMP')) return { type: 'timestamp_ntz', scale: 9 };
  if (text === 'BLOB') return { type: 'binary' };
  if (text === 'JSON' || text === 'VARIANT') return { type: 'variant' };
  if (text.endsWith('[]')) return { type: 'array' };
  if (text.startsWith('STRUCT') || text.startsWith('MAP')) return { type: 'object' };
  return { type: 'text' };
}

/** A DuckDB expression that yields the wire text of a column (finished by finishValue). */
function encodeSql(ref: string, col: SnowflakeColumn, duckType: DuckDBType): string {
  const text = duckType.toString();
  switch (col.type) {
    case 'boolean':
      return `CASE WHEN ${ref} IS NULL THEN NULL WHEN ${ref} THEN '1' ELSE '0' END`;
    case 'date':
      return `CAST(datediff('day', DATE '1970-01-01', ${ref}) AS VARCHAR)`;
    case 'time':
      return `CAST((hour(${ref}) * 3600 + minute(${ref}) * 60)::BIGINT * 1000000000 + microsecond(${ref})::BIGINT * 1000 AS VARCHAR)`;
    case 'timestamp_ntz':
    case 'timestamp_ltz':
    case 'timestamp_tz':
      return `CAST(epoch_ns(${ref}) AS VARCHAR)`;
    case 'binary':
      return `hex(${ref})`;
    case 'variant':
    case 'object':
    case 'array':
      return text === 'JSON' || text === 'VARCHAR'
        ? `CAST(${ref} AS VARCHAR)`
        : `CAST(to_json(${ref}) AS VARCHAR)`;
    default:
      return `CAST(${ref} AS VARCHAR)`;
  }
}

/** Nanoseconds as Snowflake's decimal number of seconds ("-0.500000000"), with `scale` fraction digits. */
function secondsText(nanosText: string, scale: number): string {
  const nanos = BigInt(nanosText);
  const negative = nanos < 0n;
  const magnitude = negative ? -nanos : nanos;
  const billion = 1_000_000_000n;
  const sign = negative ? '-' : '';
  const whole = `${sign}${magnitude / billion}`;
  if (scale === 0) return whole;
  return `${whole}.${(magnitude % billion).toString().padStart(9, '0').slice(0, scale)}`;
}

function finishValue(value: string, col: SnowflakeColumn): string {
  switch (col.type) {
    case 'time':
    case 'timestamp_ntz':
    case 'timestamp_ltz':
      return secondsText(value, col.scale ?? 9);
    case 'timestamp_tz':
      // The session time zone is UTC: offset index 1440 (offset minutes + 1440).
      return `${secondsText(value, col.scale ?? 9)} 1440`;
    default:
      return value;
  }
}

/** DuckDB errors as the Snowflake errors a real account would return for the same mistake. */
export function toSnowflakeError(error: unknown): SnowflakeSqlError {
  if (error instanceof SnowflakeSqlError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const firstLine = message.split('\n')[0] ?? message;
  if (/^Parser Error/i.test(firstLine)) {
    const near = /at or near "([^"]*)"/.exec(firstLine)?.[1] ?? '';
    return new SnowflakeSqlError(
      '001003',
      '42000',
      `SQL compilation error:\nsyntax error line 1 at position 0 unexpected '${near}'.`,
    );
  }
  const missingTable = /Table with name (\S+) does not exist/i.exec(firstLine);
  if (missingTable) {
    return new SnowflakeSqlError(
      '002003',
      '42S02',
      `SQL compilation error:\nObject '${(missingTable[1] ?? '').toUpperCase()}' does not exist or not authorized.`,
    );
  }
  const missingColumn = /Referenced column "?([^"\s]+)"? not found/i.exec(firstLine);
  if (missingColumn) {
    return new SnowflakeSqlError(
      '000904',
      '42000',
      `SQL compilation error: error line 1 at position 7\ninvalid identifier '${(missingColumn[1] ?? '').toUpperCase()}'`,
    );
  }
  if (/^Conversion Error|^Invalid Input Error/i.test(firstLine)) {
    return new SnowflakeSqlError('100038', '22018', firstLine.replace(/^[A-Za-z ]+Error: /, ''));
  }
  if (/INTERRUPT/i.test(firstLine)) return new SnowflakeSqlError('000604', '57014', 'SQL execution canceled');
  return new SnowflakeSqlError(
    '002140',
    '42601',
    `SQL compilation error:\n${firstLine.replace(/^[A-Za-z ]+Error: /, '')}`,
  );
}
