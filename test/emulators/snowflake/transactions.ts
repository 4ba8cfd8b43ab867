// What a statement is to Snowflake's transaction rules, and the lock writers wait on. Snowflake runs each
// statement in its own transaction unless BEGIN opened one; DDL always commits what is open and runs on its
// own; DML locks what it writes until the transaction ends, so a second writer waits (here: one lock for the
// whole account, which only ever makes writers wait longer than Snowflake would, never less).

export type StatementKind = 'begin' | 'commit' | 'rollback' | 'ddl' | 'dml' | 'query';

export function statementKind(sql: string): StatementKind {
  const text = sql.replace(/^(\s|--[^\n]*\n|\/\*[\s\S]*?\*\/)+/, '').replace(/;+\s*$/, '');
  if (/^(BEGIN|START\s+TRANSACTION)(\s+(TRANSACTION|WORK))?(\s+NAME\s+\S+)?$/i.test(text)) return 'begin';
  if (/^COMMIT(\s+WORK)?$/i.test(text)) return 'commit';
  if (/^ROLLBACK(\s+WORK)?$/i.test(text)) return 'rollback';
  if (/^(CREATE|DROP|ALTER|UNDROP)\b/i.test(text)) return 'ddl';
  if (/^(INSERT|UPDATE|DELETE|MERGE|TRUNCATE)\b/i.test(text)) return 'dml';
  return 'query';
}

/** A first-come, first-served lock: acquire() resolves with the function that releases it. */
export class WriteLock {
  private tail: Promise<void> = Promise.resolve();

  acquire(): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const before = this.tail;
    this.tail = before.then(() => held);
    return before.then(() => release);
  }
}
