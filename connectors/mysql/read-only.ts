// A MySQL or MariaDB model can only read. START TRANSACTION READ ONLY refuses writes to tables (error
// 1792) but not DDL, which commits implicitly and runs (DROP TABLE and TRUNCATE went through in MariaDB
// 10.11), nor SELECT ... INTO OUTFILE. So the model must also be a query: before it runs, the probe prepares
// `SELECT * FROM (<model>) AS m`, which only a query expression without INTO passes (COM_STMT_PREPARE
// parses and resolves the statement without running any of it). The model then runs as written: wrapped,
// MySQL materialises a derived table it cannot merge (a model with a window function took twice as long).
// That is safe because the probe embeds the text right after an opening parenthesis and mysql2 never
// enables multiple statements: on its own, a text that passes is that same query, or a syntax error.
import type mysql from 'mysql2';
import { SynclineError } from '../../core/errors.ts';
import { modelNotReadOnly } from '../shared/read-only.ts';
import type { StageRequest } from '../../core/connectors.ts';

const ER_PARSE_ERROR = 1064;
const ER_DUP_FIELDNAME = 1060;
/** ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: a statement (or a function the query calls) that writes. */
export const ER_READ_ONLY_TRANSACTION = 1792;

interface MysqlError {
  errno?: number;
  sqlMessage?: string;
}

function errnoOf(error: unknown): number | undefined {
  return (error as MysqlError | null)?.errno;
}

/**
 * Whether a syntax error is MySQL's refusal of a second statement: it points at the `;` or just after it
 * ("near 'DELETE FROM t' at line 1"; MySQL quotes up to 80 characters of the rest of the text).
 */
function isSecondStatement(error: unknown, text: string): boolean {
  const near = /near '([\s\S]*)' at line \d+$/.exec((error as MysqlError).sqlMessage ?? '')?.[1];
  if (!near) return false;
  if (near.startsWith(';')) return true;
  for (let at = text.indexOf(near); at >= 0; at = text.indexOf(near, at + 1)) {
    if (/;\s*$/.test(text.slice(0, at))) return true;
  }
  return false;
}

async function prepare(connection: mysql.Connection, sql: string): Promise<unknown> {
  try {
    const statement = await connection.promise().prepare(sql);
    await statement.close();
    return undefined;
  } catch (error) {
    return error;
  }
}

/**
 * Refuse a model that is not one query (ModelNotReadOnly), before any of it runs. Other errors of the
 * probe (an unknown table, a plain syntax error) are thrown as MySQL reported them, for the caller to word.
 */
export async function probeModel(
  connection: mysql.Connection,
  sql: string,
  labels: StageRequest['labels'],
  describe: (error: unknown) => string,
): Promise<void> {
  const probe = `SELECT * FROM (${sql}\n) AS m`;
  const probed = await prepare(connection, probe);
  if (probed === undefined) return;
  if (errnoOf(probed) === ER_DUP_FIELDNAME) {
    const name = /'(.*)'/.exec((probed as MysqlError).sqlMessage ?? '')?.[1] ?? '?';
    throw new SynclineError(
      'SourceQueryFailed',
      `the model query returns the column "${name}" more than once; give each column a unique name (AS ...)`,
      { cause: probed },
    );
  }
  if (errnoOf(probed) !== ER_PARSE_ERROR) throw probed;
  if (isSecondStatement(probed, probe))
    throw modelNotReadOnly(labels, 'MySQL', `a second statement: ${describe(probed)}`, probed);
  // Not a query: is it a statement of its own (DELETE, DROP, SELECT ... INTO OUTFILE), or a typo?
  const alone = await prepare(connection, sql);
  if (alone !== undefined && errnoOf(alone) === ER_PARSE_ERROR) {
    if (isSecondStatement(alone, sql))
      throw modelNotReadOnly(labels, 'MySQL', `a second statement: ${describe(alone)}`, alone);
    throw alone;
  }
  throw modelNotReadOnly(
    labels,
    'MySQL',
    'it is a statement of its own, not a query whose rows can be read (as the subquery of SELECT * FROM (...) AS m)',
    probed,
  );
}
