// A Looker query's rows through the API (GET /queries/{id}/run/json, unformatted), streamed to a local
// file and staged by DuckDB, which infers each column's type from all of its values.
import { join } from 'node:path';
import type { StageRequest, StageResult } from '../../core/connectors.ts';
import { SynclineError } from '../../core/errors.ts';
import { stageJsonArray } from '../bi/stage.ts';
import type { LookerClient } from './client.ts';
import { columnOf, labelOf, readQuery } from './query.ts';

/** Looker's row limit of a query that sets none. */
const DEFAULT_LIMIT = 500;

export async function stageResults(client: LookerClient, req: StageRequest): Promise<StageResult> {
  const ref = req.model.looker!;
  const label = labelOf(ref);
  const q = await readQuery(client, ref);
  const file = join(req.tmpDir, `looker-${q.id}-${req.labels.runId}.json`);
  const bytes = await client.download(
    `/queries/${q.id}/run/json`,
    { apply_formatting: 'false', cache: 'false' },
    file,
    label,
  );
  const columns = (q.fields ?? []).map((field) => ({ key: field, name: columnOf(field) }));
  const result = await stageJsonArray(req.duck, req.table, file, columns, label);
  req.log.info({ query: q.id, rows: result.rows, bytes }, 'staged the Looker query results');
  const limit = q.limit === undefined || q.limit === null || q.limit === '' ? DEFAULT_LIMIT : Number(q.limit);
  if (limit > 0 && result.rows >= limit)
    throw new SynclineError(
      'BiResultsIncomplete',
      `${label} returned ${result.rows} rows, its row limit (${limit}): Looker cut the results short. ` +
        'Raise the row limit of the query in Looker (-1 for all rows), or use as: sql',
    );
  return result;
}
