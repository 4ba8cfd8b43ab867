import { TERMINATION_MESSAGE_LIMIT, type RunSummary } from '../core/summary.ts';

/**
 * The run summary cut to fit a pod's termination message (4096 bytes): samples and columns go first,
 * then rejected rows one by one, then the message is shortened. Counts, result and reason always stay.
 */
export function compactSummary(summary: RunSummary, limit = TERMINATION_MESSAGE_LIMIT): string {
  const compact: Partial<RunSummary> = { ...summary };
  delete compact.samples;
  delete compact.columns;
  const fits = () => Buffer.byteLength(JSON.stringify(compact)) <= limit;
  if (fits()) return JSON.stringify(compact);
  if (compact.invalidKeys)
    compact.invalidKeys = { ...compact.invalidKeys, sample: compact.invalidKeys.sample.slice(0, 3) };
  const rejected = [...(compact.rejected ?? [])].map((r) => ({ ...r, reason: r.reason.slice(0, 200) }));
  compact.rejected = rejected;
  while (!fits() && rejected.length > 0) {
    rejected.pop();
    compact.rejected = rejected;
  }
  if (!fits() && compact.message) compact.message = `${compact.message.slice(0, 1000)}…`;
  if (!fits()) {
    delete compact.invalidKeys;
    delete compact.operations;
    delete compact.timings;
  }
  if (!fits() && compact.message) compact.message = `${compact.message.slice(0, 200)}…`;
  return JSON.stringify(compact);
}

/** One line per run, for people. */
export function describeSummary(summary: RunSummary): string {
  const c = summary.counts;
  const seconds = ((summary.timings.totalMs ?? 0) / 1000).toFixed(1);
  const head = `${summary.sync}: ${summary.result}${summary.reason ? ` (${summary.reason})` : ''} in ${seconds}s`;
  const counts =
    `queried ${c.queried}, added ${c.added}, changed ${c.changed}, removed ${c.removed}, ` +
    `delivered ${c.delivered}, failed ${c.failed}${c.skipped ? `, skipped ${c.skipped}` : ''}`;
  return `${head}\n  ${counts}\n  ${summary.message}`;
}
