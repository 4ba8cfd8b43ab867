import { z } from 'zod';
import { connectionStatus, localObjectReference } from './common.ts';
import { withRules } from './rules.ts';

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
      primaryKey: columnName
        .optional()
        .describe(
          'Column whose value uniquely identifies each row. Required, except for a dbt model that declares a unique_key.',
        ),
      description: z.string().max(4096).optional().describe('What the rows are, for people.'),
    })
    .describe('Which rows to pull from a Source: exactly one of query, table or dbt, and a primary key.'),
  [
    {
      cel: '[has(self.query), has(self.table), has(self.dbt)].filter(x, x).size() == 1',
      check: (m) => [m.query, m.table, m.dbt].filter((x) => x !== undefined).length === 1,
      message: 'set exactly one of query, table or dbt',
    },
    {
      cel: 'has(self.primaryKey) || has(self.dbt)',
      check: (m) => m.primaryKey !== undefined || m.dbt !== undefined,
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
  })
  .describe('Observed state of the Model.');
export type ModelStatus = z.infer<typeof modelStatus>;
