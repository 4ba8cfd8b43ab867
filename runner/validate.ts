import type { DuckDBConnection } from '@duckdb/node-api';
import { ident, queryAll, queryOne, toCount } from './duck.ts';
import { SynclineError } from '../core/errors.ts';

export interface KeyCheck {
  nullCount: number;
  /** Distinct key values that occur more than once. */
  duplicateKeys: number;
  /** Rows carrying a duplicated key. */
  duplicateRows: number;
  /** The first 20 offending keys (null shown as <null>). */
  sample: string[];
}

const SAMPLE = 20;

/**
 * Null and duplicate primary keys, found in SQL. With `invalid: 'skip'` the offending rows (every row of
 * a duplicated key: no one of them is more right than the others) are left out through the view
 * `valid_rows`; otherwise the run fails naming them.
 */
export async function checkPrimaryKey(
  conn: DuckDBConnection,
  table: string,
  primaryKey: string,
  invalid: 'fail' | 'skip',
): Promise<KeyCheck> {
  const pk = ident(primaryKey);
  // One pass answers the common case (no null, no duplicate); only then are duplicates grouped and named.
  const counts = await queryOne(
    conn,
    `SELECT count(*) AS n, count(${pk}) AS keyed, count(DISTINCT ${pk}) AS distinct_keys FROM ${ident(table)}`,
  );
  const nullCount = toCount(counts['n']) - toCount(counts['keyed']);
  const unique = toCount(counts['keyed']) === toCount(counts['distinct_keys']);
  await conn.run(
    `CREATE OR REPLACE TABLE duplicate_keys AS SELECT ${pk} AS k, count(*) AS n FROM ${ident(table)} ` +
      `WHERE ${unique ? 'FALSE' : `${pk} IS NOT NULL`} GROUP BY ${pk} HAVING count(*) > 1`,
  );
  const dups = unique
    ? { keys: 0, rows: 0 }
    : await queryOne(conn, 'SELECT count(*) AS keys, coalesce(sum(n), 0) AS rows FROM duplicate_keys');
  const sampleRows = unique
    ? []
    : await queryAll(conn, `SELECT CAST(k AS VARCHAR) AS key FROM duplicate_keys ORDER BY k LIMIT ${SAMPLE}`);
  const check: KeyCheck = {
    nullCount,
    duplicateKeys: toCount(dups['keys']),
    duplicateRows: toCount(dups['rows']),
    sample: [...(nullCount > 0 ? ['<null>'] : []), ...sampleRows.map((r) => String(r['key']))].slice(
      0,
      SAMPLE,
    ),
  };
  await conn.run(
    `CREATE OR REPLACE VIEW valid_rows AS SELECT t.* FROM ${ident(table)} t ` +
      (check.nullCount === 0 && check.duplicateKeys === 0
        ? ''
        : `WHERE t.${pk} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM duplicate_keys d WHERE d.k = t.${pk})`),
  );
  if (invalid === 'fail') {
    if (check.nullCount > 0) {
      throw new SynclineError(
        'NullPrimaryKey',
        `${check.nullCount} row(s) have a null primary key "${primaryKey}"` +
          (check.duplicateKeys > 0
            ? ` and ${check.duplicateKeys} key(s) occur more than once (${check.duplicateRows} rows)`
            : '') +
          `; offending keys: ${check.sample.join(', ')}. Fix the model query, or set spec.invalidPrimaryKeys: skip on the Sync to leave such rows out.`,
      );
    }
    if (check.duplicateKeys > 0) {
      throw new SynclineError(
        'DuplicatePrimaryKey',
        `${check.duplicateKeys} primary key value(s) of "${primaryKey}" occur more than once (${check.duplicateRows} rows); ` +
          `first ${check.sample.length}: ${check.sample.join(', ')}. Fix the model query, or set spec.invalidPrimaryKeys: skip on the Sync to leave such rows out.`,
      );
    }
  }
  return check;
}
