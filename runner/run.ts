import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type {
  ColumnInfo,
  DeliveryContext,
  DestinationCapabilities,
  DestinationConnector,
  KeysOnlyStage,
  Logger,
} from '../core/connectors.ts';
import { destinationConnector, sourceConnector } from '../connectors/registry.ts';
import { DEFAULT_BACKOFF, lowest, rateLimiter, type BackoffSettings } from './backoff.ts';
import { committedHashSql, CURRENT_ROWS } from './commit.ts';
import { RunCommitter } from './committer.ts';
import { RunLease } from '../core/diffstore/lease.ts';
import { matchEpochs, noEpochs } from './pending.ts';
import { downloadState, previousForDiff, readStateForRun, type RunState as StoredState } from './state.ts';
import { computeDiff, hashProbe, type DiffResult, type PreviousSnapshot } from './diff.ts';
import { FETCHED_TABLE, fetchChangedRows, recordUnfetched, type FetchOutcome } from './fetch.ts';
import { DiffStore, type Manifest } from '../core/diffstore/index.ts';
import { openEmbeddedDuck, type EmbeddedDuck } from './duck.ts';
import { createFailedTable, deliver, sampleOperations, type DeliveryProgress } from './deliver.ts';
import { describeError, SynclineError } from '../core/errors.ts';
import { modelFingerprint, resolveShape } from './mappings.ts';
import type { RunPlan } from '../core/plan.ts';
import { resolveModel, type ConfigMapReader } from './model.ts';
import { RequestLog } from './requestlog.ts';
import type { SecretResolver } from '../core/secrets.ts';
import { openBlobStore } from '../core/storage/index.ts';
import {
  comparedConstants,
  comparedSources,
  ENGINE_HASH,
  hashedItems,
  planStaging,
  stagedHashOf,
  type StagingDecision,
} from './staging.ts';
import { runSummary, type RunSummary } from '../core/summary.ts';
import { checkPrimaryKey } from './validate.ts';

export type RunPhase = 'Querying' | 'Diffing' | 'Delivering' | 'Committing';

export interface RunProgress {
  phase: RunPhase;
  delivery?: DeliveryProgress;
}

export interface RunDeps {
  secrets: SecretResolver;
  log: Logger;
  signal: AbortSignal;
  onProgress?: (progress: RunProgress) => void;
  /** Retry timing of transient delivery failures (tests shorten it). */
  backoff?: BackoffSettings;
  /** Where a dbt Model's manifest ConfigMap is read from (mounted files in a pod, YAML for the CLI). */
  readConfigMap?: ConfigMapReader;
}

const STAGED_TABLE = 'model_rows';
/** The current snapshot and the one before: a full resync over a broken current one recovers its keys. */
const KEPT_SNAPSHOTS = 2;
/** How often a run commits its delivered progress while delivering, unless the plan says otherwise. */
export const DEFAULT_CHECKPOINT_SECONDS = 30;
const SAMPLE_ROWS = 5;
const DEFAULT_CONCURRENCY = 4;
/**
 * Rows per batch on a destination's bulk path (one transaction each), unless the Sync sets a batch size:
 * large enough that per-batch costs vanish (measured: 25,000 delivered 1M rows ~20% faster than 10,000,
 * and 50,000 or more no faster), small enough to keep the heap small (a few MB of CSV per batch in flight).
 */
const BULK_BATCH_SIZE = 25_000;

type Timings = RunSummary['timings'];

/** What the run has found out so far; a failure reports whatever was known when it happened. */
interface RunState {
  counts: RunSummary['counts'];
  operations: Record<string, number>;
  outcomes?: RunSummary['outcomes'];
  timings: Timings;
  rejected: RunSummary['rejected'];
  invalidKeys?: RunSummary['invalidKeys'];
  columns: ColumnInfo[];
  staging?: RunSummary['staging'];
  /** Checkpoints committed while delivering. */
  checkpoints?: number;
  /** Asked to stop during delivery; what was confirmed was committed. */
  stopped?: boolean;
  fingerprint?: string;
  snapshot?: string;
  samples?: RunSummary['samples'];
  message?: string;
  result?: RunSummary['result'];
  reason?: string;
}

