import { z } from 'zod';
import { conditions, localObjectReference, objectName, snapshotSettings } from './common.ts';
import { CRON_RE, CRON_RE_SOURCE, GO_DURATION_RE, celString, parseGoDuration, withRules } from './rules.ts';

export const SYNC_MODES = ['upsert', 'update', 'insert', 'all', 'archive'] as const;
export type SyncMode = (typeof SYNC_MODES)[number];

export const DELETE_BEHAVIORS = ['ignore', 'clear', 'delete'] as const;
/** The largest share of synced records one run may delete or clear, unless spec.safety says otherwise. */
export const DEFAULT_MAX_DELETE_SHARE = 0.5;
/** Retries of a transient delivery failure before a row is rejected, unless spec.delivery says otherwise. */
export const DEFAULT_MAX_RETRIES = 5;
/** Finished runs a Sync keeps in status and as Jobs, unless spec.historyLimit says otherwise. */
export const DEFAULT_HISTORY_LIMIT = 10;
export type DeleteBehavior = (typeof DELETE_BEHAVIORS)[number];

export const MIN_INTERVAL_MS = 10_000;

/** A size DuckDB takes as its memory limit: 512MB, 1GB, 1.5 GB, 320MiB (decimal or binary units). */
export const MEMORY_LIMIT_RE = /^[0-9]+(\.[0-9]+)? ?([KkMmGgTt]i?[Bb]|[Bb])$/;
export const MEMORY_LIMIT_MESSAGE =
  'must be a size with a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. 512MB, 1GB, 1.5GB or 320MiB';

export const mapping = withRules(
  z
    .object({
      to: z
        .string()
        .min(1)
        .max(256)
        .describe('Destination field. Dots address nested fields of JSON destinations: address.city.'),
      from: z.string().min(1).max(255).optional().describe('Model column whose value is sent.'),
      value: z
        .string()
        .max(8192)
        .optional()
        .describe('A static value sent for every row, as text; valueType says how to send it.'),
      valueType: z
        .enum(['string', 'number', 'boolean', 'json'])
        .default('string')
        .describe('How a static value is sent: as a string, a number, a boolean, or parsed JSON.'),
      template: z
        .string()
        .min(1)
        .max(8192)
        .optional()
        .describe(
          'A Liquid template over the row, for computed fields: {{ row.first_name }} {{ row.last_name }}.',
        ),
    })
    .describe(
      'One destination field and where its value comes from: a column, a static value or a template.',
    ),
  [
    {
      cel: '[has(self.from), has(self.value), has(self.template)].filter(x, x).size() == 1',
      check: (m) => [m.from, m.value, m.template].filter((x) => x !== undefined).length === 1,
      message: 'each mapping needs exactly one of from (a column), value (a static value) or template',
    },
    {
      cel: "self.valueType == 'string' || has(self.value)",
      check: (m) => m.valueType === 'string' || m.value !== undefined,
      message: 'valueType applies only to a static value: add value, or remove valueType',
      fieldPath: '.valueType',
    },
    {
      cel: "!has(self.value) || self.valueType != 'number' || self.value.matches('^-?[0-9]+(\\\\.[0-9]+)?([eE][-+]?[0-9]+)?$')",
      check: (m) =>
        m.value === undefined ||
        m.valueType !== 'number' ||
        /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/.test(m.value),
      message: 'value must be a number when valueType is number, e.g. 42 or 3.14',
      fieldPath: '.value',
    },
    {
      cel: "!has(self.value) || self.valueType != 'boolean' || self.value in ['true', 'false']",
      check: (m) =>
        m.value === undefined || m.valueType !== 'boolean' || m.value === 'true' || m.value === 'false',
      message: 'value must be true or false when valueType is boolean',
      fieldPath: '.value',
    },
  ],
);
export type Mapping = z.infer<typeof mapping>;

