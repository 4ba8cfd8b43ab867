// Whether a destination type can carry out a Sync: one check, used by the operator (the Sync's Ready
// condition, before any run) and by the runner (before anything is read), so both say the same.
import type { SyncSpec } from '../crds/index.ts';
import type { DestinationCapabilities } from './connectors.ts';
import { SynclineError } from './errors.ts';

/** The first thing `destinationType` cannot do that the Sync asks for, or undefined. */
export function capabilityProblem(
  caps: DestinationCapabilities,
  sync: Pick<SyncSpec, 'mode' | 'deleteBehavior' | 'target'>,
  destinationType: string,
): SynclineError | undefined {
  if (!caps.modes.includes(sync.mode)) {
    return new SynclineError(
      'UnsupportedMode',
      `mode "${sync.mode}" is not supported by ${destinationType} destinations; use one of: ${caps.modes.join(', ')}`,
    );
  }
  // Ignoring removed rows needs nothing of a destination.
  const deleteBehavior = sync.deleteBehavior ?? 'ignore';
  if (deleteBehavior !== 'ignore' && !caps.deleteBehaviors.includes(deleteBehavior)) {
    const supported = ['ignore', ...caps.deleteBehaviors.filter((b) => b !== 'ignore')];
    return new SynclineError(
      'UnsupportedDeleteBehavior',
      `deleteBehavior "${deleteBehavior}" is not supported by ${destinationType} destinations; use one of: ${supported.join(', ')}`,
    );
  }
  if (caps.needsTarget && !sync.target?.[caps.needsTarget]) {
    return new SynclineError(
      'MissingTarget',
      `${destinationType} destinations need spec.target.${caps.needsTarget} on the Sync: set the ${caps.needsTarget} to write to`,
    );
  }
  return undefined;
}
