import { z } from 'zod';
import {
  connectionStatus,
  gcsCredentials,
  s3Credentials,
  secret,
  snapshotSettings,
  tlsSettings,
} from './common.ts';
import { withRules, type Rule } from './rules.ts';
import { exactlyTheSettingsOf } from './settings-rule.ts';
import { lookerSourceSettings, metabaseSourceSettings } from './bi.ts';

export const SOURCE_TYPES = [
  'postgres',
  'mysql',
  'snowflake',
  'bigquery',
  'files',
  'metabase',
  'looker',
  'sftp',
] as const;
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

/** A host key pin: a public key line ("ssh-ed25519 AAAA... comment") or an ssh-keygen -lf fingerprint line. */
export const SFTP_HOST_KEY_RE =
  /^(((ssh|ecdsa|sk-ssh|sk-ecdsa)-[A-Za-z0-9@.-]+) [A-Za-z0-9+/]+={0,3}( .*)?|([0-9]+ )?SHA256:[A-Za-z0-9+/]{43}( .*)?)$/;

/** The connection settings an sftp Source and an sftp Destination share. */
export const sftpConnection = {
  host,
  port: z.number().int().min(1).max(65535).default(22).describe('TCP port of the SSH server.'),
  user: z.string().min(1).max(256).describe('User to log in as.'),
  password: secret('Password of the user (or use privateKey).').optional(),
  privateKey: secret(
    "Private key of the user, in OpenSSH or PEM format (ssh-keygen writes OpenSSH); its public key is in the server's authorized_keys.",
  ).optional(),
  privateKeyPassphrase: secret('Passphrase of an encrypted privateKey.').optional(),
  hostKey: z
    .string()
    .min(1)
    .max(16384)
    .regex(SFTP_HOST_KEY_RE, 'must be a public key line (ssh-ed25519 AAAA...) or a SHA256: fingerprint')
    .describe(
      "The server's host key, pinned: its public key line (as in the server's /etc/ssh/ssh_host_ed25519_key.pub or " +
        'ssh-keyscan output without the host name), or its fingerprint as ssh-keygen -lf prints it (256 SHA256:... (ED25519), or ' +
        'just SHA256:...). A server presenting another key is refused (SftpHostKeyMismatch) before any credential is sent.',
    ),
  timeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(600)
    .default(30)
    .describe('Most seconds to wait for the connection and login, and for any one SFTP request.'),
};

interface SftpAuth {
  password?: unknown;
  privateKey?: unknown;
  privateKeyPassphrase?: unknown;
  hostKey: string;
}

/** Rules every sftp block keeps (Source and Destination). */
export function sftpRules<T extends SftpAuth>(): Rule<T>[] {
  return [
    {
      cel: 'has(self.password) != has(self.privateKey)',
      check: (s) => (s.password !== undefined) !== (s.privateKey !== undefined),
      message: 'set exactly one of password or privateKey',
    },
    {
      cel: '!has(self.privateKeyPassphrase) || has(self.privateKey)',
      check: (s) => s.privateKeyPassphrase === undefined || s.privateKey !== undefined,
      message: 'privateKeyPassphrase is the passphrase of privateKey: set privateKey too',
      fieldPath: '.privateKeyPassphrase',
    },
  ];
}

export const sftpSourceSettings = withRules(
  z
    .object({
      ...sftpConnection,
      path: z
        .string()
        .min(1)
        .max(4096)
        .default('.')
        .describe(
          "Folder on the server holding the files, absolute or relative to the login's directory (default: that directory). " +
            "A Model's table names a file or glob in it (customers.csv, exports/*.csv.gz); a Model's query, DuckDB SQL, " +
            "reads the files its quoted literals name (read_csv('customers.csv')).",
        ),
      pick: z
        .enum(['newest', 'all'])
        .default('newest')
        .describe(
          "Of the files a Model's glob matches (its table, or each file a query's quoted literal names): newest, the one " +
            'modified last (by name on a tie); all, every one of them (for a table, read as one table whose files must have ' +
            'the same columns).',
        ),
      format: z
        .enum(['csv', 'jsonl', 'parquet'])
        .optional()
        .describe(
          'File format; by default inferred from the file extension (.csv, .jsonl, .parquet, optionally .gz or .zst).',
        ),
      csv: filesSourceSettings.shape.csv,
    })
    .describe(
      "Settings for type sftp: CSV, JSON lines or Parquet files on an SFTP server, downloaded into the run's scratch folder " +
        'and read through DuckDB with the checks of a files Source (a file cut off or malformed fails the run).',
    ),
  sftpRules(),
);

/** The Source types whose connector keeps a warehouse snapshot (SourceConnector.warehouseSnapshot). */
export const WAREHOUSE_SNAPSHOT_SOURCES = ['postgres', 'snowflake', 'bigquery'] as const;

const warehouseSnapshotRule: Rule<{
  type: string;
  snapshot?: { location?: string | undefined } | undefined;
}> = {
  cel: `!has(self.snapshot) || !has(self.snapshot.location) || self.snapshot.location != 'warehouse' || self.type in [${WAREHOUSE_SNAPSHOT_SOURCES.map((t) => `'${t}'`).join(', ')}]`,
  check: (v) =>
    v.snapshot?.location !== 'warehouse' ||
    (WAREHOUSE_SNAPSHOT_SOURCES as readonly string[]).includes(v.type),
  message: `only ${WAREHOUSE_SNAPSHOT_SOURCES.join(', ')} Sources keep a warehouse snapshot: set snapshot.location: diffStore`,
  fieldPath: '.snapshot.location',
};

export const sourceSpec = exactlyTheSettingsOf(
  withRules(
    z
      .object({
        type: z.enum(SOURCE_TYPES).describe('Kind of system the data is stored in.'),
        postgres: postgresSourceSettings.optional(),
        mysql: mysqlSourceSettings.optional(),
        snowflake: snowflakeSourceSettings.optional(),
        bigquery: bigquerySourceSettings.optional(),
        files: filesSourceSettings.optional(),
        metabase: metabaseSourceSettings.optional(),
        looker: lookerSourceSettings.optional(),
        snapshot: snapshotSettings
          .optional()
          .describe(
            "The default of this Source's Syncs for where their snapshot is kept (each Sync's spec.snapshot overrides it field by field).",
          ),
        sftp: sftpSourceSettings.optional(),
      })
      .describe('Where business data is stored. Set type and the settings block of the same name.'),
    [warehouseSnapshotRule],
  ),
  SOURCE_TYPES,
);
export type SourceSpec = z.infer<typeof sourceSpec>;

export const sourceStatus = connectionStatus.describe('Observed state of the Source.');
export type SourceStatus = z.infer<typeof sourceStatus>;
