// The tables of a warehouse snapshot in PostgreSQL, in the schema Syncline owns (Sync.spec.snapshot.schema):
//   syncline_state              one row per Sync: manifest, generation, row count, stale rows, checksum
//   <sync>_<digest>             the snapshot: key text, stale flag, typed key, row hash, record id
//   <sync>_<digest>_pending     the keys a run is about to touch (by run): their operations, hashes, epochs
//   <sync>_<digest>_rejections  the keys the destination refused, kept pending: why, and in which run (for users)
// Before anything is written, the user's grants are checked, so that a missing one is named with the
// statement that gives it.
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { SynclineError } from '../../core/errors.ts';
import { quoteIdent } from '../shared/sql.ts';

export const STATE_TABLE = 'syncline_state';

/** The snapshot tables of one Sync. */
export interface SnapshotTables {
  schema: string;
  /** Quoted, schema-qualified. */
  state: string;
  snapshot: string;
  pending: string;
  rejections: string;
  /** Unquoted names, for catalog look-ups and messages. */
  snapshotName: string;
  pendingName: string;
  rejectionsName: string;
}

/**
 * Table names of a Sync: its name, cut and folded to what needs no quoting, then a digest of namespace and
 * name (two namespaces may hold Syncs of one name), within PostgreSQL's 63 bytes with `_pending` after it.
 */
export function snapshotTables(schema: string, namespace: string, sync: string): SnapshotTables {
  const digest = createHash('sha256').update(`${namespace}/${sync}`).digest('hex').slice(0, 8);
  const base = `${sync
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 40)}_${digest}`;
  const q = (name: string) => `${quoteIdent(schema)}.${quoteIdent(name)}`;
  return {
    schema,
    state: q(STATE_TABLE),
    snapshot: q(base),
    pending: q(`${base}_pending`),
    rejections: q(`${base}_rejections`),
    snapshotName: base,
    pendingName: `${base}_pending`,
    rejectionsName: `${base}_rejections`,
  };
}

/**
 * The PostgreSQL type of the snapshot's typed key, by the key's DuckDB type: the types whose text both
 * engines write alike, which the model's key can be joined with in SQL. Any other key is kept as its text
 * (DuckDB's rendering): such a snapshot is read back whole, never compared in PostgreSQL.
 */
export function pgKeyType(duckType: string): string {
  const exact: Record<string, string> = {
    SMALLINT: 'int2',
    INTEGER: 'int4',
    BIGINT: 'int8',
    UUID: 'uuid',
    VARCHAR: 'text',
  };
  return exact[duckType] ?? 'text';
}

export const STATE_DDL = (t: SnapshotTables) => `CREATE TABLE IF NOT EXISTS ${t.state} (
  namespace text NOT NULL,
  sync text NOT NULL,
  generation bigint NOT NULL,
  manifest jsonb NOT NULL,
  snapshot_table text NOT NULL,
  row_count bigint NOT NULL,
  stale_count bigint NOT NULL,
  checksum bigint NOT NULL,
  committed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, sync))`;

/** The snapshot table, created without its primary key (added after a whole load, which is faster). */
export const SNAPSHOT_DDL = (t: SnapshotTables, keyType: string) => `CREATE TABLE ${t.snapshot} (
  key_text text NOT NULL,
  stale boolean NOT NULL,
  key ${keyType},
  hash bigint,
  record_id text)`;

export const PENDING_DDL = (t: SnapshotTables) => `CREATE TABLE IF NOT EXISTS ${t.pending} (
  run_id text NOT NULL,
  key_text text NOT NULL,
  key text,
  op text NOT NULL,
  hash bigint,
  epoch text NOT NULL)`;

export const REJECTIONS_DDL = (t: SnapshotTables) => `CREATE TABLE IF NOT EXISTS ${t.rejections} (
  key text PRIMARY KEY,
  reason text NOT NULL,
  message text NOT NULL,
  run_id text NOT NULL,
  rejected_at timestamptz NOT NULL DEFAULT now())`;

/** SQL over a snapshot row (alias `alias`): its term of the checksum, the hash of (typed key, row hash). */
export function checksumTerm(alias: string, keyType: string): string {
  const key = keyType === 'text' ? `${alias}.key COLLATE "C"` : `${alias}.key`;
  return `hash_record_extended(ROW(${key}, ${alias}.hash), 0)`;
}

