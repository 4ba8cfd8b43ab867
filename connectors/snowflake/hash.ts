// Snowflake's own row hash, HASH(expr, ...): a signed 64-bit NUMBER(19,0) over the values with their types,
// computed in the warehouse, so that a Sync whose snapshot lives there compares rows without moving them.
// HASH's documentation says its values may change between releases; the probe (the hash of fixed sample
// values) catches that, and the snapshot's rows are then sent again once.
import type { Logger, SourceHashFunction } from '../../core/connectors.ts';
import type { SnowflakeClient } from './client.ts';

export const SNOWFLAKE_HASH = 'snowflake';

const PROBE_SQL = `SELECT CAST(HASH(42, -7, 'Syncline', NULL, '', 1.5, TRUE, DATE '2024-02-29',
  TIMESTAMP '2024-02-29 12:34:56.789') AS VARCHAR) AS PROBE`;

export async function snowflakeHashFunction(
  client: SnowflakeClient,
  log: Logger,
): Promise<SourceHashFunction | undefined> {
  try {
    const [row] = await client.rows(PROBE_SQL);
    const probe = row?.PROBE;
    return probe === null || probe === undefined ? undefined : { name: SNOWFLAKE_HASH, probe };
  } catch (error) {
    log.info(
      { err: error instanceof Error ? error.message : String(error) },
      'Snowflake cannot hash rows here; DuckDB hashes them',
    );
    return undefined;
  }
}

export const quoteName = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Snowflake SQL over the model row `alias`: the row hash of `columns` (0 for none). */
export function rowHashSql(columns: string[], alias = 'm'): string {
  if (columns.length === 0) return '0';
  return `HASH(${columns.map((c) => `${alias}.${quoteName(c)}`).join(', ')})`;
}

/** DuckDB SQL turning Snowflake's signed hash (read as text) into the UBIGINT snapshots keep (shifted by 2^63). */
export function unsignedHashSql(field: string): string {
  return `CAST(CAST(${field} AS HUGEINT) + 9223372036854775808 AS UBIGINT)`;
}

/** DuckDB SQL turning a UBIGINT hash into Snowflake's signed one, as text. */
export function signedHashSql(column: string): string {
  return `CAST(CAST(CAST(${column} AS HUGEINT) - 9223372036854775808 AS BIGINT) AS VARCHAR)`;
}
