// Report: what a run found and did, as its summary — built from the results of the stages that ran, so a
// failed run reports whatever was known when it failed, and names the stage it failed in.
import type { RunPlan } from '../../core/plan.ts';
import { REJECTED_SAMPLE, runSummary, type RunSummary } from '../../core/summary.ts';
import type { Committed } from './commit.ts';
import type { Delivered } from './delivery.ts';
import type { Diffed } from './diff.ts';
import type { Fetched } from './fetch.ts';
import type { Queried } from './query.ts';
import type { Validated } from './validate.ts';

/** What the stages that ran returned. */
export interface RunResults {
  queried?: Queried;
  validated?: Validated;
  diffed?: Diffed;
  fetched?: Fetched;
  samples?: RunSummary['samples'];
  delivered?: Delivered;
  committed?: Committed;
  /** What placing the snapshot did (RunContext.notice). */
  notice?: { reason: string; message: string };
  /** The run sent every row (asked for, or because its state was lost). */
  fullResync?: boolean;
}

export interface RunEnding {
  result: RunSummary['result'];
  reason?: string | undefined;
  message: string;
  /** The stage a failed run failed in. */
  stage?: string | undefined;
}

function describeRejected(row: { key: string; reason: string } | undefined): string {
  return row ? `key ${row.key}: ${row.reason}` : 'none recorded';
}

/** How a run that went through every stage ended. */
export function endingOf(results: RunResults): RunEnding {
  const total = results.diffed?.diff.totalOperations ?? 0;
  const diff = results.diffed?.diff;
  const d = results.delivered;
  const delivered = d?.delivered ?? 0;
  const failed = d?.failed ?? 0;
  if (d?.stopped) {
    return {
      result: 'Failed',
      reason: 'Aborted',
      message:
        `the run was stopped during delivery: ${delivered} of ${total} row operation(s) delivered and committed` +
        `${failed > 0 ? `, ${failed} rejected` : ''}; the rest is sent by the next run`,
    };
  }
  if (d?.stopReason) {
    return {
      result: delivered > 0 ? 'PartiallySucceeded' : 'Failed',
      reason: d.stopReason.reason,
      message: `delivered ${delivered} row operation(s), then ${d.stopReason.message} (${failed} not delivered)`,
    };
  }
  const first = describeRejected(d?.rejected[0]);
  if (failed > 0 && delivered === 0) {
    return {
      result: 'Failed',
      reason: d?.closeReason ?? 'RowsRejected',
      message: `the destination rejected all ${failed} row operation(s); first: ${first}`,
    };
  }
  if (failed > 0) {
    return {
      result: 'PartiallySucceeded',
      reason: 'RowsRejected',
      message: `delivered ${delivered} row operation(s), ${failed} rejected (they are retried next run); first: ${first}`,
    };
  }
  return {
    result: 'Succeeded',
    reason: d?.closeReason,
    message: `delivered ${delivered} row operation(s): ${diff?.added ?? 0} added, ${diff?.changed ?? 0} changed, ${diff?.removed ?? 0} removed`,
  };
}

/** The ending, telling what placing the snapshot did: a success takes its reason. */
export function withNotice(ending: RunEnding, notice: RunResults['notice']): RunEnding {
  if (!notice) return ending;
  const message = `${ending.message}; ${notice.message}`;
  if (ending.result === 'Succeeded' && ending.reason === undefined)
    return { ...ending, reason: notice.reason, message };
  return { ...ending, message };
}

/** The dry run's ending: what would be delivered. */
export function dryRunEnding(diffed: Diffed): RunEnding {
  const { diff } = diffed;
  return {
    result: 'Succeeded',
    message: `dry run: ${diff.totalOperations} row operation(s) planned (${diff.added} added, ${diff.changed} changed, ${diff.removed} removed); nothing delivered`,
  };
}

export function buildSummary(
  plan: RunPlan,
  run: { startedAt: Date; timings: RunSummary['timings'] },
  results: RunResults,
  ending: RunEnding,
): RunSummary {
  const { queried, validated, diffed, fetched, delivered } = results;
  const keys = validated?.keys;
  return runSummary.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunSummary',
    runId: plan.runId,
    namespace: plan.namespace,
    sync: plan.sync.name,
    mode: plan.sync.spec.mode,
    dryRun: plan.dryRun,
    fullResync: results.fullResync ?? plan.fullResync,
    startedAt: run.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    result: ending.result,
    ...(ending.reason ? { reason: ending.reason } : {}),
    ...(ending.stage ? { stage: ending.stage } : {}),
    message: ending.message,
    counts: {
      queried: queried?.staged.narrowed?.modelRows ?? queried?.staged.rows ?? 0,
      added: diffed?.diff.added ?? 0,
      changed: diffed?.diff.changed ?? 0,
      removed: diffed?.diff.removed ?? 0,
      delivered: delivered?.delivered ?? 0,
      failed: delivered?.failed ?? 0,
      skipped: validated?.skipped ?? 0,
    },
    operations: diffed?.planned ?? {},
    ...(delivered &&
    (Object.keys(delivered.byOperation).length > 0 || (diffed?.diff.totalOperations ?? 0) > 0)
      ? { outcomes: delivered.byOperation }
      : {}),
    timings: run.timings,
    ...(validated && queried
      ? {
          staging: {
            keysOnly: queried.staged.keysOnly !== undefined,
            ...(fetched?.fetched ? { fetchedRows: fetched.fetched.rows } : {}),
            hashFunction: validated.nextHash.name,
            ...(queried.staged.narrowed
              ? {
                  narrowed: {
                    rows: queried.staged.rows,
                    previousRows: queried.staged.narrowed.previousRows,
                    byChecksum: queried.staged.narrowed.byChecksum,
                  },
                }
              : {}),
          },
        }
      : {}),
    ...(delivered?.checkpoints ? { checkpoints: delivered.checkpoints } : {}),
    rejected: (delivered?.rejected ?? []).slice(0, REJECTED_SAMPLE),
    ...(keys && validated.skipped > 0
      ? {
          invalidKeys: { nullCount: keys.nullCount, duplicateCount: keys.duplicateKeys, sample: keys.sample },
        }
      : {}),
    columns: (queried?.staged.columns ?? []).map((c) => ({ name: c.name, type: c.type })),
    ...(validated ? { modelFingerprint: validated.fingerprint } : {}),
    ...(results.committed ? { snapshot: results.committed.snapshot } : {}),
    ...(results.samples ? { samples: results.samples } : {}),
  });
}
