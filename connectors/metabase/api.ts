// The parts of Metabase's API answers the connector reads (GET /api/card/:id, GET /api/database/:id,
// POST /api/dataset/native), as zod schemas: anything else in them is passed over.
import { z } from 'zod';

export const templateTag = z.looseObject({
  type: z.string(),
  name: z.string().optional(),
  'display-name': z.string().optional(),
  default: z.unknown().optional(),
  required: z.boolean().optional(),
});
export type TemplateTag = z.infer<typeof templateTag>;

export const resultColumn = z.looseObject({
  name: z.string(),
  display_name: z.string().optional(),
  base_type: z.string().optional(),
});

export const card = z.looseObject({
  id: z.number().int(),
  name: z.string(),
  archived: z.boolean().optional(),
  database_id: z.number().int().nullable().optional(),
  query_type: z.string().nullable().optional(),
  dataset_query: z.record(z.string(), z.unknown()),
  result_metadata: z.array(resultColumn).nullable().optional(),
});
export type Card = z.infer<typeof card>;

export const database = z.looseObject({
  id: z.number().int(),
  name: z.string(),
  engine: z.string(),
  // Only administrators see a database's connection details; the API key's group may not.
  details: z.record(z.string(), z.unknown()).nullable().optional(),
});
export type Database = z.infer<typeof database>;

export const nativeForm = z.looseObject({
  query: z.string(),
  params: z.array(z.unknown()).nullable().optional(),
});

/** A card's dataset_query in either form Metabase stores: legacy ({type, native}) or MBQL 5 ({stages}). */
const legacyQuery = z.looseObject({
  type: z.enum(['native', 'query']),
  database: z.number().int().nullable().optional(),
  native: z
    .looseObject({ query: z.string(), 'template-tags': z.record(z.string(), templateTag).optional() })
    .optional(),
});

const stagedQuery = z.looseObject({
  'lib/type': z.literal('mbql/query'),
  database: z.number().int().nullable().optional(),
  stages: z
    .array(
      z.looseObject({
        'lib/type': z.string(),
        native: z.string().optional(),
        'template-tags': z.record(z.string(), templateTag).optional(),
      }),
    )
    .min(1),
});

/** What a question's query is: its database, and its SQL and template tags when it is written in SQL. */
export interface QuestionQuery {
  database: number | undefined;
  native?: { sql: string; tags: TemplateTag[] };
}

export function questionQuery(datasetQuery: unknown): QuestionQuery | undefined {
  const legacy = legacyQuery.safeParse(datasetQuery);
  if (legacy.success) {
    const { database, native, type } = legacy.data;
    return {
      database: database ?? undefined,
      ...(type === 'native' && native
        ? { native: { sql: native.query, tags: Object.values(native['template-tags'] ?? {}) } }
        : {}),
    };
  }
  const staged = stagedQuery.safeParse(datasetQuery);
  if (!staged.success) return undefined;
  const first = staged.data.stages[0]!;
  const only = staged.data.stages.length === 1 && first['lib/type'] === 'mbql.stage/native';
  return {
    database: staged.data.database ?? undefined,
    ...(only && first.native !== undefined
      ? { native: { sql: first.native, tags: Object.values(first['template-tags'] ?? {}) } }
      : {}),
  };
}
