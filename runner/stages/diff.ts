// Diff: the previous snapshot (checked, or what a full resync can still read of it) against the staged
// rows, in DuckDB; whether every row is sent again; the shape the next snapshot records.
import { SynclineError } from '../../core/errors.ts';
import { computeDiff, type DiffResult, type PreviousSnapshot } from '../diff.ts';
import {
  comparedConstants,
  comparedSources,
  hashedItems,
  resendReasons,
  type RunShape,
} from '../snapshot-match.ts';
import { downloadState, previousForDiff } from '../state.ts';
import type { RunContext } from './context.ts';
import type { Queried } from './query.ts';
import type { Validated } from './validate.ts';

export interface Diffed {
  diff: DiffResult;
  /** Planned operations by kind, as the diff found them (before rows a keys-only fetch missed). */
  planned: DiffResult['operations'];
  /** The snapshot compared with; undefined on a first sync or a primary-key change. */
  previous: PreviousSnapshot | undefined;
  /** A snapshot was read (also one of another primary key, or recovered by a full resync). */
  hadSnapshot: boolean;
  pendingFile: string | undefined;
  resendAll: boolean;
  runShape: RunShape;
  keyType: string;
  /** The snapshot compared with holds only the keys that may differ (a narrowed warehouse snapshot). */
  narrowed: boolean;
}

const RESEND_MESSAGES = {
  model: 'the model columns changed: resending every row',
  destinationType: 'the destination type changed: resending every row',
  destination:
    'the Sync writes somewhere else than its last run (another table, URL or folder): sending every row there; records at the old place are left as they are',
};

export async function diffModel(ctx: RunContext, queried: Queried, validated: Validated): Promise<Diffed> {
  const { plan, spec, primaryKey, log, labels } = ctx;
  const { staged } = queried;
  const { shape } = validated;
  // A narrowed staging wrote the snapshot rows of the keys that may differ; otherwise the whole snapshot.
  const downloaded = queried.previousFile
    ? await downloadState(ctx.snapshots, ctx.stored, ctx.duck.dir, { snapshotFile: queried.previousFile })
    : await ctx.download();
  const loaded = await previousForDiff(ctx.conn, ctx.snapshots, ctx.stored, downloaded, {
    fullResync: plan.fullResync,
    primaryKey,
    destinationType: plan.destination.spec.type,
    dir: ctx.duck.dir,
    log,
  });
  const runShape: RunShape = {
    primaryKey,
    destinationType: plan.destination.spec.type,
    comparedColumns: hashedItems(shape).map((item) => item.name),
    comparedSources: comparedSources(shape),
    comparedConstants: comparedConstants(shape),
    hashProbe: validated.nextHash.probe,
    hashFunction: validated.nextHash.name,
    destinationIdentity: ctx.identity,
    columns: staged.columns.map((c) => ({ name: c.name, type: c.type })),
    modelFingerprint: validated.fingerprint,
  };
  let previous: PreviousSnapshot | undefined;
  let resendAll = plan.fullResync;
  if (loaded.previous) {
    const m = loaded.previous.manifest;
    if (m.primaryKey !== primaryKey && !plan.fullResync)
      throw primaryKeyChanged(plan.model.name, m.primaryKey, primaryKey);
    if (m.primaryKey === primaryKey) previous = loaded.previous;
    for (const reason of resendReasons(m, runShape)) {
      if (reason === 'destination') log.warn({ ...labels }, RESEND_MESSAGES[reason]);
      else log.info({ ...labels }, RESEND_MESSAGES[reason]);
      resendAll = true;
    }
  }
  const diff = await computeDiff(ctx.conn, {
    shape,
    columns: staged.columns,
    hashProbe: ctx.engineProbe,
    sourceHash: staged.sourceHash,
    stagedHashes: staged.hashes,
    duplicateKeys: validated.keys.duplicateKeys,
    primaryKey,
    mode: spec.mode,
    deleteBehavior: spec.deleteBehavior,
    archiveBehavior: spec.archiveBehavior,
    previous,
    resendAll,
    pendingFile: previous ? loaded.pendingFile : undefined,
    recordIds: ctx.destination.capabilities.recordIds === true,
  });
  if (queried.previousFile && (resendAll || !diff.previous.hashComparable)) {
    // The staged rows are only those that may differ: resending every row needs them all (staging.ts
    // narrows only when nothing makes every row differ).
    throw new SynclineError(
      'InternalError',
      'the staging was narrowed to the rows that differ, but this run must resend every row; run again with a full resync',
    );
  }
  if (!diff.previous.hashComparable) {
    log.warn(
      { ...labels },
      `the snapshot was hashed by a function this run cannot compare with (${diff.previous.hashFunction}, another version of it, or over columns the source did not hash): resending every row`,
    );
  }
  return {
    diff,
    planned: { ...diff.operations },
    previous,
    hadSnapshot: loaded.previous !== undefined,
    pendingFile: loaded.pendingFile,
    resendAll,
    runShape,
    keyType: staged.columns.find((c) => c.name === primaryKey)?.type ?? 'VARCHAR',
    narrowed: queried.previousFile !== undefined && previous !== undefined,
  };
}

function primaryKeyChanged(model: string, before: string, now: string): SynclineError {
  return new SynclineError(
    'PrimaryKeyChanged',
    `the primary key of Model ${model} changed from "${before}" to "${now}", so rows cannot be matched ` +
      'with what was sent before; request a full resync (annotate the Sync, or syncline run --full-resync) to send every row again',
  );
}
