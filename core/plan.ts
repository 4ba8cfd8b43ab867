import { z } from 'zod';
import {
  API_VERSION,
  RUN_TRIGGERS,
  destinationSpec,
  gcsCredentials,
  modelSpec,
  s3Credentials,
  sourceSpec,
  syncSpec,
} from '../crds/index.ts';

const named = <S extends z.ZodType>(spec: S) =>
  z.object({
    name: z.string(),
    uid: z.string().optional(),
    generation: z.number().int().optional(),
    spec,
  });

export const diffStoreSettings = z.object({
  url: z.string().describe('s3://bucket/prefix, gs://bucket/prefix or file:///path'),
  s3: s3Credentials.optional(),
  gcs: gcsCredentials.optional(),
});
export type DiffStoreSettings = z.infer<typeof diffStoreSettings>;

/**
 * Everything one run needs, resolved by the operator (or the CLI) when the run starts and fixed for the
 * run even if the resources change meanwhile. Credentials stay `secretKeyRef`s; the runner resolves them
 * from its environment (see secrets.ts).
 */
export const runPlan = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('RunPlan'),
  runId: z.string().min(1).max(128),
  namespace: z.string(),
  trigger: z.enum(RUN_TRIGGERS).default('manual'),
  fullResync: z.boolean().default(false),
  /** Compute the diff and report it, deliver and commit nothing. */
  dryRun: z.boolean().default(false),
  sync: named(syncSpec),
  model: named(modelSpec),
  source: named(sourceSpec),
  /** The BI tool Source (metabase, looker) a Model's question is read from, with as: sql (issue 16). */
  biSource: named(sourceSpec).optional(),
  destination: named(destinationSpec),
  diffStore: diffStoreSettings,
  runner: z
    .object({
      memoryLimit: z.string().optional(),
      tmpDir: z.string().optional(),
      debuggerRetentionDays: z.number().int().min(0).default(7),
      /** How often delivered progress is committed while delivering (default 30 s). */
      checkpointSeconds: z.number().min(0.05).max(86400).optional(),
    })
    .default({ debuggerRetentionDays: 7 }),
});
export type RunPlan = z.infer<typeof runPlan>;

/** A connection check of one Source or Destination, run by a short Job (or the CLI). */
export const checkPlan = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('CheckPlan'),
  namespace: z.string(),
  target: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('Source'), name: z.string(), spec: sourceSpec }),
    z.object({ kind: z.literal('Destination'), name: z.string(), spec: destinationSpec }),
  ]),
  /**
   * Destinations: the objects the Syncs referencing it target (target.object and associations), whose
   * fields the check discovers where the connector can (DestinationConnector.discover).
   */
  objects: z.array(z.string().min(1).max(255)).max(200).default([]),
  /** Where the check writes what it discovered (`<namespace>/_destinations/<name>/objects.json`). */
  diffStore: diffStoreSettings.optional(),
});
export type CheckPlan = z.infer<typeof checkPlan>;

/**
 * What `syncline drop-snapshot` does: drop the tables of a deleted Sync's warehouse snapshot (snapshotPolicy:
 * delete), in the schema of its Source's database. The operator cannot reach the warehouse itself.
 */
export const snapshotDropPlan = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('SnapshotDropPlan'),
  namespace: z.string(),
  sync: z.string(),
  source: named(sourceSpec),
  schema: z.string(),
});
export type SnapshotDropPlan = z.infer<typeof snapshotDropPlan>;

/**
 * What `syncline count-segment` does: count the rows of a segment Model's compiled SQL on its Source, for
 * the size preview in the Model's status when its definition changes (the operator cannot query a Source).
 */
export const segmentCountPlan = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('SegmentCountPlan'),
  namespace: z.string(),
  model: z.string(),
  source: named(sourceSpec),
  sql: z.string().min(1),
  /** Of the compiled SQL (Model.status.segment.definitionHash): the count is of exactly this definition. */
  definitionHash: z.string(),
});
export type SegmentCountPlan = z.infer<typeof segmentCountPlan>;
