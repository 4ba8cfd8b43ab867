import { z } from 'zod';

export const GROUP = 'syncline.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Kubernetes object names (DNS-1123 subdomain). */
export const objectName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lowercase DNS-1123 name');

export const localObjectReference = z
  .object({ name: objectName.describe('Name of the referenced object, in the same namespace.') })
  .describe('A reference to an object in the same namespace.');
export type LocalObjectReference = z.infer<typeof localObjectReference>;

export const secretKeySelector = z
  .object({
    name: objectName.describe('Name of the Secret, in the same namespace.'),
    key: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[-._a-zA-Z0-9]+$/, 'must be a valid Secret key')
      .describe('Key within the Secret.'),
  })
  .describe('Selects a key of a Secret in the same namespace.');
export type SecretKeySelector = z.infer<typeof secretKeySelector>;

/**
 * A credential. Only a reference to a Secret is accepted: a plain string here is rejected by the API
 * server ("must be of type object"), so passwords never end up in a resource kept in Git.
 */
export const secretValue = z
  .object({
    secretKeyRef: secretKeySelector.describe('The Secret key that holds the value.'),
  })
  .describe('A credential, read from a Secret key. Plain values are not accepted.');
export type SecretValue = z.infer<typeof secretValue>;

/** A credential field: `description` says what it is; the rest says how to give it. */
export function secret(description: string) {
  return secretValue.describe(
    `${description} Read from a Secret key ({secretKeyRef: {name, key}}); plain values are not accepted.`,
  );
}

/** A header or parameter value that is either plain text or read from a Secret. */
export const valueOrSecret = z.object({
  value: z.string().max(4096).optional().describe('A plain, non-secret value.'),
  valueFrom: secret('Read the value from a Secret key instead.').optional(),
});

export const tlsSettings = z
  .object({
    mode: z
      .enum(['disable', 'require', 'verify-ca', 'verify-full'])
      .default('require')
      .describe(
        'TLS mode, as libpq names them: disable, require (encrypt, do not verify), verify-ca, verify-full.',
      ),
    caCert: secret('PEM CA bundle used to verify the server (verify-ca, verify-full).').optional(),
  })
  .describe('TLS settings for the connection.');

export const s3Credentials = z
  .object({
    region: z.string().max(64).optional().describe('AWS region of the bucket.'),
    endpoint: z
      .string()
      .max(2048)
      .optional()
      .describe('S3-compatible endpoint URL (MinIO, Ceph, R2). Omit for AWS.'),
    forcePathStyle: z.boolean().optional().describe('Address buckets by path instead of virtual host.'),
    accessKeyId: secret('Access key ID. Omit to use workload identity (IRSA, Pod Identity).').optional(),
    secretAccessKey: secret('Secret access key, required with accessKeyId.').optional(),
  })
  .describe('Credentials and endpoint for s3:// URLs.');

export const gcsCredentials = z
  .object({
    endpoint: z.string().max(2048).optional().describe('API endpoint, for emulators. Omit for Google Cloud.'),
    projectId: z.string().max(128).optional().describe('Google Cloud project.'),
    serviceAccountKey: secret('Service-account JSON key. Omit to use workload identity.').optional(),
  })
  .describe('Credentials for gs:// URLs.');

// ---- status ----

/** Where a Sync's snapshot is kept when neither the Sync nor its Source says. */
export const DEFAULT_SNAPSHOT_LOCATION = 'diffStore';
/** The schema (BigQuery: dataset) of a warehouse snapshot when neither the Sync nor its Source names one. */
export const DEFAULT_SNAPSHOT_SCHEMA = 'syncline';
export const SNAPSHOT_LOCATIONS = ['diffStore', 'warehouse'] as const;

/**
 * Where the snapshot of what the destination holds is kept: on a Source, the default of its Syncs; on a
 * Sync, each field overrides the Source's. No defaults here: an absent field inherits.
 */
export const snapshotSettings = z.object({
  location: z
    .enum(SNAPSHOT_LOCATIONS)
    .optional()
    .describe(
      `diffStore (default): the snapshot is Parquet in the diff store and the diff runs in the runner. warehouse: ` +
        "the snapshot is a table of a schema Syncline owns in the Source's own database (postgres, snowflake and bigquery Sources), " +
        'the diff runs there in SQL and only the rows that changed leave it. Switching moves the snapshot; nothing is sent again.',
    ),
  schema: z
    .string()
    .min(1)
    .max(63)
    .regex(/^[a-z_][a-z0-9_]*$/, 'must be a lower-case SQL identifier')
    .optional()
    .describe(
      `For location warehouse: the schema (BigQuery: dataset) of the snapshot tables, default ${DEFAULT_SNAPSHOT_SCHEMA}. The Source user needs USAGE and CREATE ` +
        'on it (or CREATE on the database, to create it) and TEMPORARY on the database; the connection check names a missing grant.',
    ),
});
export type SnapshotSettings = z.infer<typeof snapshotSettings>;

export const condition = z.object({
  type: z.string().max(316).describe('Type of condition in CamelCase: Ready, Reconciling, Stalled, Running.'),
  status: z.enum(['True', 'False', 'Unknown']).describe('Status of the condition.'),
  observedGeneration: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe('The .metadata.generation the condition was set from.'),
  lastTransitionTime: z.string().describe('When the condition last changed status (RFC 3339).'),
  reason: z
    .string()
    .max(1024)
    .describe('A stable, CamelCase, programmatic identifier of why the condition is in its state.'),
  message: z.string().max(32768).describe('A human-readable explanation with what to do about it.'),
});
export type Condition = z.infer<typeof condition>;

export const conditions = z
  .array(condition)
  .max(16)
  .optional()
  .describe('Latest observations of the object, following the Kubernetes API conventions and kstatus.')
  .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });

/** Status shared by Source, Model and Destination. */
export const connectionStatus = z.object({
  observedGeneration: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe('The .metadata.generation last reconciled.'),
  conditions,
  lastCheckedAt: z.string().optional().describe('When the connection was last checked (RFC 3339).'),
  checkedHash: z
    .string()
    .max(128)
    .optional()
    .describe('Hash of the spec and referenced Secret versions the last connection check ran against.'),
});
