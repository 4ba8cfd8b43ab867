import { createHash } from 'node:crypto';
import { sql, type Expression, type RawBuilder } from 'kysely';
import type { SegmentSpec } from '../../crds/index.ts';
import type { SegmentDialect } from './dialects.ts';

// Splits: a member's group is picked by the first 8 hex digits of MD5(salt ":" key as text), read as a
// number in [0, 2^32) and compared with each group's cumulative share. Every dialect has MD5 as lower-case
// hex, SUBSTR and CONCAT, and lower-case hex digits of one length sort as the numbers they spell, so the
// comparison is one of strings: the same group on every dialect, in every run, with nothing stored.

type Splits = Pick<SegmentSpec, 'splits' | 'splitSalt'>;

/** Each group with the exclusive upper bound of its hash prefix (none for the last group). */
export function splitBounds(splits: NonNullable<SegmentSpec['splits']>): { name: string; below?: string }[] {
  let cumulative = 0;
  return splits.map((split, i) => {
    cumulative += split.percent;
    if (i === splits.length - 1) return { name: split.name };
    const bound = Math.floor((cumulative / 100) * 2 ** 32);
    return { name: split.name, below: bound.toString(16).padStart(8, '0') };
  });
}

const TEXT_TYPE: Record<SegmentDialect, string> = {
  postgres: 'text',
  duckdb: 'VARCHAR',
  snowflake: 'VARCHAR',
  mysql: 'CHAR',
  bigquery: 'STRING',
};

/** The SQL of a member's group: CASE WHEN hash prefix < bound THEN name ... ELSE last name END. */
export function splitExpression(
  dialect: SegmentDialect,
  key: Expression<unknown>,
  segment: Splits,
): RawBuilder<string> {
  const splits = segment.splits ?? [];
  const text = sql`CONCAT(${sql.lit(`${segment.splitSalt}:`)}, CAST(${key} AS ${sql.raw(TEXT_TYPE[dialect])}))`;
  const md5 = dialect === 'bigquery' ? sql`TO_HEX(MD5(${text}))` : sql`MD5(${text})`;
  const prefix = sql`SUBSTR(${md5}, 1, 8)`;
  const bounds = splitBounds(splits);
  const whens = bounds
    .filter((b) => b.below !== undefined)
    .map((b) => sql`WHEN ${prefix} < ${sql.lit(b.below as string)} THEN ${sql.lit(b.name)}`);
  const last = bounds[bounds.length - 1]?.name ?? '';
  return sql<string>`CASE ${sql.join(whens, sql` `)} ELSE ${sql.lit(last)} END`;
}

/** The group of one key, as the SQL computes it (for tests and for people checking a member). */
export function splitGroupOf(segment: Splits, key: string): string | undefined {
  const splits = segment.splits;
  if (!splits) return undefined;
  const prefix = createHash('md5').update(`${segment.splitSalt}:${key}`).digest('hex').slice(0, 8);
  return splitBounds(splits).find((b) => b.below === undefined || prefix < b.below)?.name;
}
