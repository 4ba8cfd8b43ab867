// Results a BI tool exported as one JSON array of objects, staged from a local file into the run's DuckDB
// table: DuckDB parses the file as it reads it, so no row is held in JavaScript memory. A file that is not
// one complete array (an export cut short, an error the tool appended mid-stream) is refused.
import type { DuckDBConnection } from '@duckdb/node-api';
import type { StageResult } from '../../core/connectors.ts';
import { SynclineError } from '../../core/errors.ts';
import { assertUniqueNames } from '../shared/text-stage.ts';
import { countRows, describeTable, duckMessage } from '../shared/duck.ts';
import { quoteIdent, quoteLiteral } from '../shared/sql.ts';

/** A column of the export: the key its objects carry, the model column it becomes, its DuckDB type. */
export interface JsonColumn {
  key: string;
  name: string;
  /** Undefined: DuckDB infers it from every value of the file. */
  type?: string;
}

export async function stageJsonArray(
  duck: DuckDBConnection,
  table: string,
  file: string,
  columns: JsonColumn[],
  what: string,
): Promise<StageResult> {
  assertUniqueNames(
    columns.map((c) => c.name),
    what,
  );
  const typed = columns.length > 0 && columns.every((c) => c.type !== undefined);
  const declared = columns.map((c) => `${quoteLiteral(c.key)}: ${quoteLiteral(c.type ?? 'VARCHAR')}`);
  const reader = (declare: boolean) =>
    `read_json(${quoteLiteral(file)}, format = 'array', ` +
    (declare ? `columns = {${declared.join(', ')}})` : 'sample_size = -1, maximum_depth = 1)');
  const list =
    columns.length === 0
      ? '*'
      : columns.map((c) => `${quoteIdent(c.key)} AS ${quoteIdent(c.name)}`).join(', ');
  const select = (declare: boolean) =>
    `CREATE TABLE ${quoteIdent(table)} AS SELECT ${list} FROM ${reader(declare)}`;
  try {
    await duck.run(select(typed));
  } catch (error) {
    const message = duckMessage(error);
    if (
      !typed &&
      columns.length > 0 &&
      /empty|no columns|Could not infer|not found in FROM clause/i.test(message)
    ) {
      // No row to infer types from (or a column no row has): the columns as text.
      await duck.run(`DROP TABLE IF EXISTS ${quoteIdent(table)}`);
      await duck.run(select(true));
    } else {
      throw new SynclineError(
        'BiResultsIncomplete',
        `${what}: the results are not one complete JSON array (${message}); nothing was staged`,
      );
    }
  }
  return { columns: await describeTable(duck, table), rows: await countRows(duck, table) };
}
