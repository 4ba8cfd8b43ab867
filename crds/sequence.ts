import { z } from 'zod';
import { conditions, objectName } from './common.ts';
import { withRules, type Rule } from './rules.ts';
import { DEFAULT_HISTORY_LIMIT, RUN_RESULTS, RUN_TRIGGERS, schedule } from './sync.ts';

/** The most steps one Sequence may have. */
export const MAX_SEQUENCE_STEPS = 20;

/** What a failed step does to the rest of the run: stop it (the default), or go on with the next step. */
export const STEP_ON_FAILURE = ['stop', 'continue'] as const;
export type StepOnFailure = (typeof STEP_ON_FAILURE)[number];

/**
 * Where a step of a run is: Waiting (not reached yet), Pending (its Sync's run requested, not started),
 * Running, a result once its Sync's run finished, or Skipped (an earlier step failed and stopped the run).
 */
export const STEP_PHASES = ['Waiting', 'Pending', 'Running', ...RUN_RESULTS, 'Skipped'] as const;
export type StepPhase = (typeof STEP_PHASES)[number];

// ---- spec ----

interface CelValidation {
  rule: string;
  message: string;
  fieldPath?: string;
}

/** The problems the Sync's own schedule schema finds in a schedule (its messages). */
function syncScheduleMessages(value: unknown): string[] {
  const parsed = schedule.safeParse(value);
  return parsed.success ? [] : parsed.error.issues.map((i) => i.message);
}

/**
 * The Sync's schedule rules that concern interval, cron and timeZone, said once in crds/sync.ts: the same
 * CEL for the API server, and (for the CLI) the same check, which is the Sync's schedule schema itself.
 */
function scheduleRules<T>(): Rule<T>[] {
  const validations = (schedule.meta()?.['x-kubernetes-validations'] ?? []) as CelValidation[];
  return validations
    .filter((v) => !v.rule.includes('triggers'))
    .map((v) => ({
      cel: v.rule,
      message: v.message,
      ...(v.fieldPath ? { fieldPath: v.fieldPath } : {}),
      check: (value: T) => !syncScheduleMessages(value).includes(v.message),
    }));
}

const { interval, cron, timeZone } = schedule.shape;

/**
 * When a Sequence runs: the interval, cron and timeZone of a Sync's schedule, with its rules. Not its
 * triggers: a Sequence starts on its schedule or on request, and its steps are the Syncs it runs.
 */
export const sequenceSchedule = withRules(
  z
    .object({ interval, cron, timeZone })
    .describe(
      'When the Sequence runs: every interval or on a cron schedule. With neither, it runs only when ' +
        'requested (the syncline.io/run-requested-at annotation).',
    ),
  scheduleRules(),
);
export type SequenceSchedule = z.infer<typeof sequenceSchedule>;

export const sequenceStep = z
  .object({
    sync: objectName.describe('The Sync this step runs, in the same namespace.'),
    onFailure: z
      .enum(STEP_ON_FAILURE)
      .default('stop')
      .describe(
        'stop (the default): a failed run of this step ends the sequence run as Failed and the later steps ' +
          'do not run. continue: the next step runs anyway, and the sequence run is PartiallySucceeded.',
      ),
    fullResync: z
      .boolean()
      .optional()
      .describe("Run this step's Sync as a full resync: every row sent again, the snapshot ignored."),
  })
  .describe('One step: a run of a Sync, requested once the steps before it have finished.');
export type SequenceStep = z.infer<typeof sequenceStep>;

/** Every step names a different Sync (a rule of the spec, for the API server and the CLI). */
export const UNIQUE_STEPS_RULE: Rule<{ steps: { sync: string }[] }> = {
  cel: 'self.steps.all(s, self.steps.exists_one(t, t.sync == s.sync))',
  check: (spec) => new Set(spec.steps.map((s) => s.sync)).size === spec.steps.length,
  message: 'steps must name each Sync once: a Sequence runs a Sync at most once per run',
  fieldPath: '.steps',
};

