// The parts of Looker API 4.0 answers the connector reads (Look, Query, LookmlModelExplore, DBConnection
// of spec/Looker.4.0.oas.json), as zod schemas: anything else in them is passed over.
import { z } from 'zod';

const id = z.union([z.string(), z.number()]).transform(String);

export const look = z.looseObject({
  id,
  title: z.string().nullable().optional(),
  deleted: z.boolean().nullable().optional(),
  query_id: id.nullable().optional(),
});

export const query = z.looseObject({
  id,
  model: z.string(),
  view: z.string(),
  fields: z.array(z.string()).nullable().optional(),
  limit: z.string().nullable().optional(),
  slug: z.string().nullable().optional(),
});
export type LookerQuery = z.infer<typeof query>;

export const explore = z.looseObject({ connection_name: z.string().nullable().optional() });

export const connection = z.looseObject({
  name: z.string().nullable().optional(),
  dialect_name: z.string().nullable().optional(),
  database: z.string().nullable().optional(),
});
