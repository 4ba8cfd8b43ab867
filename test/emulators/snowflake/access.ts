// Access control of the emulator: a user may be given only some privileges (as a role with a few GRANTs
// would have), and a statement that needs one it lacks fails as Snowflake fails it — 002003 when the
// role cannot see the schema at all (no USAGE), 003001 when it sees it but may not do that. What each
// statement needs follows Snowflake's access control documentation: CREATE SCHEMA on the database,
// CREATE TABLE on the schema, SELECT / INSERT / UPDATE / DELETE on its tables (here granted per schema,
// as GRANT ... ON ALL TABLES IN SCHEMA does), ownership (held by whoever may create tables there) to drop.
import { SnowflakeSqlError } from './engine.ts';

export type SchemaPrivilege = 'USAGE' | 'CREATE TABLE' | 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';

/** A limited user's privileges; a user without grants may do anything. Names upper case. */
export interface Grants {
  /** Privileges on the session's database: CREATE SCHEMA. */
  database: 'CREATE SCHEMA'[];
  /** By schema name: the privileges on it and its tables. */
  schemas: Record<string, SchemaPrivilege[]>;
}

const IDENT = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)`;
const NAME = String.raw`(${IDENT}(?:\s*\.\s*${IDENT}){0,2})`;

function part(identifier: string): string {
  const t = identifier.trim();
  return t.startsWith('"') ? t.slice(1, -1).replaceAll('""', '"') : t.toUpperCase();
}

/** The schema and object of a possibly qualified name (the session's schema when unqualified). */
function resolve(name: string, sessionSchema: string | undefined): { schema: string; object: string } {
  const parts = [...name.matchAll(new RegExp(IDENT, 'g'))].map((m) => part(m[0]));
  const object = parts.at(-1) ?? '';
  const schema = parts.length >= 2 ? (parts.at(-2) ?? '') : (sessionSchema ?? 'PUBLIC').toUpperCase();
  return { schema, object };
}

function denied(kind: 'schema' | 'table' | 'database', name: string): SnowflakeSqlError {
  return new SnowflakeSqlError(
    '003001',
    '42501',
    `SQL access control error:\nInsufficient privileges to operate on ${kind} '${name}'`,
  );
}

function unseen(schema: string): SnowflakeSqlError {
  return new SnowflakeSqlError(
    '002003',
    '02000',
    `SQL compilation error:\nSchema '${schema}' does not exist or not authorized.`,
  );
}

/** Fail as Snowflake would when `grants` do not allow `sql`. */
export function checkAccess(
  sql: string,
  grants: Grants | undefined,
  session: { database?: string; schema?: string },
): void {
  if (!grants) return;
  const text = sql.replace(/'(?:[^']|'')*'/g, "''");
  const database = (session.database ?? '').toUpperCase();
  const need = (name: string, privilege: SchemaPrivilege, kind: 'schema' | 'table') => {
    const { schema, object } = resolve(name, session.schema);
    if (schema === 'INFORMATION_SCHEMA') return;
    const held = grants.schemas[schema];
    if (!held?.includes('USAGE')) throw unseen(schema);
    if (privilege !== 'USAGE' && !held.includes(privilege))
      throw denied(kind, kind === 'table' ? object : schema);
  };
  const createSchema = new RegExp(
    String.raw`^\s*CREATE\s+SCHEMA\s+(?:IF\s+NOT\s+EXISTS\s+)?${NAME}`,
    'i',
  ).exec(text);
  if (createSchema) {
    if (!grants.database.includes('CREATE SCHEMA')) throw denied('database', database);
    return;
  }
  const createTable = new RegExp(
    String.raw`^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+|TRANSIENT\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?${NAME}`,
    'i',
  ).exec(text);
  if (createTable) need(createTable[1] ?? '', 'CREATE TABLE', 'schema');
  const drop = new RegExp(String.raw`^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?${NAME}`, 'i').exec(text);
  if (drop) need(drop[1] ?? '', 'CREATE TABLE', 'schema');
  const write = new RegExp(
    String.raw`^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO|TRUNCATE\s+(?:TABLE\s+)?)\s*${NAME}`,
    'i',
  ).exec(text);
  if (write) {
    const verb = (write[1] ?? '').toUpperCase();
    const target = write[2] ?? '';
    if (verb.startsWith('INSERT')) need(target, 'INSERT', 'table');
    if (verb.startsWith('UPDATE')) need(target, 'UPDATE', 'table');
    if (verb.startsWith('DELETE') || verb.startsWith('TRUNCATE')) need(target, 'DELETE', 'table');
    if (verb.startsWith('MERGE')) {
      if (/\bTHEN\s+INSERT\b/i.test(text)) need(target, 'INSERT', 'table');
      if (/\bTHEN\s+UPDATE\b/i.test(text)) need(target, 'UPDATE', 'table');
      if (/\bTHEN\s+DELETE\b/i.test(text)) need(target, 'DELETE', 'table');
    }
  }
  // The target of DELETE FROM is written, not read.
  const writeEnd = write ? write.index + write[0].length : -1;
  for (const read of text.matchAll(
    new RegExp(String.raw`(?<!\bDISTINCT\s+)\b(?:FROM|JOIN|USING)\s+${NAME}`, 'gi'),
  )) {
    if (read.index < writeEnd) continue;
    need(read[1] ?? '', 'SELECT', 'table');
  }
}
