// A Metabase saved question as SQL for the Model's warehouse Source: the native query as written, or the
// SQL Metabase compiles it to (POST /api/dataset/native) for a question built in its editor or one with
// template tags (filled in with their defaults, by Metabase, so that its own quoting is used).
import type { SourceSpec } from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import { assertSameWarehouse, type QuestionDatabase } from '../bi/warehouse.ts';
import {
  card as cardSchema,
  database as databaseSchema,
  nativeForm,
  questionQuery,
  type Card,
  type TemplateTag,
} from './api.ts';
import type { MetabaseClient } from './client.ts';

/** Metabase database engines, by the Source type whose SQL dialect they speak. */
const ENGINES: Record<string, SourceSpec['type']> = {
  postgres: 'postgres',
  mysql: 'mysql',
  snowflake: 'snowflake',
  'bigquery-cloud-sdk': 'bigquery',
};

/** Where each engine's connection details name the database (project for BigQuery). */
const DATABASE_DETAIL: Record<string, string> = {
  postgres: 'dbname',
  mysql: 'dbname',
  snowflake: 'db',
  'bigquery-cloud-sdk': 'project-id',
};

/** Tags Metabase expands without a value: snippets and references to other questions. */
const EXPANDED_TAGS = new Set(['snippet', 'card']);

export const label = (id: number) => `Metabase question ${id}`;

export async function readCard(client: MetabaseClient, id: number): Promise<Card> {
  const card = await client.call(cardSchema, 'GET', `/card/${id}`, {
    notFound: label(id),
    operation: 'read',
  });
  if (card.archived)
    throw new SynclineError(
      'BiQuestionNotFound',
      `${label(id)} ("${card.name}") is archived in Metabase; unarchive it or name another question`,
    );
  return card;
}

/** Tags a value must fill: no default, and required or used outside an optional [[...]] clause. */
function unfilledTags(sql: string, tags: TemplateTag[]): TemplateTag[] {
  const outside = sql.replace(/\[\[[\s\S]*?\]\]/g, '');
  return tags.filter(
    (t) =>
      !EXPANDED_TAGS.has(t.type) &&
      (t.default === undefined || t.default === null) &&
      (t.required === true || new RegExp(`\\{\\{\\s*${t.name ?? ''}\\s*\\}\\}`).test(outside)),
  );
}

/** The question's SQL and the database it is written for. */
export async function questionSql(
  client: MetabaseClient,
  card: Card,
): Promise<{ sql: string; database: number }> {
  const query = questionQuery(card.dataset_query);
  const databaseId = query?.database ?? card.database_id ?? undefined;
  if (!query || databaseId === undefined)
    throw new SynclineError(
      'BiQuestionUnsupported',
      `${label(card.id)} ("${card.name}") has no query on a database Metabase can give SQL for; use as: results`,
    );
  const native = query.native;
  if (native) {
    const unfilled = unfilledTags(native.sql, native.tags);
    if (unfilled.length > 0)
      throw new SynclineError(
        'BiQuestionUnsupported',
        `${label(card.id)} ("${card.name}") has template tags without a default (${unfilled
          .map((t) => `{{${t.name ?? '?'}}}`)
          .join(', ')}); give each a default value in Metabase, or use as: results`,
      );
    if (native.tags.length === 0) return { sql: native.sql, database: databaseId };
  }
  const compiled = await client.call(nativeForm, 'POST', '/dataset/native', {
    body: { ...card.dataset_query, pretty: false },
    notFound: label(card.id),
    operation: 'compile',
  });
  if ((compiled.params ?? []).length > 0)
    throw new SynclineError(
      'BiQuestionUnsupported',
      `Metabase compiled ${label(card.id)} to SQL with ${compiled.params!.length} bound parameters, which cannot run outside Metabase; use as: results`,
    );
  return { sql: compiled.query, database: databaseId };
}

export async function questionDatabase(client: MetabaseClient, id: number): Promise<QuestionDatabase> {
  const db = await client.call(databaseSchema, 'GET', `/database/${id}`, { operation: 'read' });
  const detail = DATABASE_DETAIL[db.engine];
  const name = detail ? db.details?.[detail] : undefined;
  return {
    label: `Metabase database ${db.id} ("${db.name}")`,
    type: ENGINES[db.engine],
    engine: db.engine,
    database: typeof name === 'string' && name !== '' ? name : undefined,
  };
}

/** The SQL of question `id`, checked to be written for the database `warehouse` connects to. */
export async function sqlForWarehouse(
  client: MetabaseClient,
  id: number,
  warehouse: SourceSpec,
): Promise<string> {
  const card = await readCard(client, id);
  const { sql, database } = await questionSql(client, card);
  assertSameWarehouse(await questionDatabase(client, database), warehouse, `${label(id)} ("${card.name}")`);
  return sql.trim().replace(/;\s*$/, '');
}