/** What a dbt Cloud job run ends as, in a trigger's `results`: Success, Error and Cancelled in dbt Cloud's words. */
export const DBT_CLOUD_RUN_OUTCOMES = ['succeeded', 'failed', 'cancelled'] as const;
/** What a Fivetran connector sync ends as, in a trigger's `results`: SUCCESSFUL, or a FAILURE of any kind. */
export const FIVETRAN_SYNC_OUTCOMES = ['succeeded', 'failed'] as const;
export type TriggerOutcome = (typeof DBT_CLOUD_RUN_OUTCOMES)[number];
/** What the run of an afterSyncs trigger waits for when a named Sync fails. */
export const AFTER_SYNCS_ON_FAILURE = ['stop', 'continue'] as const;
export type AfterSyncsOnFailure = (typeof AFTER_SYNCS_ON_FAILURE)[number];

/** The name of one of the operator's webhooks (`--webhook NAME=TYPE`): a DNS label. */
export const WEBHOOK_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const webhookRef = z
  .string()
  .min(1)
  .max(63)
  .regex(WEBHOOK_NAME_RE, 'must be a DNS label: lowercase letters, digits and -')
  .describe(
    "Only deliveries to this webhook of the operator (its --webhook NAME) start the Sync; when omitted, any of the operator's webhooks of this type.",
  );

export const dbtCloudTrigger = z
  .object({
    accountId: z.number().int().min(1).describe('The dbt Cloud account ID.'),
    jobId: z.number().int().min(1).describe('The dbt Cloud job whose completed runs start the Sync.'),
    results: z
      .array(z.enum(DBT_CLOUD_RUN_OUTCOMES))
      .min(1)
      .max(3)
      .default(['succeeded'])
      .describe('Which results of the job run start the Sync: succeeded (the default), failed, cancelled.'),
    webhook: webhookRef.optional(),
  })
  .describe("Run when a run of a dbt Cloud job completes (the webhook's job.run.completed event).");
export type DbtCloudTrigger = z.infer<typeof dbtCloudTrigger>;

export const fivetranTrigger = z
  .object({
    connectorId: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9_-]+$/, 'must be a Fivetran connector ID, such as mystified_presiding')
      .describe('The Fivetran connector (connection) ID whose finished syncs start the Sync.'),
    results: z
      .array(z.enum(FIVETRAN_SYNC_OUTCOMES))
      .min(1)
      .max(2)
      .default(['succeeded'])
      .describe('Which results of the connector sync start the Sync: succeeded (the default), failed.'),
    webhook: webhookRef.optional(),
  })
  .describe("Run when a Fivetran connector's sync ends (the webhook's sync_end event).");
export type FivetranTrigger = z.infer<typeof fivetranTrigger>;

export const afterSyncsTrigger = withRules(
  z
    .object({
      names: z
        .array(objectName)
        .min(1)
        .max(32)
        .describe('The Syncs, in the same namespace, this one runs after.'),
      onFailure: z
        .enum(AFTER_SYNCS_ON_FAILURE)
        .default('stop')
        .describe(
          'stop (the default): run once every named Sync has succeeded since this one last ran; a failed one ' +
            'holds this Sync back until it succeeds. continue: run once every named Sync has finished since, ' +
            'whatever its result.',
        ),
    })
    .describe('Run after other Syncs of the namespace.'),
  [
    {
      cel: 'self.names.all(n, self.names.exists_one(m, m == n))',
      check: (a) => new Set(a.names).size === a.names.length,
      message: 'afterSyncs.names must name each Sync once',
      fieldPath: '.names',
    },
  ],
);
export type AfterSyncsTrigger = z.infer<typeof afterSyncsTrigger>;