export const sequenceSpec = withRules(
  z
    .object({
      steps: z
        .array(sequenceStep)
        .min(1)
        .max(MAX_SEQUENCE_STEPS)
        .describe(
          'The Syncs to run, in order (parent objects before children): each step starts when the one ' +
            'before it has finished.',
        ),
      schedule: sequenceSchedule.optional(),
      paused: z
        .boolean()
        .default(false)
        .describe(
          'Start no run; a run in progress requests no further step (the step running finishes) until unpaused.',
        ),
      historyLimit: z
        .number()
        .int()
        .min(1)
        .max(100)
        .default(DEFAULT_HISTORY_LIMIT)
        .describe('Finished runs kept in status.history.'),
    })
    .describe('Syncs run one after the other, as one run, on a schedule or on request.'),
  [UNIQUE_STEPS_RULE],
);
export type SequenceSpec = z.infer<typeof sequenceSpec>;

// ---- status ----

export const sequenceStepRecord = z.object({
  sync: z.string().max(253).describe('The Sync of the step.'),
  runId: z.string().max(128).optional().describe('The run of the Sync this step requested (its run ID).'),
  phase: z
    .enum(STEP_PHASES)
    .describe(
      "Waiting (not reached), Pending (requested), Running, the run's result, or Skipped (a step before failed).",
    ),
  onFailure: z.enum(STEP_ON_FAILURE).optional().describe('What a failure of this step did to the run.'),
  fullResync: z.boolean().optional().describe('Whether the step asked for a full resync.'),
  startedAt: z.string().optional().describe("When the step's run started (RFC 3339)."),
  finishedAt: z.string().optional().describe("When the step's run finished (RFC 3339)."),
  reason: z.string().max(1024).optional().describe('CamelCase reason of a failure.'),
  message: z.string().max(4096).optional().describe('What happened to the step; for a failure, what to do.'),
});
export type SequenceStepRecord = z.infer<typeof sequenceStepRecord>;

export const sequenceRunRecord = z.object({
  id: z.string().max(128).describe('Run ID: <sequence>-<run key>.'),
  trigger: z.enum(RUN_TRIGGERS).optional().describe('What started the run: schedule or manual.'),
  startedAt: z.string().describe('When the run started (RFC 3339).'),
  finishedAt: z.string().optional().describe('When the run finished (RFC 3339).'),
  result: z
    .enum(RUN_RESULTS)
    .optional()
    .describe(
      'Succeeded: every step succeeded. PartiallySucceeded: every step ran, and one partially succeeded ' +
        '(rows rejected) or failed with onFailure continue. Failed: a step with onFailure stop failed.',
    ),
  reason: z.string().max(1024).optional().describe('CamelCase reason of a failure: that of the failed step.'),
  message: z.string().max(4096).optional().describe('What happened, naming the step.'),
  steps: z.array(sequenceStepRecord).max(MAX_SEQUENCE_STEPS).describe('The steps, in order.'),
});
export type SequenceRunRecord = z.infer<typeof sequenceRunRecord>;

export const SEQUENCE_PHASES = ['Pending', 'Running', ...RUN_RESULTS] as const;

export const sequenceStatus = z
  .object({
    observedGeneration: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('The .metadata.generation last reconciled.'),
    conditions,
    phase: z
      .enum(SEQUENCE_PHASES)
      .optional()
      .describe('For display only; use conditions for decisions. Pending until the first run.'),
    order: z.string().max(2048).optional().describe('The steps in order, for kubectl get.'),
    schedule: z.string().max(512).optional().describe('The schedule in words, for kubectl get.'),
    nextRunAt: z.string().optional().describe('When the next scheduled run is due (RFC 3339).'),
    skippedRuns: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('Scheduled runs skipped because one was still active.'),
    handledRunRequest: z
      .string()
      .max(128)
      .optional()
      .describe('The last run-requested-at annotation acted on.'),
    activeRun: sequenceRunRecord.optional().describe('The run in progress, if any.'),
    lastRun: sequenceRunRecord.optional().describe('The last finished run.'),
    history: z.array(sequenceRunRecord).max(100).optional().describe('Recent finished runs, newest first.'),
  })
  .describe('Observed state of the Sequence.');
export type SequenceStatus = z.infer<typeof sequenceStatus>;
