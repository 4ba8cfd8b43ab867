import { z } from 'zod';
import {
  connectionStatus,
  gcsCredentials,
  s3Credentials,
  secret,
  snapshotSettings,
  tlsSettings,
} from './common.ts';
import { exactlyTheSettingsOf } from './settings-rule.ts';

export const SOURCE_TYPES = ['postgres', 'mysql', 'snowflake', 'bigquery', 'files'] as const;
export type SourceType = (typeof SOURCE_TYPES)[number];

const host = z.string().min(1).max(253).describe('Host name or IP address of the server.');

export const postgresSourceSettings = z
  .object({
    host,
    port: z.number().int().min(1).max(65535).default(5432).describe('TCP port.'),
    database: z.string().min(1).max(63).describe('Database to connect to.'),
    user: z.string().min(1).max(63).describe('User to connect as.'),
    password: secret('Password of the user.').optional(),
    tls: tlsSettings.optional(),
    statementTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('Cancel a model query that runs longer than this.'),
  })
  .describe(
    'Connection settings for type postgres. The model runs as one statement in a READ ONLY transaction ' +
      '(anything else fails with ModelNotReadOnly). On PostgreSQL 14+ a resync reads only primary keys and row hashes ' +
      '(hash_record_extended, possibly with parallel workers within max_parallel_workers_per_gather), then the ' +
      'rows whose hash changed, in one read-only REPEATABLE READ transaction; the user needs only SELECT.',
  );

export const mysqlSourceSettings = z
  .object({
    host,
    port: z.number().int().min(1).max(65535).default(3306).describe('TCP port.'),
    database: z.string().min(1).max(64).describe('Database (schema) to connect to.'),
    user: z.string().min(1).max(80).describe('User to connect as.'),
    password: secret('Password of the user.').optional(),
    tls: tlsSettings.optional(),
  })
  .describe(
    'Connection settings for type mysql (MySQL or MariaDB). The model must be one query (it is prepared as a ' +
      'subquery first) and runs in START TRANSACTION READ ONLY; give the user only SELECT.',
  );

export const snowflakeSourceSettings = z
  .object({
    account: z.string().min(1).max(255).describe('Account identifier, e.g. myorg-myaccount.'),
    user: z.string().min(1).max(255).describe('User to connect as.'),
    password: secret('Password (use privateKey for key-pair authentication instead).').optional(),
    privateKey: secret('PEM private key for key-pair (JWT) authentication.').optional(),
    privateKeyPassphrase: secret('Passphrase of an encrypted privateKey.').optional(),
    warehouse: z.string().min(1).max(255).describe('Warehouse that runs the model queries.'),
    role: z
      .string()
      .max(255)
      .optional()
      .describe(
        'Role to use. Snowflake has no read-only transaction: Syncline reads the model as a subquery with ' +
          'MULTI_STATEMENT_COUNT=1, but only a role with nothing beyond USAGE and SELECT keeps it from writing.',
      ),
    database: z.string().min(1).max(255).describe('Default database.'),
    schema: z.string().max(255).optional().describe('Default schema.'),
    statementTimeoutSeconds: z.number().int().min(1).optional().describe('Cancel a query that runs longer.'),
    host: z.string().max(2048).optional().describe('Override the account URL host (private link, testing).'),
  })
  .describe('Connection settings for type snowflake.');

export const bigquerySourceSettings = z
  .object({
    project: z.string().min(1).max(128).describe('Google Cloud project that runs the query jobs.'),
    dataset: z.string().max(1024).optional().describe('Default dataset for unqualified table names.'),
    location: z.string().max(64).optional().describe('Location of the datasets, e.g. EU or us-central1.'),
    serviceAccountKey: secret('Service-account JSON key. Omit to use workload identity.').optional(),
    apiEndpoint: z
      .string()
      .max(2048)
      .optional()
      .describe('API endpoint, for emulators. Omit for Google Cloud.'),
  })
  .describe(
    'Connection settings for type bigquery. The model is read as a subquery, and a dry run must report it as ' +
      'a SELECT (not a script, DML or DDL); grant only BigQuery Job User and Data Viewer.',
  );

export const filesSourceSettings = z
  .object({
    url: z
      .string()
      .min(1)
      .max(2048)
      .describe(
        'Folder holding the files: a local path or file:// URL, s3://bucket/prefix or gs://bucket/prefix. ' +
          "A Model's table and relative paths in its query resolve against it.",
      ),
    format: z
      .enum(['csv', 'jsonl', 'parquet'])
      .optional()
      .describe('File format; by default inferred from the file extension.'),
    csv: z
      .object({
        delimiter: z.string().min(1).max(4).default(',').describe('Field delimiter.'),
        header: z.boolean().default(true).describe('Whether the first line holds the column names.'),
      })
      .optional()
      .describe('CSV options.'),
    s3: s3Credentials.optional(),
    gcs: gcsCredentials.optional(),
  })
  .describe('Settings for type files: CSV, JSON lines or Parquet files, read through DuckDB.');

export const sourceSpec = exactlyTheSettingsOf(
  z
    .object({
      type: z.enum(SOURCE_TYPES).describe('Kind of system the data is stored in.'),
      postgres: postgresSourceSettings.optional(),
      mysql: mysqlSourceSettings.optional(),
      snowflake: snowflakeSourceSettings.optional(),
      bigquery: bigquerySourceSettings.optional(),
      files: filesSourceSettings.optional(),
      snapshot: snapshotSettings
        .optional()
        .describe(
          "The default of this Source's Syncs for where their snapshot is kept (each Sync's spec.snapshot overrides it field by field).",
        ),
    })
    .describe('Where business data is stored. Set type and the settings block of the same name.'),
  SOURCE_TYPES,
);
export type SourceSpec = z.infer<typeof sourceSpec>;

export const sourceStatus = connectionStatus.describe('Observed state of the Source.');
export type SourceStatus = z.infer<typeof sourceStatus>;