function checkCapabilities(plan: RunPlan, caps: DestinationCapabilities): void {
  const { mode, deleteBehavior, target } = plan.sync.spec;
  const type = plan.destination.spec.type;
  if (!caps.modes.includes(mode)) {
    throw new SynclineError(
      'UnsupportedMode',
      `destination type ${type} does not support mode ${mode}; it supports: ${caps.modes.join(', ')}`,
    );
  }
  if (deleteBehavior !== 'ignore' && !caps.deleteBehaviors.includes(deleteBehavior)) {
    throw new SynclineError(
      'UnsupportedMode',
      `destination type ${type} does not support deleteBehavior ${deleteBehavior}; it supports: ${caps.deleteBehaviors.join(', ') || 'ignore only'}`,
    );
  }
  if (caps.needsTarget && !target?.[caps.needsTarget]) {
    throw new SynclineError(
      'MissingTarget',
      `destination type ${type} needs spec.target.${caps.needsTarget} on the Sync: name the ${caps.needsTarget} to write`,
    );
  }
}

/** Whether the current snapshot already describes this run's rows exactly as the next one would. */
function sameShapeAs(
  manifest: Manifest,
  expected: Pick<
    Manifest,
    | 'primaryKey'
    | 'destinationType'
    | 'comparedColumns'
    | 'comparedSources'
    | 'comparedConstants'
    | 'hashProbe'
    | 'hashFunction'
    | 'destinationIdentity'
  >,
  columns: ColumnInfo[],
): boolean {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  return (
    manifest.version === 2 &&
    manifest.primaryKey === expected.primaryKey &&
    manifest.destinationType === expected.destinationType &&
    manifest.hashProbe === expected.hashProbe &&
    manifest.destinationIdentity === expected.destinationIdentity &&
    (manifest.hashFunction ?? ENGINE_HASH) === expected.hashFunction &&
    same(manifest.comparedColumns, expected.comparedColumns) &&
    same(manifest.comparedConstants ?? {}, expected.comparedConstants ?? {}) &&
    same(manifest.comparedSources ?? {}, expected.comparedSources ?? {}) &&
    same(
      manifest.columns,
      columns.map((c) => ({ name: c.name, type: c.type })),
    )
  );
}

function elapsed(since: number): number {
  return Math.round(performance.now() - since);
}

/**
 * One run of one Sync: query → validate → diff → deliver → commit → report. Never throws: every failure
 * ends in a Failed summary with a reason and a message. The summary is also written to the diff store
 * (except for dry runs, which change nothing anywhere).
 */