export const syncTrigger = withRules(
  z
    .object({
      dbtCloud: dbtCloudTrigger.optional(),
      fivetran: fivetranTrigger.optional(),
      afterSyncs: afterSyncsTrigger.optional(),
    })
    .describe('One thing that starts a run: a dbt Cloud job run, a Fivetran sync, or other Syncs.'),
  [
    {
      cel: '[has(self.dbtCloud), has(self.fivetran), has(self.afterSyncs)].filter(x, x).size() == 1',
      check: (t) => [t.dbtCloud, t.fivetran, t.afterSyncs].filter((x) => x !== undefined).length === 1,
      message: 'each trigger needs exactly one of dbtCloud, fivetran or afterSyncs',
    },
  ],
);
export type SyncTrigger = z.infer<typeof syncTrigger>;

export const schedule = withRules(
  z
    .object({
      interval: z
        .string()
        .max(64)
        .optional()
        .describe('Run every this long, as a duration: 30s, 15m, 1h, 1h30m (at least 10s).'),
      cron: z
        .string()
        .max(256)
        .optional()
        .describe(
          'Run on a five-field cron schedule (minute hour day month weekday), or @hourly, @daily, ...',
        ),
      timeZone: z
        .string()
        .max(64)
        .optional()
        .describe('IANA time zone of the cron schedule, e.g. Europe/Berlin. Defaults to UTC.'),
      triggers: z
        .array(syncTrigger)
        .max(16)
        .optional()
        .describe(
          'What else starts a run, beside interval or cron: a dbt Cloud job run or a Fivetran sync (through ' +
            "the operator's webhooks), or other Syncs (afterSyncs).",
        ),
    })
    .describe(
      'When the Sync runs: every interval or on a cron schedule, and on its triggers. With none of them, ' +
        'it runs only when requested (the run API, kubectl syncline trigger).',
    ),
  [
    {
      cel: '!has(self.triggers) || self.triggers.filter(t, has(t.afterSyncs)).size() <= 1',
      check: (s) => (s.triggers ?? []).filter((t) => t.afterSyncs !== undefined).length <= 1,
      message: 'schedule.triggers may hold one afterSyncs trigger: name every Sync in its names',
      fieldPath: '.triggers',
    },
    {
      cel: '!(has(self.interval) && has(self.cron))',
      check: (s) => !(s.interval !== undefined && s.cron !== undefined),
      message: 'set at most one of schedule.interval and schedule.cron',
    },
    {
      cel: `!has(self.interval) || (self.interval.matches(${celString(GO_DURATION_RE.source)}) && duration(self.interval) >= duration('10s'))`,
      check: (s) => s.interval === undefined || (parseGoDuration(s.interval) ?? 0) >= MIN_INTERVAL_MS,
      message: 'schedule.interval must be a duration such as 30s, 15m, 1h or 1h30m, and at least 10s',
      fieldPath: '.interval',
    },
    {
      cel: `!has(self.cron) || self.cron.matches(${celString(CRON_RE_SOURCE)})`,
      check: (s) => s.cron === undefined || CRON_RE.test(s.cron),
      message:
        "schedule.cron must be a five-field cron expression such as '*/15 * * * *', or @hourly, @daily",
      fieldPath: '.cron',
    },
    {
      cel: '!has(self.timeZone) || has(self.cron)',
      check: (s) => s.timeZone === undefined || s.cron !== undefined,
      message: 'schedule.timeZone applies only to schedule.cron',
      fieldPath: '.timeZone',
    },
  ],
);
export type Schedule = z.infer<typeof schedule>;

