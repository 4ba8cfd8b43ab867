// Request bodies of the Metabase endpoints the emulator answers, as Metabase's API reference documents
// them (https://www.metabase.com/docs/latest/api): POST /api/dataset/native takes a dataset query
// (database, plus a native or MBQL query) and `pretty`; POST /api/card/:id/query/:export-format takes
// `format_rows`, `pivot_results` and `parameters` (as JSON, or as a form whose parameters field holds JSON).
import { z } from 'zod';

export const nativeQuery = z.looseObject({
  query: z.string().min(1),
  'template-tags': z
    .record(
      z.string(),
      z.looseObject({ type: z.string(), name: z.string(), default: z.unknown().optional() }),
    )
    .optional(),
});

export const mbqlQuery = z.looseObject({
  'source-table': z.number().int(),
  fields: z.array(z.tuple([z.literal('field'), z.number().int(), z.unknown()])).optional(),
  limit: z.number().int().min(1).optional(),
});

export const datasetQuery = z.looseObject({
  database: z.number().int().min(1),
  type: z.enum(['native', 'query']),
  native: nativeQuery.optional(),
  query: mbqlQuery.optional(),
});
export type DatasetQuery = z.infer<typeof datasetQuery>;

export const nativeRequest = datasetQuery.extend({ pretty: z.boolean().nullable().optional() });

export const exportRequest = z.looseObject({
  format_rows: z.union([z.boolean(), z.enum(['true', 'false'])]).optional(),
  pivot_results: z.union([z.boolean(), z.enum(['true', 'false'])]).optional(),
  parameters: z.union([z.array(z.unknown()), z.string()]).optional(),
});

export const EXPORT_FORMATS = ['csv', 'json', 'xlsx', 'api'] as const;