export async function executeRun(plan: RunPlan, deps: RunDeps): Promise<RunSummary> {
  const startedAt = new Date();
  const t0 = performance.now();
  const { log, signal } = deps;
  const spec = plan.sync.spec;
  const state: RunState = {
    counts: { queried: 0, added: 0, changed: 0, removed: 0, delivered: 0, failed: 0, skipped: 0 },
    operations: {},
    timings: {},
    rejected: [],
    columns: [],
  };
  const resolvedSecrets = new Set<string>();
  const secrets: SecretResolver = (ref) => {
    const value = deps.secrets(ref);
    resolvedSecrets.add(value);
    return value;
  };
  const progress = (phase: RunPhase, delivery?: DeliveryProgress) =>
    deps.onProgress?.({ phase, ...(delivery ? { delivery } : {}) });
  const labels = { namespace: plan.namespace, sync: plan.sync.name, runId: plan.runId };

  let store: DiffStore | undefined;
  let lease: RunLease | undefined;
  let duck: EmbeddedDuck | undefined;
  let requestLog: RequestLog | undefined;
  let keysOnly: KeysOnlyStage | undefined;
  try {
    store = new DiffStore(
      openBlobStore(plan.diffStore.url, { s3: plan.diffStore.s3, gcs: plan.diffStore.gcs, secrets }),
      plan.namespace,
      plan.sync.name,
    );
    if (!plan.dryRun) {
      // Before anything is written or sent: one run of a Sync at a time, and a store the runner can write.
      lease = await RunLease.acquire(store.blob, store.syncFolder, plan.runId);
      lease.keepAlive();
    }
    // Independent start-up steps side by side (each takes a few to tens of milliseconds).
    const [destinationLoaded, sourceLoaded, opened, resolved] = await Promise.allSettled([
      destinationConnector(plan.destination.spec.type),
      sourceConnector(plan.source.spec.type),
      openEmbeddedDuck({
        tmpDir: plan.runner.tmpDir,
        memoryLimit: plan.runner.memoryLimit ?? spec.runner?.memoryLimit,
      }),
      resolveModel(plan, { secrets, ...(deps.readConfigMap ? { readConfigMap: deps.readConfigMap } : {}) }),
    ]);
    if (opened.status === 'fulfilled') duck = opened.value; // closed by finish() whatever failed
    const destination = settledValue(destinationLoaded);
    checkCapabilities(plan, destination.capabilities);
    plan = settledValue(resolved);
    const source = settledValue(sourceLoaded);
    duck = settledValue(opened);
    const primaryKey = plan.model.spec.primaryKey;
    if (primaryKey === undefined) {
      throw new SynclineError(
        'PrimaryKeyMissing',
        `Model ${plan.model.name} names no primary key: set spec.primaryKey`,
      );
    }
    const conn = duck.connection;
    const context = { secrets, log, signal, tmpDir: duck.dir };

    // The manifest decides how to stage; the previous snapshot downloads while the model is queried.
    const stored: StoredState = await readStateForRun(store, plan.fullResync);
    const current = stored.current;
    const download = downloadState(store, stored, duck.dir); // never rejects: failures are checked below
    const probe = await hashProbe(conn);

    // Query
    progress('Querying');
    let mark = performance.now();
    const comparesAllColumns = destination.capabilities.comparesAllColumns;
    let decision: StagingDecision | undefined;
    const staged = await source.stage({
      ...context,
      source: plan.source.spec,
      model: plan.model.spec,
      duck: conn,
      table: STAGED_TABLE,
      labels: { ...labels, model: `${plan.namespace}/${plan.model.name}` },
      plan: (columns, sourceHash) => {
        let early;
        try {
          early = resolveShape({ mappings: spec.mappings, columns, primaryKey, comparesAllColumns });
        } catch (error) {
          // The same check runs on the staged columns below and reports it; here it only means no hash.
          log.debug({ ...labels, err: describeError(error).message }, 'no row hash while staging');
        }
        decision = planStaging({
          columns,
          shape: early,
          primaryKey,
          previous: current?.manifest,
          fullResync: plan.fullResync,
          mode: spec.mode,
          destinationType: plan.destination.spec.type,
          engineProbe: probe,
          sourceHash,
        });
        return decision.plan;
      },
    });
    keysOnly = staged.keysOnly;
    signal.throwIfAborted();
    state.counts.queried = staged.rows;
    state.columns = staged.columns;
    state.timings.queryMs = elapsed(mark);

    // Validate: mappings against the staged columns, then the primary key.
    mark = performance.now();
    const shape = resolveShape({
      mappings: spec.mappings,
      columns: staged.columns,
      primaryKey,
      comparesAllColumns,
    });
    const keys = await checkPrimaryKey(conn, STAGED_TABLE, primaryKey, spec.invalidPrimaryKeys);
    if (keys.nullCount + keys.duplicateKeys > 0) {
      state.counts.skipped = keys.nullCount + keys.duplicateRows;
      state.invalidKeys = {
        nullCount: keys.nullCount,
        duplicateCount: keys.duplicateKeys,
        sample: keys.sample,
      };
      log.warn(
        { ...labels, skipped: state.counts.skipped, sample: keys.sample },
        'rows with invalid primary keys left out',
      );
    }
    state.fingerprint = modelFingerprint(staged.columns, primaryKey);
    // The next snapshot's hashes: the source's where it stored them over the compared columns, else
    // DuckDB's (which the engine can always make, in SQL).
    const wantedStore = decision?.store;
    const nextHash =
      wantedStore &&
      wantedStore.name !== ENGINE_HASH &&
      staged.sourceHash?.name === wantedStore.name &&
      stagedHashOf(
        staged.hashes,
        'source',
        hashedItems(shape).map((item) => item.column ?? item.name),
      )
        ? wantedStore
        : { name: ENGINE_HASH, probe };
    state.staging = { keysOnly: staged.keysOnly !== undefined, hashFunction: nextHash.name };
    state.timings.validateMs = elapsed(mark);

    // Diff
    progress('Diffing');
    mark = performance.now();
    const loaded = await previousForDiff(conn, store, stored, await download, {
      fullResync: plan.fullResync,
      primaryKey,
      destinationType: plan.destination.spec.type,
      dir: duck.dir,
      log,
    });
    let previous: PreviousSnapshot | undefined;
    let resendAll = plan.fullResync;
    const identity = destinationIdentity(destination, plan);
    if (loaded.previous) {
      const m = loaded.previous.manifest;
      if (m.primaryKey !== primaryKey && !plan.fullResync) {
        throw new SynclineError(
          'PrimaryKeyChanged',
          `the primary key of Model ${plan.model.name} changed from "${m.primaryKey}" to "${primaryKey}", so rows cannot be matched ` +
            'with what was sent before; request a full resync (annotate the Sync, or syncline run --full-resync) to send every row again',
        );
      }
      if (m.primaryKey === primaryKey) previous = loaded.previous;
      if (m.modelFingerprint !== state.fingerprint || m.destinationType !== plan.destination.spec.type) {
        log.info({ ...labels }, 'the model columns (or the destination type) changed: resending every row');
        resendAll = true;
      }
      if (m.destinationIdentity !== undefined && m.destinationIdentity !== identity) {
        log.warn(
          { ...labels },
          'the Sync writes somewhere else than its last run (another table, URL or folder): sending every row there; records at the old place are left as they are',
        );
        resendAll = true;
      }
    }
    const diff: DiffResult = await computeDiff(conn, {
      shape,
      columns: staged.columns,
      hashProbe: probe,
      sourceHash: staged.sourceHash,
      stagedHashes: staged.hashes,
      duplicateKeys: keys.duplicateKeys,
      primaryKey,
      mode: spec.mode,
      deleteBehavior: spec.deleteBehavior,
      archiveBehavior: spec.archiveBehavior,
      previous,
      resendAll,
      pendingFile: previous ? loaded.pendingFile : undefined,
    });
    if (!diff.previous.hashComparable) {
      log.warn(
        { ...labels },
        `the snapshot was hashed by a function this run cannot compare with (${diff.previous.hashFunction}, another version of it, or over columns the source did not hash): resending every row`,
      );
    }
    const keyType = staged.columns.find((c) => c.name === primaryKey)?.type ?? 'VARCHAR';
    const shapeOfRun = {
      primaryKey,
      destinationType: plan.destination.spec.type,
      comparedColumns: hashedItems(shape).map((item) => item.name),
      comparedSources: comparedSources(shape),
      comparedConstants: comparedConstants(shape),
      hashProbe: nextHash.probe,
      hashFunction: nextHash.name,
      destinationIdentity: identity,
    };
    state.counts.added = diff.added;
    state.counts.changed = diff.changed;
    state.counts.removed = diff.removed;
    state.operations = { ...diff.operations };
    state.timings.diffMs = elapsed(mark);

    // Keys-only staging: the rows to deliver now come out of the source, in the same read.
    let fetched: FetchOutcome | undefined;
    if (keysOnly) {
      mark = performance.now();
      fetched = await fetchChangedRows(conn, {
        stage: keysOnly,
        primaryKey,
        hashes: staged.hashes ?? [],
      });
      await keysOnly.close();
      keysOnly = undefined;
      state.staging = { ...(state.staging as NonNullable<RunState['staging']>), fetchedRows: fetched.rows };
      for (const [op, n] of Object.entries(fetched.missing)) {
        const left = (diff.operations[op as keyof typeof diff.operations] ?? 0) - n;
        diff.operations[op as keyof typeof diff.operations] = left;
        diff.totalOperations -= n;
      }
      if (fetched.missingCount > 0) {
        log.warn(
          { ...labels, keys: fetched.missingSample.map((m) => m.key), count: fetched.missingCount },
          'rows the model returned when its keys were read were missing when the rows were read; they are retried next run',
        );
      }
      state.timings.queryMs = (state.timings.queryMs ?? 0) + elapsed(mark);
    } else {
      await conn.run(`CREATE OR REPLACE VIEW ${CURRENT_ROWS} AS SELECT * FROM valid_rows`);
    }
    const syncId = `${plan.namespace}/${plan.sync.name}`;
    const snapshotHash = { shape, store: nextHash, stagedHashes: staged.hashes };
    if (previous && loaded.pendingFile && diff.totalOperations > 0) {
      await matchEpochs(conn, { primaryKey, hashSql: committedHashSql(snapshotHash) });
    } else {
      await noEpochs(conn);
    }

    if (plan.dryRun) {
      state.samples = await sampleOperations(conn, {
        shape,
        primaryKey,
        syncId,
        runId: plan.runId,
        perOperation: SAMPLE_ROWS,
        operations: Object.keys(diff.operations),
      });
    }

    // The safety rail, before anything is delivered.
    const maxShare = spec.safety?.maxDeleteShare ?? 0.5;
    if (
      diff.previousRows > 0 &&
      diff.removalDeletes / diff.previousRows > maxShare &&
      !spec.safety?.allowLargeDeletes
    ) {
      const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;
      throw new SynclineError(
        'SafetyRailTripped',
        `this run would delete or clear ${diff.removalDeletes} of the ${diff.previousRows} records the Sync has sent ` +
          `(${pct(diff.removalDeletes / diff.previousRows)}), more than spec.safety.maxDeleteShare (${pct(maxShare)}); nothing was delivered. ` +
          'If the model really lost those rows, set spec.safety.allowLargeDeletes: true (or raise maxDeleteShare) and run again.',
      );
    }

    if (plan.dryRun) {
      state.result = 'Succeeded';
      state.message = `dry run: ${diff.totalOperations} row operation(s) planned (${diff.added} added, ${diff.changed} changed, ${diff.removed} removed); nothing delivered`;
      return await finish();
    }

    // Every key this run is about to touch is committed as pending before the first request, so that a
    // run killed mid-delivery is followed by one that sends those keys again whatever the model says.
    const committer = new RunCommitter({
      store,
      conn,
      dir: duck.dir,
      runId: plan.runId,
      primaryKey,
      keyType,
      previous: diff.previous,
      hash: snapshotHash,
      current: loaded.previous && current ? current.manifest : undefined,
      etag: stored.etag,
      shape: {
        ...shapeOfRun,
        columns: staged.columns.map((c) => ({ name: c.name, type: c.type })),
        modelFingerprint: state.fingerprint,
      },
    });
    if (
      diff.totalOperations > 0 &&
      needsIntent(plan, destination.capabilities, loaded.previous !== undefined)
    ) {
      mark = performance.now();
      await committer.intent();
      state.timings.commitMs = elapsed(mark);
    }

    // Deliver
    mark = performance.now();
    if (diff.totalOperations > 0) {
      progress('Delivering', { total: diff.totalOperations, delivered: 0, failed: 0 });
      requestLog = new RequestLog(join(duck.dir, 'requests.jsonl.gz'), plan.runId, () => resolvedSecrets);
      const log_ = requestLog;
      const limiter = rateLimiter(
        lowest(plan.destination.spec.rateLimit?.requestsPerSecond, spec.delivery?.requestsPerSecond),
      );
      const deliveryContext: DeliveryContext = {
        ...context,
        sync: { namespace: plan.namespace, name: plan.sync.name, spec },
        destination: plan.destination.spec,
        columns: staged.columns,
        primaryKey,
        mappings: shape.mappings,
        acquire: () => limiter.acquire(signal),
        debug: (request) => log_.record(request),
      };
      const writer = await destination.open(deliveryContext);
      const reader = await duck.instance.connect();
      const progressConn = await duck.instance.connect();
      const checkpointConn = await duck.instance.connect();
      const activeLease = lease;
      try {
        const outcome = await deliver({
          reader,
          recorder: conn,
          writer,
          shape,
          primaryKey,
          syncId,
          runId: plan.runId,
          progress: progressConn,
          // A writer that publishes only when closed has nothing confirmed before then.
          ...(destination.capabilities.publishesOnClose
            ? {}
            : {
                checkpoint: {
                  intervalMs: (plan.runner.checkpointSeconds ?? DEFAULT_CHECKPOINT_SECONDS) * 1000,
                  commit: async () => {
                    activeLease?.check();
                    await committer.checkpoint(checkpointConn);
                    state.checkpoints = (state.checkpoints ?? 0) + 1;
                  },
                },
              }),
          total: diff.totalOperations,
          batchSize: spec.delivery?.batchSize ?? destination.capabilities.defaultBatchSize,
          concurrency:
            lowest(
              plan.destination.spec.rateLimit?.concurrency ?? DEFAULT_CONCURRENCY,
              spec.delivery?.concurrency,
            ) ?? DEFAULT_CONCURRENCY,
          maxRetries: spec.delivery?.maxRetries ?? 5,
          backoff: deps.backoff ?? DEFAULT_BACKOFF,
          signal,
          onProgress: (p) => progress('Delivering', p),
          bulk: {
            operations: diff.operations,
            batchSize: spec.delivery?.batchSize ?? BULK_BATCH_SIZE,
            connect: () => (duck as EmbeddedDuck).instance.connect(),
            renderers: duck.threads,
            ...(keys.nullCount + keys.duplicateKeys === 0 &&
            diff.totalOperations === (fetched ? fetched.rows : staged.rows)
              ? { stagedTable: fetched ? FETCHED_TABLE : STAGED_TABLE }
              : {}),
          },
        });
        state.counts.delivered = outcome.delivered;
        state.counts.failed = outcome.failed;
        state.outcomes = outcome.byOperation;
        state.rejected = outcome.rejected;
        if (outcome.closeError) state.reason = outcome.closeError.reason;
        if (outcome.stopped) state.stopped = true;
      } finally {
        reader.closeSync();
        progressConn.closeSync();
        checkpointConn.closeSync();
      }
    } else {
      await createFailedTable(conn);
    }
    if (fetched && fetched.missingCount > 0) {
      await recordUnfetched(conn);
      state.counts.failed += fetched.missingCount;
      const outcomes = (state.outcomes ??= {});
      for (const [op, n] of Object.entries(fetched.missing)) {
        const counts = (outcomes[op] ??= { delivered: 0, failed: 0 });
        counts.failed += n;
      }
      for (const { key, operation } of fetched.missingSample) {
        if (state.rejected.length >= 100) break;
        state.rejected.push({
          key,
          operation,
          reason:
            'the source did not return this row when the changed rows were read (is the model query deterministic?); retried next run',
        });
      }
    }
    state.timings.deliverMs = elapsed(mark);

    // Commit
    progress('Committing');
    mark = performance.now();
    const unchanged =
      current !== undefined &&
      previous !== undefined &&
      !resendAll &&
      diff.totalOperations === 0 &&
      diff.added + diff.changed + diff.removed === 0 &&
      sameShapeAs(current.manifest, shapeOfRun, staged.columns);
    if (unchanged && current) {
      state.snapshot = current.manifest.snapshot; // nothing changed: the current snapshot stays current
    } else {
      // Committed even when the run was asked to stop: SIGTERM's grace period is for exactly this.
      lease?.check();
      state.snapshot = await committer.final(conn, state.stopped === true, state.counts.failed > 0);
    }
    state.timings.commitMs = (state.timings.commitMs ?? 0) + elapsed(mark);

    const { delivered, failed } = state.counts;
    if (state.stopped) {
      state.result = 'Failed';
      state.reason = 'Aborted';
      state.message =
        `the run was stopped during delivery: ${delivered} of ${diff.totalOperations} row operation(s) delivered and committed` +
        `${failed > 0 ? `, ${failed} rejected` : ''}; the rest is sent by the next run`;
    } else if (failed > 0 && delivered === 0) {
      state.result = 'Failed';
      state.reason ??= 'RowsRejected';
      state.message = `the destination rejected all ${failed} row operation(s); first: ${describeRejected(state.rejected[0])}`;
    } else if (failed > 0) {
      state.result = 'PartiallySucceeded';
      state.reason = 'RowsRejected';
      state.message = `delivered ${delivered} row operation(s), ${failed} rejected (they are retried next run); first: ${describeRejected(state.rejected[0])}`;
    } else {
      state.result = 'Succeeded';
      state.message = `delivered ${delivered} row operation(s): ${diff.added} added, ${diff.changed} changed, ${diff.removed} removed`;
    }
    return await finish();
  } catch (error) {
    const described = signal.aborted
      ? { reason: 'Aborted', message: 'the run was stopped before it finished; nothing was committed' }
      : describeError(error, 'InternalError');
    state.result = 'Failed';
    state.reason = described.reason;
    state.message = described.message;
    log.error({ ...labels, reason: described.reason, err: described.message }, 'run failed');
    return await finish();
  }

  async function finish(): Promise<RunSummary> {
    if (keysOnly) {
      const stage = keysOnly;
      keysOnly = undefined;
      await stage.close();
    }
    if (requestLog) {
      const logFile = requestLog;
      requestLog = undefined;
      try {
        await logFile.close();
        if (logFile.entries > 0 && store) await store.writeRequestLog(plan.runId, logFile.file);
      } catch (error) {
        log.warn(
          { ...labels, err: describeError(error).message },
          'could not keep the request log of the run',
        );
      }
    }
    duck?.close();
    duck = undefined;
    state.timings.totalMs = elapsed(t0);
    const summary = runSummary.parse({
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'RunSummary',
      runId: plan.runId,
      namespace: plan.namespace,
      sync: plan.sync.name,
      mode: spec.mode,
      dryRun: plan.dryRun,
      fullResync: plan.fullResync,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      result: state.result ?? 'Failed',
      ...(state.reason ? { reason: state.reason } : {}),
      message: state.message ?? '',
      counts: state.counts,
      operations: state.operations,
      ...(state.outcomes ? { outcomes: state.outcomes } : {}),
      timings: state.timings,
      ...(state.staging ? { staging: state.staging } : {}),
      ...(state.checkpoints ? { checkpoints: state.checkpoints } : {}),
      rejected: state.rejected.slice(0, 100),
      ...(state.invalidKeys ? { invalidKeys: state.invalidKeys } : {}),
      columns: state.columns.map((c) => ({ name: c.name, type: c.type })),
      ...(state.fingerprint ? { modelFingerprint: state.fingerprint } : {}),
      ...(state.snapshot ? { snapshot: state.snapshot } : {}),
      ...(state.samples ? { samples: state.samples } : {}),
    });
    if (store && !plan.dryRun) {
      try {
        await store.writeRunSummary(plan.runId, summary);
        await store.prune({
          requestLogDays: plan.runner.debuggerRetentionDays,
          keepSnapshots: KEPT_SNAPSHOTS,
        });
      } catch (error) {
        log.warn(
          { ...labels, err: describeError(error).message },
          'could not write the run summary to the diff store',
        );
      }
    }
    await lease?.release();
    lease = undefined;
    log.info(
      { ...labels, result: summary.result, reason: summary.reason, counts: summary.counts },
      summary.message,
    );
    return summary;
  }
}

