// Whether a destination type can carry out a Sync: one check, used by the operator (the Sync's Ready
// condition, before any run), by the embedded CLI (before any Sync of a folder runs) and by the runner
// (before anything is read), so all three say the same.
import type { SyncSpec } from '../crds/index.ts';
import type { DestinationCapabilities } from './connectors.ts';
import { SynclineError } from './errors.ts';

/** What the caller knows beyond the Sync's spec, for messages that name the fix. */
export interface CapabilityContext {
  /** The Sync as `namespace/name`. */
  sync?: string;
  /**
   * The fields of the target object that can match rows to records (unique and writable), when the
   * Destination's connection check discovered them.
   */
  uniqueFields?: readonly string[];
}

/** The first thing `destinationType` cannot do that the Sync asks for, or undefined. */
export function capabilityProblem(
  caps: DestinationCapabilities,
  sync: Pick<SyncSpec, 'mode' | 'deleteBehavior' | 'target'>,
  destinationType: string,
  context: CapabilityContext = {},
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
  return matchFieldProblem(caps, sync, destinationType, context);
}

/**
 * A Sync whose mode matches rows to records by a unique field (`caps.requiresMatchField`) without naming
 * one: every row would be rejected at run time, so it is refused before any run.
 */
function matchFieldProblem(
  caps: DestinationCapabilities,
  sync: Pick<SyncSpec, 'mode' | 'target'>,
  destinationType: string,
  { sync: name, uniqueFields }: CapabilityContext,
): SynclineError | undefined {
  if (!caps.requiresMatchField?.includes(sync.mode) || sync.target?.matchField) return undefined;
  const object = sync.target?.object ?? sync.target?.table;
  const of = object ? ` of object "${object}"` : '';
  const fix =
    uniqueFields === undefined
      ? `set it to ${caps.matchFieldHint ?? 'a unique field of the object'}${of}`
      : uniqueFields.length > 0
        ? `set it to one of the unique fields${of}: ${uniqueFields.slice(0, 20).join(', ')}`
        : `the discovered fields${of} include no unique one: make a field unique in the tool, then name it`;
  return new SynclineError(
    'MatchFieldRequired',
    `${name ? `Sync ${name}: ` : ''}mode "${sync.mode}" matches rows to records of the ${destinationType} ` +
      `destination by spec.target.matchField, which is not set: ${fix}, and map it (usually from the primary key)`,
  );
}
