// The tables of a warehouse snapshot in Snowflake, in the schema Syncline owns (Sync.spec.snapshot.schema,
// upper-cased as Snowflake folds an unquoted name):
//   SYNCLINE_STATE                one row per Sync: manifest, generation, row count, stale rows, checksum
//   <SYNC>_<DIGEST>               the snapshot: key text, stale flag, typed key (as text), row hash, record id
//   <SYNC>_<DIGEST>_PENDING       the keys a run is about to touch (by run): their operations, hashes, epochs
//   <SYNC>_<DIGEST>_UPLOAD        the rows a run's commit applies (by run), loaded before its transaction
//   <SYNC>_<DIGEST>_REJECTIONS    the keys the destination refused and the committed snapshot keeps pending
// Names follow the PostgreSQL snapshot's rules (connectors/postgres/snapshot-tables.ts). Before anything is
// written, each privilege is tried with a statement that changes nothing, so that the one missing is named
// with the GRANT that gives it.
import { createHash } from 'node:crypto';
import { SynclineError } from '../../core/errors.ts';
import type { SnowflakeClient } from './client.ts';

export const STATE_TABLE = 'SYNCLINE_STATE';

export interface SnapshotTables {
  /** The schema's name as Snowflake holds it. */
  schema: string;
  /** Quoted, schema-qualified. */
  state: string;
  snapshot: string;
  pending: string;
  upload: string;
  rejections: string;
  /** Unquoted names, for catalog look-ups and messages. */
  snapshotName: string;
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Snowflake's name of the schema: an unquoted name folds to upper case; a "quoted" one stays as it is. */
export function schemaName(schema: string): string {
  return /^".*"$/.test(schema) ? schema.slice(1, -1).replaceAll('""', '"') : schema.toUpperCase();
}

export function snapshotTables(schema: string, namespace: string, sync: string): SnapshotTables {
  const digest = createHash('sha256').update(`${namespace}/${sync}`).digest('hex').slice(0, 8);
  const base = `${sync
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 40)}_${digest}`.toUpperCase();
  const name = schemaName(schema);
  const q = (table: string) => `${quote(name)}.${quote(table)}`;
  return {
    schema: name,
    state: q(STATE_TABLE),
    snapshot: q(base),
    pending: q(`${base}_PENDING`),
    upload: q(`${base}_UPLOAD`),
    rejections: q(`${base}_REJECTIONS`),
    snapshotName: base,
  };
}

export const STATE_DDL = (t: SnapshotTables) => `CREATE TABLE IF NOT EXISTS ${t.state} (
  NAMESPACE VARCHAR NOT NULL,
  SYNC VARCHAR NOT NULL,
  GENERATION NUMBER(19,0) NOT NULL,
  MANIFEST VARCHAR NOT NULL,
  SNAPSHOT_TABLE VARCHAR NOT NULL,
  ROW_COUNT NUMBER(19,0) NOT NULL,
  STALE_COUNT NUMBER(19,0) NOT NULL,
  CHECKSUM NUMBER(19,0) NOT NULL,
  COMMITTED_AT TIMESTAMP_NTZ)`;

/** Row hashes are Snowflake's HASH(): a signed 64-bit NUMBER(19,0). */
export const SNAPSHOT_DDL = (t: SnapshotTables) => `CREATE TABLE IF NOT EXISTS ${t.snapshot} (
  KEY_TEXT VARCHAR NOT NULL,
  STALE BOOLEAN NOT NULL,
  KEY VARCHAR,
  HASH NUMBER(19,0),
  RECORD_ID VARCHAR)`;

export const PENDING_DDL = (t: SnapshotTables) => `CREATE TABLE IF NOT EXISTS ${t.pending} (
  RUN_ID VARCHAR NOT NULL,
  KEY_TEXT VARCHAR NOT NULL,
  KEY VARCHAR,
  OP VARCHAR NOT NULL,
  HASH NUMBER(19,0),
  EPOCH VARCHAR NOT NULL)`;

export const UPLOAD_DDL = (t: SnapshotTables) => `CREATE TABLE IF NOT EXISTS ${t.upload} (
  RUN_ID VARCHAR NOT NULL,
  KEY_TEXT VARCHAR NOT NULL,
  STALE BOOLEAN NOT NULL,
  KEY VARCHAR,
  HASH NUMBER(19,0),
  RECORD_ID VARCHAR,
  DELETED BOOLEAN NOT NULL)`;

export const REJECTIONS_DDL = (t: SnapshotTables) => `CREATE TABLE IF NOT EXISTS ${t.rejections} (
  KEY VARCHAR NOT NULL,
  REASON VARCHAR NOT NULL,
  MESSAGE VARCHAR,
  RUN_ID VARCHAR NOT NULL,
  REJECTED_AT TIMESTAMP_NTZ NOT NULL)`;

/** The SDK's error code of Snowflake's "insufficient privileges" and "does not exist or not authorized". */
const INSUFFICIENT = '003001';
const NOT_AUTHORIZED = '002003';

export function grantMissing(role: string, what: string, grant: string, cause?: unknown): SynclineError {
  return new SynclineError(
    'WarehouseSnapshotGrantMissing',
    `the warehouse snapshot needs ${what}, which role ${role} lacks: ${grant} (or set spec.snapshot.location: diffStore)`,
    cause === undefined ? {} : { cause },
  );
}

function codeOf(error: unknown): string {
  return String((error as { code?: unknown }).code ?? '');
}

/** Run `probe`; when Snowflake refuses it for want of a privilege, fail naming it. */
async function needs(
  probe: () => Promise<unknown>,
  missing: { role: string; what: string; grant: string },
): Promise<void> {
  try {
    await probe();
  } catch (error) {
    const code = codeOf(error);
    if (code === INSUFFICIENT || code === NOT_AUTHORIZED)
      throw grantMissing(missing.role, missing.what, missing.grant, error);
    throw error;
  }
}

export interface Session {
  role: string;
  database: string;
}

export async function sessionOf(client: SnowflakeClient): Promise<Session> {
  const [row] = await client.rows('SELECT CURRENT_ROLE() AS R, CURRENT_DATABASE() AS D');
  return { role: row?.R ?? 'PUBLIC', database: row?.D ?? '' };
}

export async function schemaExists(client: SnowflakeClient, t: SnapshotTables): Promise<boolean> {
  const found = await client.rows(
    'SELECT COUNT(*) AS N FROM INFORMATION_SCHEMA.SCHEMATA WHERE CATALOG_NAME = CURRENT_DATABASE() AND SCHEMA_NAME = ?',
    [t.schema],
  );
  return Number(found[0]?.N ?? 0) > 0;
}

/**
 * Create the schema (when missing) and the Sync's tables, naming the privilege that is missing: CREATE
 * SCHEMA on the database, USAGE and CREATE TABLE on the schema, then SELECT, INSERT, UPDATE and DELETE on
 * each table, each tried with a statement that changes nothing.
 */
export async function prepareTables(client: SnowflakeClient, t: SnapshotTables, s: Session): Promise<void> {
  const role = quote(s.role);
  const schema = `${quote(s.database)}.${quote(t.schema)}`;
  if (!(await schemaExists(client, t))) {
    await needs(() => client.run(`CREATE SCHEMA IF NOT EXISTS ${quote(t.schema)}`), {
      role: s.role,
      what: `schema ${t.schema}, which does not exist, and CREATE SCHEMA on database ${s.database} to create it`,
      grant: `GRANT CREATE SCHEMA ON DATABASE ${quote(s.database)} TO ROLE ${role}, or create the schema and GRANT USAGE, CREATE TABLE ON SCHEMA ${schema} TO ROLE ${role}`,
    });
  }
  for (const ddl of [STATE_DDL, SNAPSHOT_DDL, PENDING_DDL, UPLOAD_DDL, REJECTIONS_DDL]) {
    await needs(() => client.run(ddl(t)), {
      role: s.role,
      what: `USAGE and CREATE TABLE on schema ${t.schema} (to create its tables)`,
      grant: `GRANT USAGE, CREATE TABLE ON SCHEMA ${schema} TO ROLE ${role}`,
    });
  }
  for (const table of [t.state, t.snapshot, t.pending, t.upload, t.rejections]) {
    await checkTable(client, table, s);
  }
}

/** SELECT, INSERT, UPDATE and DELETE on a table that exists (another role may have created it). */
async function checkTable(client: SnowflakeClient, table: string, s: Session): Promise<void> {
  const grant = `GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE ${quote(s.database)}.${table} TO ROLE ${quote(s.role)}`;
  const probes: [string, string][] = [
    ['SELECT', `SELECT COUNT(*) AS N FROM ${table} WHERE 1 = 0`],
    ['INSERT', `INSERT INTO ${table} SELECT * FROM ${table} WHERE 1 = 0`],
    ['UPDATE', `UPDATE ${table} SET KEY_OR_NAME = KEY_OR_NAME WHERE 1 = 0`],
    ['DELETE', `DELETE FROM ${table} WHERE 1 = 0`],
  ];
  for (const [privilege, sql] of probes) {
    const column = table.endsWith('"SYNCLINE_STATE"') ? 'NAMESPACE' : 'KEY';
    await needs(() => client.run(sql.replaceAll('KEY_OR_NAME', column)), {
      role: s.role,
      what: `${privilege} on table ${table.replaceAll('"', '')}`,
      grant,
    });
  }
}
