import { z } from 'zod';
import { connectionStatus, localObjectReference } from './common.ts';
import { withRules } from './rules.ts';
import { lookerQueryRef, metabaseQuestionRef } from './bi.ts';
import { filterableColumn, relationship, segmentSpec, segmentStatus } from './segment.ts';

const columnName = z.string().min(1).max(255);

export const dbtModelRef = z
  .object({
    model: z
      .string()
      .min(1)
      .max(512)
      .describe('Name of the dbt model (as in ref()), optionally package-qualified: package.model.'),
    manifest: withRules(
      z
        .object({
          configMapRef: z
            .object({
              name: z.string().min(1).max(253).describe('ConfigMap name, in the same namespace.'),
              key: z.string().min(1).max(253).default('manifest.json').describe('Key holding manifest.json.'),
            })
            .optional()
            .describe('Read manifest.json from a ConfigMap.'),
          url: z
            .string()
            .min(1)
            .max(2048)
            .optional()
            .describe('Read manifest.json from s3://, gs:// or an https:// URL.'),
          path: z.string().min(1).max(4096).optional().describe('Read manifest.json from a local path.'),
        })
        .describe('Where the compiled dbt manifest.json is.'),
      [
        {
          cel: '[has(self.configMapRef), has(self.url), has(self.path)].filter(x, x).size() == 1',
          check: (m) => [m.configMapRef, m.url, m.path].filter((x) => x !== undefined).length === 1,
          message: 'set exactly one of manifest.configMapRef, manifest.url or manifest.path',
        },
      ],
    ),
  })
  .describe("A dbt model; Syncline reads its relation (database, schema, alias) from dbt's manifest.json.");

export const modelSpec = withRules(
  z
    .object({
      sourceRef: localObjectReference.describe('The Source to query.'),
      query: z
        .string()
        .min(1)
        .max(262144)
        .optional()
        .describe("SQL in the Source's dialect returning the rows."),
      table: z
        .string()
        .min(1)
        .max(1024)
        .optional()
        .describe(
          'A table or view (optionally schema-qualified) whose rows are the model; for files, a file name.',
        ),
      dbt: dbtModelRef.optional(),
      metabase: metabaseQuestionRef.optional(),
      looker: lookerQueryRef.optional(),
      primaryKey: columnName
        .optional()
        .describe(
          'Column whose value uniquely identifies each row. Required, except for a dbt model that declares a unique_key.',
        ),
      description: z.string().max(4096).optional().describe('What the rows are, for people.'),
      segment: segmentSpec
        .optional()
        .describe('A segment of another Model, declared as conditions instead of SQL (docs/audiences.md).'),
      filterable: z
        .array(filterableColumn)
        .max(500)
        .optional()
        .describe('Columns segments of this Model (or related conditions on it) may filter on.'),
      relationships: z
        .array(relationship)
        .max(50)
        .optional()
        .describe('Related Models segments of this Model may put conditions on (orders, events).'),
    })
    .describe(
      'Which rows to pull from a Source: exactly one of query, table, dbt or segment, and a primary key.',
    ),
  [
    {
      cel: 'has(self.segment) || has(self.metabase) || has(self.looker) || [has(self.query), has(self.table), has(self.dbt)].filter(x, x).size() == 1',
      check: (m) =>
        m.segment !== undefined ||
        m.metabase !== undefined ||
        m.looker !== undefined ||
        [m.query, m.table, m.dbt].filter((x) => x !== undefined).length === 1,
      message: 'set exactly one of query, table or dbt',
    },
    {
      cel: '!(has(self.metabase) || has(self.looker)) || [has(self.query), has(self.table), has(self.dbt), has(self.metabase), has(self.looker)].filter(x, x).size() == 1',
      check: (m) =>
        (m.metabase === undefined && m.looker === undefined) ||
        [m.query, m.table, m.dbt, m.metabase, m.looker].filter((x) => x !== undefined).length === 1,
      message: 'a Model of a metabase or looker question sets none of query, table, dbt, and not both',
    },
    {
      cel: '!has(self.segment) || [has(self.query), has(self.table), has(self.dbt)].filter(x, x).size() == 0',
      check: (m) => m.segment === undefined || [m.query, m.table, m.dbt].every((x) => x === undefined),
      message: 'a segment Model sets none of query, table or dbt: its SQL is compiled from the segment',
    },
    {
      cel: 'has(self.primaryKey) || has(self.dbt) || has(self.segment)',
      check: (m) => m.primaryKey !== undefined || m.dbt !== undefined || m.segment !== undefined,
      message: 'primaryKey is required: name the column that uniquely identifies each row',
      fieldPath: '.primaryKey',
    },
  ],
);
export type ModelSpec = z.infer<typeof modelSpec>;

export const modelColumn = z.object({
  name: z.string().max(255).describe('Column name.'),
  type: z.string().max(255).describe('Column type, as the engine stages it.'),
});

export const modelStatus = connectionStatus
  .extend({
    columns: z
      .array(modelColumn)
      .max(2000)
      .optional()
      .describe('Columns of the model as seen by the last run.'),
    fingerprint: z
      .string()
      .max(128)
      .optional()
      .describe('Hash of the column names, types and primary key seen by the last run.'),
    compiledSql: z
      .string()
      .max(262144)
      .optional()
      .describe("A segment's conditions compiled to the Source's SQL: what its runs query."),
    segment: segmentStatus.optional(),
  })
  .describe('Observed state of the Model.');
export type ModelStatus = z.infer<typeof modelStatus>;
