// Snowflake's hash functions on DuckDB. HASH(expr, ...) returns a signed 64-bit NUMBER(19,0); HASH_AGG(expr, ...)
// is an order-independent aggregate of the same, never NULL (an empty input gives 0). DuckDB's hash() is an
// unsigned 64-bit hash of the same arguments, so both are that hash shifted by 2^63 (one to one), and the
// aggregate is the XOR of the rows' hashes. The values differ from a real account's, as HASH's documentation
// says they may between releases: only hashes of the same account are ever compared.

const SHIFT = '9223372036854775808';

function signed(unsignedSql: string): string {
  return `CAST(CAST(${unsignedSql} AS HUGEINT) - ${SHIFT} AS DECIMAL(19,0))`;
}

/** The index just past the parenthesis that closes the one before `from` (quotes skipped). */
function closing(sql: string, from: number): number {
  let depth = 1;
  let quote: string | undefined;
  for (let i = from; i < sql.length; i++) {
    const ch = sql[i];
    if (quote) {
      if (ch === quote) quote = undefined;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '(') depth++;
    else if (ch === ')' && --depth === 0) return i + 1;
  }
  throw new Error(`unbalanced parentheses in ${sql.slice(0, 80)}`);
}

/** Rewrite every HASH(...) and HASH_AGG(...) call (nested ones too) outside quotes. */
export function rewriteHashes(sql: string): string {
  const call = /(?<![\w$."])(HASH_AGG|HASH)\s*\(/gi;
  let out = '';
  let last = 0;
  let quote: string | undefined;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i];
    if (quote) {
      if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === "'" || ch === '"') {
      quote = ch;
      continue;
    }
    call.lastIndex = i;
    const match = call.exec(sql);
    if (!match || match.index !== i) continue;
    const start = i + match[0].length;
    const end = closing(sql, start);
    const args = rewriteHashes(sql.slice(start, end - 1));
    const replaced =
      (match[1] ?? '').toUpperCase() === 'HASH'
        ? signed(`hash(${args})`)
        : `COALESCE(${signed(`bit_xor(hash(${args}))`)}, 0)`;
    out += sql.slice(last, i) + replaced;
    last = end;
    i = end - 1;
  }
  return out + sql.slice(last);
}
