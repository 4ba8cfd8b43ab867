// A Looker Look or saved query, and the SQL Looker generates for it (GET /queries/{id}/run/sql), checked
// to be written for the database the Model's warehouse Source connects to.
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import type { Logger } from '../../core/connectors.ts';
import { SynclineError } from '../../core/errors.ts';
import { assertSameWarehouse, type QuestionDatabase } from '../bi/warehouse.ts';
import { connection, explore, look, query, type LookerQuery } from './api.ts';
import type { LookerClient } from './client.ts';

type LookerRef = NonNullable<ModelSpec['looker']>;

/** Looker dialects, by the Source type whose SQL they write. */
const DIALECTS: Record<string, SourceSpec['type']> = {
  postgres: 'postgres',
  mysql: 'mysql',
  mariadb: 'mysql',
  snowflake: 'snowflake',
  bigquery_standard_sql: 'bigquery',
};

/** The model column of a Looker field: users.id → users_id (a dot would read as a nested field). */
export function columnOf(field: string): string {
  return field.replaceAll('.', '_');
}

function quoteFor(type: SourceSpec['type'], name: string): string {
  return type === 'mysql' || type === 'bigquery'
    ? `\`${name.replaceAll('`', '``')}\``
    : `"${name.replaceAll('"', '""')}"`;
}

/** Looker's SQL with its columns renamed as columnOf says. */
function renamed(sql: string, fields: string[], type: SourceSpec['type']): string {
  if (fields.length === 0) return sql;
  const list = fields.map((f) => `${quoteFor(type, f)} AS ${quoteFor(type, columnOf(f))}`).join(', ');
  return `SELECT ${list} FROM (\n${sql}\n) AS looker_query`;
}

export function labelOf(ref: LookerRef): string {
  return ref.look !== undefined ? `Looker Look ${ref.look}` : `Looker query ${ref.query}`;
}

/** The saved query a Look or query id/slug names. */
export async function readQuery(client: LookerClient, ref: LookerRef): Promise<LookerQuery> {
  const label = labelOf(ref);
  if (ref.look !== undefined) {
    const found = await client.get(look, `/looks/${ref.look}`, { notFound: label, operation: 'read' });
    if (found.deleted)
      throw new SynclineError(
        'BiQuestionNotFound',
        `${label} ("${found.title ?? ''}") is in the trash in Looker; restore it or name another Look`,
      );
    if (!found.query_id) throw new SynclineError('BiQuestionUnsupported', `${label} has no query`);
    return client.get(query, `/queries/${found.query_id}`, { notFound: label, operation: 'read' });
  }
  const path = /^\d+$/.test(ref.query!) ? `/queries/${ref.query}` : `/queries/slug/${ref.query}`;
  return client.get(query, path, { notFound: label, operation: 'read' });
}

/**
 * The database of the query's explore, when the API user may read its connection (see_lookml and
 * access to connections); undefined when it may not, and the name cannot be checked.
 */
async function queryDatabase(
  client: LookerClient,
  q: LookerQuery,
  log: Logger,
): Promise<QuestionDatabase | undefined> {
  const found = await client.get(
    explore,
    `/lookml_models/${encodeURIComponent(q.model)}/explores/${encodeURIComponent(q.view)}`,
    {
      query: { fields: 'connection_name' },
      operation: 'read',
      notFound: `the explore ${q.model}::${q.view} of Looker query ${q.id}`,
    },
  );
  const name = found.connection_name;
  if (!name) return undefined;
  try {
    const conn = await client.get(connection, `/connections/${encodeURIComponent(name)}`, {
      query: { fields: 'name,dialect_name,database' },
      operation: 'read',
    });
    const dialect = conn.dialect_name ?? '';
    return {
      label: `Looker connection "${name}"`,
      type: DIALECTS[dialect],
      engine: dialect,
      database: conn.database ?? undefined,
    };
  } catch (error) {
    if ((error as { reason?: string }).reason !== 'PermissionDenied') throw error;
    log.warn(
      { connection: name },
      'the Looker API user cannot read the connection: its database is not checked',
    );
    return undefined;
  }
}

export async function sqlForWarehouse(
  client: LookerClient,
  ref: LookerRef,
  warehouse: SourceSpec,
  log: Logger,
): Promise<string> {
  const q = await readQuery(client, ref);
  const target = await queryDatabase(client, q, log);
  if (target) assertSameWarehouse(target, warehouse, labelOf(ref));
  const sql = await client.getText(`/queries/${q.id}/run/sql`, {
    notFound: labelOf(ref),
    operation: 'compile',
  });
  return renamed(sql.trim().replace(/;\s*$/, ''), q.fields ?? [], warehouse.type);
}