/**
 * Whether the run must commit its pending keys before sending. Always once state is committed (a crash
 * followed by a model that changes back must resend). Before the first commit a killed run is followed
 * by another first sync that sends every row anyway; the intent then only matters to delete rows that
 * may have arrived and left the model since, and to keep idempotency keys stable for an API that takes
 * them.
 */
function needsIntent(plan: RunPlan, caps: DestinationCapabilities, committed: boolean): boolean {
  const { deleteBehavior, mode } = plan.sync.spec;
  return committed || deleteBehavior !== 'ignore' || mode === 'all' || caps.idempotencyKeys === true;
}

/**
 * Where the destination's records live, as a digest: the connector's identity of the destination and
 * the Sync's target (no credential is part of it). A changed identity sends every row to the new place.
 */
function destinationIdentity(destination: DestinationConnector, plan: RunPlan): string {
  const described = destination.identity?.(plan.destination.spec, plan.sync.spec) ?? {
    type: plan.destination.spec.type,
    target: plan.sync.spec.target ?? null,
  };
  return createHash('sha256').update(JSON.stringify(described)).digest('hex').slice(0, 32);
}

function settledValue<T>(result: PromiseSettledResult<T>): T {
  if (result.status === 'rejected') throw result.reason;
  return result.value;
}

function describeRejected(row: { key: string; reason: string } | undefined): string {
  return row ? `key ${row.key}: ${row.reason}` : 'none recorded';
}