export const syncSpec = withRules(
  z
    .object({
      modelRef: localObjectReference.describe('The Model whose rows are synced.'),
      destinationRef: localObjectReference.describe('The Destination the rows are sent to.'),
      mode: z
        .enum(SYNC_MODES)
        .describe(
          'upsert: create or update changed rows; update: update existing records only; insert: only rows not ' +
            'sent before; all: every row every run, the destination ends equal to the model; archive: archive ' +
            '(or delete) every row of the model in the destination, every run.',
        ),
      deleteBehavior: z
        .enum(DELETE_BEHAVIORS)
        .default('ignore')
        .describe(
          'For upsert, update and insert: what happens to records whose rows left the model: ignore, clear ' +
            '(empty the mapped fields) or delete.',
        ),
      archiveBehavior: z
        .enum(['archive', 'delete'])
        .default('archive')
        .describe('For mode archive: archive the records, or delete them.'),
      target: z
        .object({
          table: z.string().min(1).max(255).optional().describe('Table to write (postgres destinations).'),
          object: z
            .string()
            .min(1)
            .max(255)
            .optional()
            .describe('Object type or file name prefix in the destination.'),
          matchField: z
            .string()
            .min(1)
            .max(255)
            .optional()
            .describe(
              'Unique field of the object rows are matched to records by (an email, an external id): HubSpot idProperty, Salesforce external id field.',
            ),
          associations: z
            .array(
              z.object({
                object: z
                  .string()
                  .min(1)
                  .max(255)
                  .describe('Object type of the associated records (e.g. companies).'),
                from: z
                  .string()
                  .min(1)
                  .max(255)
                  .describe("Model column holding the associated record's match value."),
                matchField: z
                  .string()
                  .min(1)
                  .max(255)
                  .describe('Unique field of the associated object the value matches.'),
                type: z
                  .string()
                  .min(1)
                  .max(255)
                  .optional()
                  .describe(
                    'Association type (label or id); the default association of the two objects when omitted.',
                  ),
              }),
            )
            .max(20)
            .optional()
            .describe('Records of other objects each record is associated with (HubSpot associations).'),
        })
        .optional()
        .describe('Where in the destination the rows go.'),
      mappings: z
        .array(mapping)
        .max(200)
        .optional()
        .describe(
          'Destination fields and their values. Omit to send every model column as a field of the same name.',
        ),
      schedule: schedule.optional(),
      paused: z.boolean().default(false).describe('Stop starting runs; a run in progress finishes.'),
      dependsOn: z
        .array(localObjectReference)
        .max(32)
        .optional()
        .describe(
          'Run after each of these Syncs (same namespace) has succeeded since this one last ran. The older ' +
            'spelling of schedule.triggers[].afterSyncs with onFailure: stop; set one or the other.',
        ),
      invalidPrimaryKeys: z
        .enum(['fail', 'skip'])
        .default('fail')
        .describe(
          'Rows with a null or duplicated primary key fail the run (fail), or are left out and reported (skip).',
        ),
      safety: z
        .object({
          maxDeleteShare: z
            .number()
            .min(0)
            .max(1)
            .default(DEFAULT_MAX_DELETE_SHARE)
            .describe('Largest share of synced records one run may delete or clear (0 to 1).'),
          allowLargeDeletes: z
            .boolean()
            .default(false)
            .describe('Let one run delete or clear more than that.'),
        })
        .optional()
        .describe(
          'A rail against accidental mass deletion, e.g. after a broken model query returned no rows.',
        ),
      delivery: z
        .object({
          batchSize: z.number().int().min(1).max(100000).optional().describe('Row operations per batch.'),
          concurrency: z.number().int().min(1).max(256).optional().describe('Batches in flight at once.'),
          requestsPerSecond: z
            .number()
            .min(0.01)
            .max(100000)
            .optional()
            .describe('Most requests per second.'),
          maxRetries: z
            .number()
            .int()
            .min(0)
            .max(20)
            .default(DEFAULT_MAX_RETRIES)
            .describe('Retries of a transient failure (429, 5xx, timeout) before a row is rejected.'),
        })
        .optional()
        .describe('How changes are delivered.'),
      diffStore: z
        .object({
          url: z
            .string()
            .min(1)
            .max(2048)
            .regex(/^(s3|gs|file):\/\//, 'must be an s3://, gs:// or file:// URL')
            .describe('s3://bucket/prefix, gs://bucket/prefix or file:///path.'),
        })
        .optional()
        .describe("Override the operator's diff store for this Sync."),
      snapshot: snapshotSettings
        .optional()
        .describe(
          "Where the snapshot of what the destination holds is kept; each field absent here is the Source's spec.snapshot (run summaries and request logs stay in the diff store).",
        ),
      snapshotPolicy: z
        .enum(['retain', 'delete'])
        .default('retain')
        .describe('What happens to the diff-store folder when the Sync is deleted.'),
      runner: z
        .object({
          resources: z
            .object({
              requests: z
                .record(z.string(), z.string())
                .optional()
                .describe('Requested cpu, memory, ephemeral-storage.'),
              limits: z
                .record(z.string(), z.string())
                .optional()
                .describe('Limits of cpu, memory, ephemeral-storage.'),
            })
            .optional()
            .describe('Resources of the runner container.'),
          activeDeadlineSeconds: z
            .number()
            .int()
            .min(30)
            .optional()
            .describe('Kill a run that takes longer.'),
          memoryLimit: z
            .string()
            .max(32)
            .regex(MEMORY_LIMIT_RE, MEMORY_LIMIT_MESSAGE)
            .optional()
            .describe(
              "DuckDB's memory limit, e.g. 1GB. Default: 30% of the runner container's memory limit (DuckDB's resident memory runs well above its limit, and the runner needs some besides), or 320MiB without one.",
            ),
        })
        .optional()
        .describe('Overrides of the runner Job for this Sync.'),
      historyLimit: z
        .number()
        .int()
        .min(1)
        .max(100)
        .default(DEFAULT_HISTORY_LIMIT)
        .describe('Finished runs kept in status and as Jobs.'),
    })
    .describe('How the rows of a Model appear in a Destination, and when.'),
  [
    {
      cel: '!has(self.mappings) || self.mappings.all(m, self.mappings.exists_one(n, n.to == m.to))',
      check: (s) => new Set((s.mappings ?? []).map((m) => m.to)).size === (s.mappings ?? []).length,
      message: 'mapping targets must be unique: each destination field may be written by only one mapping',
      fieldPath: '.mappings',
    },
    {
      cel: '!has(self.dependsOn) || !has(self.schedule) || !has(self.schedule.triggers) || !self.schedule.triggers.exists(t, has(t.afterSyncs))',
      check: (s) => s.dependsOn === undefined || !(s.schedule?.triggers ?? []).some((t) => t.afterSyncs),
      message:
        'set dependsOn or an afterSyncs trigger in schedule.triggers, not both: dependsOn is the older spelling of afterSyncs',
      fieldPath: '.dependsOn',
    },
    {
      cel: "self.deleteBehavior == 'ignore' || self.mode in ['upsert', 'update', 'insert']",
      check: (s) => s.deleteBehavior === 'ignore' || ['upsert', 'update', 'insert'].includes(s.mode),
      message: 'deleteBehavior applies only to modes upsert, update and insert',
      fieldPath: '.deleteBehavior',
    },
  ],
);
export type SyncSpec = z.infer<typeof syncSpec>;

/** The Syncs a Sync runs after, and what a failure of one of them does; spelled either way in the spec. */
export interface RunsAfter {
  names: string[];
  onFailure: AfterSyncsOnFailure;
  /** Where the spec says it, for messages. */
  field: 'spec.dependsOn' | 'spec.schedule.triggers[].afterSyncs';
}

/**
 * The Syncs this one runs after: its afterSyncs trigger, or `dependsOn` (the older spelling, with onFailure
 * stop); undefined when it names none. Reads specs as stored too (defaults may be missing).
 */
export function runsAfter(spec: Pick<SyncSpec, 'dependsOn' | 'schedule'>): RunsAfter | undefined {
  const trigger = spec.schedule?.triggers?.find((t) => t.afterSyncs)?.afterSyncs;
  if (trigger?.names.length)
    return {
      names: trigger.names,
      onFailure: trigger.onFailure ?? 'stop',
      field: 'spec.schedule.triggers[].afterSyncs',
    };
  if (spec.dependsOn?.length)
    return { names: spec.dependsOn.map((d) => d.name), onFailure: 'stop', field: 'spec.dependsOn' };
  return undefined;
}

export const runCounts = z.object({
  queried: z.number().int().min(0).describe('Rows the model query returned.'),
  added: z.number().int().min(0).describe('Rows new since the last snapshot.'),
  changed: z.number().int().min(0).describe('Rows changed since the last snapshot.'),
  removed: z.number().int().min(0).describe('Rows that left the model.'),
  delivered: z.number().int().min(0).describe('Row operations the destination accepted.'),
  failed: z.number().int().min(0).describe('Row operations the destination rejected.'),
  skipped: z.number().int().min(0).default(0).describe('Rows left out for an invalid primary key.'),
});
export type RunCounts = z.infer<typeof runCounts>;

export const RUN_RESULTS = ['Succeeded', 'PartiallySucceeded', 'Failed'] as const;

/**
 * What starts a run: its schedule, a person (`manual`: the run-requested-at annotation), the Syncs it runs
 * after, a full-resync request, a retry after a transient failure, the run API, a webhook, a sequence.
 */
export const RUN_TRIGGERS = [
  'schedule',
  'manual',
  'dependency',
  'resync',
  'retry',
  'api',
  'webhook',
  'sequence',
] as const;

export const runRecord = z.object({
  id: z.string().max(128).describe('Run ID.'),
  job: z.string().max(253).optional().describe('Name of the runner Job.'),
  trigger: z
    .enum(RUN_TRIGGERS)
    .optional()
    .describe('What started the run (retry: the last run failed for a transient reason).'),
  fullResync: z.boolean().optional().describe('Whether the run ignored the previous snapshot.'),
  startedAt: z.string().optional().describe('When the run started (RFC 3339).'),
  finishedAt: z.string().optional().describe('When the run finished (RFC 3339).'),
  result: z
    .enum(RUN_RESULTS)
    .optional()
    .describe('Succeeded, PartiallySucceeded (some rows rejected) or Failed.'),
  reason: z.string().max(1024).optional().describe('CamelCase reason of a failure.'),
  counts: runCounts.optional(),
  message: z.string().max(4096).optional().describe('What happened, and what to do about a failure.'),
  snapshot: z.string().max(1024).optional().describe('Snapshot the run committed.'),
});
export type RunRecord = z.infer<typeof runRecord>;

export const syncStatus = z
  .object({
    observedGeneration: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('The .metadata.generation last reconciled.'),
    conditions,
    phase: z
      .enum(['Pending', 'Querying', 'Succeeded', 'Failed'])
      .optional()
      .describe(
        'For display only; use conditions for decisions. Querying covers the whole run once its runner ' +
          'started: the runner reports its progress only when it ends.',
      ),
    schedule: z.string().max(512).optional().describe('The schedule in words, for kubectl get.'),
    activeRun: runRecord.optional().describe('The run in progress, if any.'),
    lastRun: runRecord.optional().describe('The last finished run.'),
    lastSuccessfulRunAt: z.string().optional().describe('When the last successful run finished (RFC 3339).'),
    nextRunAt: z.string().optional().describe('When the next scheduled run is due (RFC 3339).'),
    history: z.array(runRecord).max(100).optional().describe('Recent finished runs, newest first.'),
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
    handledResyncRequest: z
      .string()
      .max(128)
      .optional()
      .describe('The last resync-requested-at annotation acted on.'),
    modelFingerprint: z
      .string()
      .max(128)
      .optional()
      .describe('Fingerprint of the model columns last synced.'),
  })
  .describe('Observed state of the Sync.');
export type SyncStatus = z.infer<typeof syncStatus>;
