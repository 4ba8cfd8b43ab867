// The safety rail, before anything is delivered: a run that would delete or clear more than
// spec.safety.maxDeleteShare of the records the Sync has sent stops, unless large deletes are allowed.
import { SynclineError } from '../../core/errors.ts';
import { DEFAULT_MAX_DELETE_SHARE, type SyncSpec } from '../../crds/index.ts';
import type { DiffResult } from '../diff.ts';

export function checkSafetyRail(
  safety: SyncSpec['safety'],
  diff: Pick<DiffResult, 'previousRows' | 'removalDeletes'>,
): void {
  const maxShare = safety?.maxDeleteShare ?? DEFAULT_MAX_DELETE_SHARE;
  const { previousRows, removalDeletes } = diff;
  if (previousRows === 0 || removalDeletes / previousRows <= maxShare || safety?.allowLargeDeletes) return;
  const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;
  throw new SynclineError(
    'SafetyRailTripped',
    `this run would delete or clear ${removalDeletes} of the ${previousRows} records the Sync has sent ` +
      `(${pct(removalDeletes / previousRows)}), more than spec.safety.maxDeleteShare (${pct(maxShare)}); nothing was delivered. ` +
      'If the model really lost those rows, set spec.safety.allowLargeDeletes: true (or raise maxDeleteShare) and run again.',
  );
}
