import { z } from 'zod';
import { runCounts, RUN_RESULTS } from '../crds/index.ts';

export const phaseTimings = z.object({
  queryMs: z.number().optional(),
  validateMs: z.number().optional(),
  diffMs: z.number().optional(),
  deliverMs: z.number().optional(),
  commitMs: z.number().optional(),
  totalMs: z.number().optional(),
});

/** Rejected rows a run names (with key and reason) in its summary; the rest are counted. */
export const REJECTED_SAMPLE = 100;

export const rejectedRow = z.object({
  key: z.string(),
  operation: z.string(),
  reason: z.string(),
});

/**
 * The report of one run: written to the diff store beside the snapshot (runs/<runId>.json), printed by
 * the CLI, and (compacted) written to the runner pod's termination message for the operator.
 */
export const runSummary = z.object({
  apiVersion: z.literal('syncline.io/v1alpha1'),
  kind: z.literal('RunSummary'),
  runId: z.string(),
  namespace: z.string(),
  sync: z.string(),
  mode: z.string(),
  dryRun: z.boolean().default(false),
  fullResync: z.boolean().default(false),
  startedAt: z.string(),
  finishedAt: z.string(),
  result: z.enum(RUN_RESULTS),
  /** CamelCase reason for a failed run (e.g. DuplicatePrimaryKeys, SourceQueryFailed, SafetyRailTripped). */
  reason: z.string().optional(),
  /** The stage a failed run failed in: open, query, validate, diff, fetch, guard, intent, deliver, commit. */
  stage: z.string().optional(),
  message: z.string(),
  counts: runCounts,
  /** Planned operations by kind: insert, update, upsert, delete, clear, archive. */
  operations: z.record(z.string(), z.number()).default({}),
  /** Delivered and failed operations by kind (counts.delivered and counts.failed, split). */
  outcomes: z.record(z.string(), z.object({ delivered: z.number(), failed: z.number() })).optional(),
  timings: phaseTimings,
  /** Commits of delivered progress made while delivering. */
  checkpoints: z.number().int().min(0).optional(),
  /**
   * How the model was read: every row, or only keys and row hashes (the source hashing) with the rows
   * that changed read afterwards; and the function of the hashes the committed snapshot keeps.
   */
  staging: z
    .object({
      keysOnly: z.boolean(),
      fetchedRows: z.number().optional(),
      hashFunction: z.string(),
      /**
       * The diff ran in the source against a warehouse snapshot: only `rows` model rows and `previousRows`
       * snapshot rows left it (none when a checksum proved nothing differs: `byChecksum`).
       */
      narrowed: z.object({ rows: z.number(), previousRows: z.number(), byChecksum: z.boolean() }).optional(),
    })
    .optional(),
  rejected: z.array(rejectedRow).max(REJECTED_SAMPLE).default([]),
  invalidKeys: z
    .object({ nullCount: z.number(), duplicateCount: z.number(), sample: z.array(z.string()).max(20) })
    .optional(),
  /** Model columns as staged, and their fingerprint (names, types, primary key). */
  columns: z.array(z.object({ name: z.string(), type: z.string() })).default([]),
  modelFingerprint: z.string().optional(),
  /** Diff-store path of the snapshot this run committed (absent when nothing was committed). */
  snapshot: z.string().optional(),
  /** Sample rows of each planned operation, for `syncline plan`. */
  samples: z.record(z.string(), z.array(z.record(z.string(), z.unknown()))).optional(),
});
export type RunSummary = z.infer<typeof runSummary>;

/** Kubernetes keeps at most 4096 bytes of a termination message. */
export const TERMINATION_MESSAGE_LIMIT = 4096;
