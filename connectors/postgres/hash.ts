// PostgreSQL's own row hash, so that a resync can read only keys and hashes out of the database and the
// rows themselves only where a hash differs. hash_record_extended (PostgreSQL 14+) hashes each field
// with its type's default hash function: 64 bits, no text conversion of the values, and kept stable across
// releases (hash-partitioned tables survive pg_upgrade on them). The probe catches a server that hashes
// otherwise all the same: the snapshot's rows are then sent again once.
import type pg from 'pg';
import type { Logger, SourceHashFunction } from '../../core/connectors.ts';
import type { ColumnPlan } from './types.ts';

export const POSTGRES_HASH = 'postgres';

const MIN_SERVER_VERSION = 140000;

/** Fixed sample values of the common types; ASCII only, as the database's encoding shapes text bytes. */
const PROBE_SQL = `SELECT hash_record_extended(ROW(42::int8, -7::int4, 'Syncline'::text COLLATE "C", NULL::text,
  ''::text COLLATE "C", 1.5::float8, 12.34::numeric, true, DATE '2024-02-29', TIMESTAMP '2024-02-29 12:34:56.789',
  TIMESTAMPTZ '2024-02-29 12:34:56.789+00', '{"a":[1,2]}'::jsonb, ARRAY[1,2,3]::int4[], decode('aabb', 'hex'),
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, INTERVAL '3 days', '{"a": 1}'::json::text COLLATE "C"), 0)::text AS probe`;

/** The server's row hash function, or undefined where it has none (before 14, or a look-alike server). */
export async function postgresHashFunction(
  client: pg.Client,
  log: Logger,
): Promise<SourceHashFunction | undefined> {
  try {
    const version = await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    if (Number(version.rows[0]?.v ?? 0) < MIN_SERVER_VERSION) return undefined;
    const probe = await client.query<{ probe: string }>(PROBE_SQL);
    const value = probe.rows[0]?.probe;
    return value === undefined ? undefined : { name: POSTGRES_HASH, probe: value, keysOnly: true };
  } catch (error) {
    log.info(
      { err: error instanceof Error ? error.message : String(error) },
      'the source cannot hash rows itself; DuckDB hashes them',
    );
    return undefined;
  }
}

/** SQL over the model row `m`: the row hash of `columns` (int8; 0 for none). */
export function rowHashExpr(plans: ColumnPlan[], columns: string[]): string {
  if (columns.length === 0) return '0::int8';
  const byName = new Map(plans.map((p) => [p.name, p]));
  const fields = columns.map((name) => {
    const plan = byName.get(name);
    if (!plan) throw new Error(`no column ${name} to hash`);
    return plan.hashExpr;
  });
  return `hash_record_extended(ROW(${fields.join(', ')}), 0)`;
}

/**
 * DuckDB SQL turning PostgreSQL's signed 64-bit hash (read as BIGINT) into the UBIGINT snapshots keep:
 * shifted by 2^63, a one-to-one map.
 */
export function unsignedHashSql(field: string): string {
  return `CAST(CAST(${field} AS HUGEINT) + 9223372036854775808 AS UBIGINT)`;
}
