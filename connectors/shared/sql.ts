// Quoting shared by the PostgreSQL and DuckDB statements the connectors build. Both use the SQL
// standard rules: identifiers in double quotes, strings in single quotes, the quote doubled inside.

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/**
 * A possibly schema-qualified table name as written by a person (`orders`, `sales.orders`,
 * `"Sales"."Order Lines"`), quoted part by part. Unquoted parts keep their spelling; PostgreSQL would
 * fold them to lower case, so they are lowered here too.
 */
export function quoteQualifiedName(name: string, foldUnquoted: (part: string) => string = (p) => p): string {
  const parts: string[] = [];
  const re = /\s*(?:"((?:[^"]|"")*)"|([^."]+))\s*(?:\.|$)/gy;
  let match: RegExpExecArray | null;
  while (re.lastIndex < name.length && (match = re.exec(name)) !== null) {
    if (match[1] !== undefined) parts.push(quoteIdent(match[1].replaceAll('""', '"')));
    else if (match[2] !== undefined) parts.push(quoteIdent(foldUnquoted(match[2].trim())));
  }
  if (parts.length === 0 || re.lastIndex < name.length) return quoteIdent(name);
  return parts.join('.');
}
