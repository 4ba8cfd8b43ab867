// A Metabase question's rows through the API (POST /api/card/:id/query/json, unformatted), streamed to a
// local file and staged by DuckDB with the types of the card's result metadata.
import { join } from 'node:path';
import type { StageRequest, StageResult } from '../../core/connectors.ts';
import { SynclineError } from '../../core/errors.ts';
import { stageJsonArray, type JsonColumn } from '../bi/stage.ts';
import type { Card } from './api.ts';
import type { MetabaseClient } from './client.ts';
import { label, readCard } from './question.ts';

/** Metabase base types (type/*) as DuckDB types; any other is staged as text. */
const BASE_TYPES: Record<string, string> = {
  'type/Integer': 'BIGINT',
  'type/BigInteger': 'HUGEINT',
  'type/Float': 'DOUBLE',
  'type/Decimal': 'DOUBLE',
  'type/Number': 'DOUBLE',
  'type/Boolean': 'BOOLEAN',
  'type/Date': 'DATE',
  'type/DateTime': 'TIMESTAMP',
  'type/DateTimeWithTZ': 'TIMESTAMP WITH TIME ZONE',
  'type/DateTimeWithLocalTZ': 'TIMESTAMP WITH TIME ZONE',
  'type/DateTimeWithZoneOffset': 'TIMESTAMP WITH TIME ZONE',
  'type/DateTimeWithZoneID': 'TIMESTAMP WITH TIME ZONE',
  'type/Time': 'TIME',
  'type/UUID': 'UUID',
  'type/JSON': 'JSON',
};

/** The export's keys are the columns' display names; the model's columns are their names. */
function exportColumns(card: Card): JsonColumn[] {
  return (card.result_metadata ?? []).map((c) => ({
    key: c.display_name ?? c.name,
    name: c.name,
    type: BASE_TYPES[c.base_type ?? ''] ?? 'VARCHAR',
  }));
}

export async function stageResults(
  client: MetabaseClient,
  req: StageRequest,
  question: number,
): Promise<StageResult> {
  const card = await readCard(client, question);
  const file = join(req.tmpDir, `metabase-${question}-${req.labels.runId}.json`);
  const bytes = await client.download(
    `/card/${question}/query/json`,
    { format_rows: false, parameters: [] },
    file,
    label(question),
  );
  const result = await stageJsonArray(
    req.duck,
    req.table,
    file,
    exportColumns(card),
    `${label(question)} ("${card.name}")`,
  );
  req.log.info({ question, rows: result.rows, bytes }, 'staged the Metabase question results');
  const limit = client.settings.downloadRowLimit;
  if (result.rows >= limit)
    throw new SynclineError(
      'BiResultsIncomplete',
      `${label(question)} ("${card.name}") returned ${result.rows} rows, the download row limit of the instance: ` +
        'Metabase cut the results short. Raise MB_DOWNLOAD_ROW_LIMIT (and downloadRowLimit in the Source), or use as: sql',
    );
  return result;
}
