// BigQuery's own row hash, so that the diff against a warehouse snapshot runs in BigQuery SQL. Every
// compared value is turned into exact text by its type (UNIX_MICROS for TIMESTAMP, so that no time zone
// enters; TO_BASE64 for BYTES; TO_JSON_STRING for JSON, ARRAY and STRUCT), each text is length-prefixed
// (so that no two rows' texts run together alike) or marked NULL, and FARM_FINGERPRINT hashes the
// concatenation to a signed INT64. TO_JSON_STRING(STRUCT(...)) over the whole row would be shorter, but
// the emulator renders INT64 and NUMERIC there as JSON floats, so changes past 2^53 would hash alike
// (test/warehouses/bigquery/README.md). The probe catches a server that renders or hashes otherwise.
import type { SourceHashFunction } from '../../core/connectors.ts';
import type { BigQueryField } from './types.ts';

export const BIGQUERY_HASH = 'bigquery-farm-fingerprint-v1';

/** Backtick-quote one BigQuery identifier. */
export function quoteBq(name: string): string {
  return `\`${name.replaceAll('\\', '\\\\').replaceAll('`', '\\`')}\``;
}

/** A BigQuery string literal. */
export function bqString(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'").replaceAll('\n', '\\n').replaceAll('\r', '\\r')}'`;
}

/** SQL: the exact text of `expr`, a value of BigQuery type `field` (NULL stays NULL). */
export function textOf(expr: string, field: Pick<BigQueryField, 'type' | 'mode'>): string {
  if (field.mode?.toUpperCase() === 'REPEATED') return `TO_JSON_STRING(${expr})`;
  switch (field.type.toUpperCase()) {
    case 'STRING':
      return expr;
    case 'BYTES':
      return `TO_BASE64(${expr})`;
    case 'TIMESTAMP':
      return `CAST(UNIX_MICROS(${expr}) AS STRING)`;
    case 'INTEGER':
    case 'INT64':
    case 'NUMERIC':
    case 'BIGNUMERIC':
    case 'FLOAT':
    case 'FLOAT64':
    case 'BOOLEAN':
    case 'BOOL':
    case 'DATE':
    case 'DATETIME':
    case 'TIME':
      return `CAST(${expr} AS STRING)`;
    default:
      // JSON, RECORD/STRUCT, GEOGRAPHY, INTERVAL, RANGE.
      return `TO_JSON_STRING(${expr})`;
  }
}

/** SQL: one value's part of the hashed text: `n` for NULL, else `v<length>:<text>`. */
function part(expr: string, field: Pick<BigQueryField, 'type' | 'mode'>): string {
  const text = textOf(expr, field);
  return `IF(${expr} IS NULL, 'n', CONCAT('v', CAST(LENGTH(${text}) AS STRING), ':', ${text}))`;
}

/** SQL over the model row `alias`: the row hash (INT64) of `columns`, in that order; 0 for none. */
export function rowHashExpr(fields: BigQueryField[], columns: string[], alias = 'm'): string {
  if (columns.length === 0) return 'CAST(0 AS INT64)';
  const byName = new Map(fields.map((f) => [f.name, f]));
  const parts = columns.map((name) => {
    const field = byName.get(name);
    if (!field) throw new Error(`no column ${name} to hash`);
    return part(`${alias}.${quoteBq(name)}`, field);
  });
  return `FARM_FINGERPRINT(CONCAT(${parts.join(', ')}))`;
}

/**
 * SQL: a row's term of a checksum, the fingerprint of (typed key, row hash); NULL for a NULL key. The key
 * is INT64 or STRING (the only keys narrowed), whose CAST text is the same on both sides of the join.
 */
export function checksumTermSql(key: string, hash: string): string {
  return `IF(${key} IS NULL, NULL, FARM_FINGERPRINT(CONCAT(CAST(${key} AS STRING), ':', IFNULL(CAST(${hash} AS STRING), 'n'))))`;
}

/** Fixed sample values of the common types, hashed as a row of them is. */
export const PROBE_SQL = `SELECT ${rowHashExpr(
  [
    { name: 'i', type: 'INT64' },
    { name: 's', type: 'STRING' },
    { name: 'z', type: 'STRING' },
    { name: 'e', type: 'STRING' },
    { name: 'f', type: 'FLOAT64' },
    { name: 'n', type: 'NUMERIC' },
    { name: 'b', type: 'BOOL' },
    { name: 'd', type: 'DATE' },
    { name: 'dt', type: 'DATETIME' },
    { name: 'ts', type: 'TIMESTAMP' },
    { name: 'by', type: 'BYTES' },
    { name: 'a', type: 'INT64', mode: 'REPEATED' },
  ],
  ['i', 's', 'z', 'e', 'f', 'n', 'b', 'd', 'dt', 'ts', 'by', 'a'],
)} AS probe FROM (SELECT 9223372036854775807 AS i, 'Syncline' AS s, CAST(NULL AS STRING) AS z, '' AS e,
  1.5 AS f, NUMERIC '12.34' AS n, TRUE AS b, DATE '2024-02-29' AS d, DATETIME '2024-02-29 12:34:56.789' AS dt,
  TIMESTAMP '2024-02-29 12:34:56.789+00' AS ts, b'\\xaa\\xbb' AS \`by\`, [1, 2, 3] AS a) AS m`;

export function hashFunction(probe: string): SourceHashFunction {
  return { name: BIGQUERY_HASH, probe };
}

/**
 * DuckDB SQL turning BigQuery's signed INT64 hash (text) into the UBIGINT snapshots keep: shifted by
 * 2^63, one to one.
 */
export function unsignedHashSql(field: string): string {
  return `CAST(CAST(${field} AS HUGEINT) + 9223372036854775808 AS UBIGINT)`;
}

/** DuckDB SQL: the inverse of unsignedHashSql, as BIGINT. */
export function signedHashSql(field: string): string {
  return `CAST(CAST(${field} AS HUGEINT) - 9223372036854775808 AS BIGINT)`;
}