function grantMissing(user: string, what: string, grant: string): SynclineError {
  return new SynclineError(
    'WarehouseSnapshotGrantMissing',
    `the warehouse snapshot needs ${what}, which user "${user}" lacks: ${grant} (or set spec.snapshot.location: diffStore)`,
  );
}

/**
 * Check the grants the snapshot needs, in the order they are needed, and fail naming the first the user
 * lacks with the statement that gives it. A read-only (dry) run needs only USAGE on an existing schema.
 */
export async function checkGrants(
  client: pg.Client,
  t: SnapshotTables,
  options: { readOnly: boolean },
): Promise<{ schemaExists: boolean }> {
  const found = await client.query<{
    user: string;
    db: string;
    schema_exists: boolean;
    db_create: boolean;
    db_temp: boolean;
    usage: boolean | null;
    create: boolean | null;
  }>(
    `SELECT current_user AS user, current_database() AS db,
       EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema_exists,
       has_database_privilege(current_database(), 'CREATE') AS db_create,
       has_database_privilege(current_database(), 'TEMPORARY') AS db_temp,
       CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) THEN has_schema_privilege($1, 'USAGE') END AS usage,
       CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) THEN has_schema_privilege($1, 'CREATE') END AS create`,
    [t.schema],
  );
  const g = found.rows[0];
  if (!g) throw new Error('no answer to the grant check');
  const user = quoteIdent(g.user);
  const schema = quoteIdent(t.schema);
  if (!g.schema_exists) {
    if (options.readOnly) return { schemaExists: false };
    if (!g.db_create)
      throw grantMissing(
        g.user,
        `schema ${t.schema}, which does not exist, and CREATE on database ${g.db} to create it`,
        `GRANT CREATE ON DATABASE ${quoteIdent(g.db)} TO ${user}, or CREATE SCHEMA ${schema} AUTHORIZATION ${user}`,
      );
    return { schemaExists: false };
  }
  if (!g.usage)
    throw grantMissing(g.user, `USAGE on schema ${t.schema}`, `GRANT USAGE ON SCHEMA ${schema} TO ${user}`);
  if (options.readOnly) return { schemaExists: true };
  if (!g.create)
    throw grantMissing(
      g.user,
      `CREATE on schema ${t.schema} (to create its tables)`,
      `GRANT CREATE ON SCHEMA ${schema} TO ${user}`,
    );
  if (!g.db_temp)
    throw grantMissing(
      g.user,
      `TEMPORARY on database ${g.db} (a commit loads the rows it applies into a temporary table)`,
      `GRANT TEMPORARY ON DATABASE ${quoteIdent(g.db)} TO ${user}`,
    );
  await checkTableGrants(client, t, g.user);
  return { schemaExists: true };
}

/** SELECT, INSERT, UPDATE and DELETE on the tables of the Sync that exist (another role may have made them). */
async function checkTableGrants(client: pg.Client, t: SnapshotTables, user: string): Promise<void> {
  const names = [STATE_TABLE, t.snapshotName, t.pendingName, t.rejectionsName];
  const found = await client.query<{ name: string; privilege: string; granted: boolean; owner: boolean }>(
    `SELECT c.relname AS name, p.privilege, has_table_privilege(c.oid, p.privilege) AS granted,
            pg_has_role(c.relowner, 'USAGE') AS owner
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) WITH ORDINALITY AS p(privilege, i)
      WHERE n.nspname = $1 AND c.relname = ANY($2::text[])
      ORDER BY array_position($2::text[], c.relname::text), p.i`,
    [t.schema, names],
  );
  const missing = found.rows.filter((r) => !r.granted);
  const first = missing[0];
  if (first) {
    const lacking = missing.filter((r) => r.name === first.name).map((r) => r.privilege);
    const table = `${quoteIdent(t.schema)}.${quoteIdent(first.name)}`;
    throw grantMissing(
      user,
      `${lacking.join(', ')} on table ${t.schema}.${first.name}`,
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ${table} TO ${quoteIdent(user)}`,
    );
  }
  // A whole snapshot replaces its table (DROP and CREATE), which only its owner may do.
  const notOwned = found.rows.find((r) => r.name === t.snapshotName && !r.owner);
  if (notOwned) {
    throw grantMissing(
      user,
      `ownership of table ${t.schema}.${t.snapshotName} (a full resync replaces it)`,
      `ALTER TABLE ${t.snapshot} OWNER TO ${quoteIdent(user)}`,
    );
  }
}
