import type { Destination, Model, Source, Sync } from '../crds/index.ts';
import type { DestinationCapabilities } from '../core/connectors.ts';
import { describeError } from '../core/errors.ts';
import { capabilityProblem } from '../core/capabilities.ts';
import { isTransientReason } from '../core/reasons.ts';
import { isConditionTrue, findCondition, READY } from './conditions.ts';
import type { OperatorConfig } from './config.ts';
import { runnerSettingsProblem, syncDiffStoreUrl } from './runner-policy.ts';
import { timetable } from './schedule.ts';

/**
 * What validation beyond the schema found. `stalled`: only a change by a person fixes it (kstatus
 * Stalled=True). `waiting`: another object is not ready yet; it resolves by itself when that one does.
 */
export type Verdict = { ok: true } | { ok: false; stalled: boolean; reason: string; message: string };

const OK: Verdict = { ok: true };
const stalled = (reason: string, message: string): Verdict => ({ ok: false, stalled: true, reason, message });
const waiting = (reason: string, message: string): Verdict => ({
  ok: false,
  stalled: false,
  reason,
  message,
});

function notReadyDetail(object: Source | Model | Destination): string {
  const ready = findCondition(object.status?.conditions, READY);
  if (!ready) return 'it has not been checked yet';
  return `${ready.reason}: ${ready.message}`;
}

export function validateModel(model: Model, source: Source | undefined): Verdict {
  const ns = model.metadata.namespace;
  if (!source) {
    return stalled(
      'SourceNotFound',
      `Source "${model.spec.sourceRef.name}" does not exist in namespace ${ns}: create it, or fix spec.sourceRef.name`,
    );
  }
  if (!isConditionTrue(source.status?.conditions, READY)) {
    return waiting(
      'SourceNotReady',
      `Source "${source.metadata.name}" is not Ready (${notReadyDetail(source)})`,
    );
  }
  return OK;
}

export interface SyncReferences {
  model?: Model;
  destination?: Destination;
  /** Resolved spec.dependsOn, in order; `sync` undefined when it does not exist. */
  dependencies: { name: string; sync?: Sync }[];
  /** Capabilities of the destination's connector, when it could be loaded. */
  capabilities?: DestinationCapabilities;
  capabilitiesError?: unknown;
  /** Looks up another Sync of the namespace, for cycle detection in dependsOn. */
  lookupSync: (name: string) => Sync | undefined;
}

/**
 * What the operator allows a Sync (`policy`, from its flags): runner resources and deadline within the
 * maximums, and a diff-store URL within the namespace's prefix.
 */
export function validateSyncPolicy(
  sync: Sync,
  policy: Pick<OperatorConfig, 'diffStore' | 'runner'>,
): Verdict {
  const refused = runnerSettingsProblem(policy, sync);
  if (refused) return stalled(refused.reason, refused.message);
  try {
    syncDiffStoreUrl(policy, sync);
  } catch (error) {
    const { reason, message } = describeError(error, 'InvalidDiffStoreUrl');
    return stalled(reason, message);
  }
  return OK;
}

/** What the destination's connector cannot do of what the Sync asks (or that its capabilities are unknown). */
function destinationProblem(
  sync: Sync,
  destination: Destination,
  refs: Pick<SyncReferences, 'capabilities' | 'capabilitiesError'>,
): Verdict | undefined {
  const spec = sync.spec;
  const destinationType = destination.spec.type;
  if (!refs.capabilities) {
    const { reason, message } = describeError(refs.capabilitiesError ?? new Error('not available'));
    if (isTransientReason(reason)) {
      // The probe gave no answer (a timeout, a crash): not the Sync's fault, and retried with backoff.
      return waiting(
        reason,
        `the capabilities of destination type "${destinationType}" are not known yet: ${message}`,
      );
    }
    return stalled(
      'UnsupportedDestination',
      `destination type "${destinationType}" is not available in this operator: ${message}`,
    );
  }
  const unsupported = capabilityProblem(refs.capabilities, spec, destinationType);
  return unsupported ? stalled(unsupported.reason, unsupported.message) : undefined;
}

/** Checks a Sync against the objects it references; the first problem wins, most fundamental first. */
export function validateSync(
  sync: Sync,
  refs: SyncReferences,
  policy?: Pick<OperatorConfig, 'diffStore' | 'runner'>,
): Verdict {
  const ns = sync.metadata.namespace;
  const spec = sync.spec;
  if (!refs.model) {
    return stalled(
      'ModelNotFound',
      `Model "${spec.modelRef.name}" does not exist in namespace ${ns}: create it, or fix spec.modelRef.name`,
    );
  }
  if (!refs.destination) {
    return stalled(
      'DestinationNotFound',
      `Destination "${spec.destinationRef.name}" does not exist in namespace ${ns}: create it, or fix spec.destinationRef.name`,
    );
  }
  for (const dependency of refs.dependencies) {
    if (dependency.name === sync.metadata.name) {
      return stalled('DependencyCycle', 'spec.dependsOn names the Sync itself: remove it');
    }
    if (!dependency.sync) {
      return stalled(
        'DependencyNotFound',
        `Sync "${dependency.name}" named in spec.dependsOn does not exist in namespace ${ns}: create it, or remove it from dependsOn`,
      );
    }
  }
  const cycle = findDependencyCycle(sync, refs.lookupSync);
  if (cycle) {
    return stalled('DependencyCycle', `spec.dependsOn forms a cycle (${cycle.join(' -> ')}): break it`);
  }
  try {
    timetable(spec.schedule);
  } catch (error) {
    const { reason, message } = describeError(error, 'InvalidSchedule');
    return stalled(reason, message);
  }
  if (policy) {
    const allowed = validateSyncPolicy(sync, policy);
    if (!allowed.ok) return allowed;
  }

  const unsupported = destinationProblem(sync, refs.destination, refs);
  if (unsupported) return unsupported;

  const columns = refs.model.status?.columns;
  if (columns && columns.length > 0) {
    const known = new Set(columns.map((c) => c.name));
    const unknown = (spec.mappings ?? []).filter((m) => m.from !== undefined && !known.has(m.from));
    if (unknown.length > 0) {
      const names = unknown.map((m) => `"${m.from}" (to ${m.to})`).join(', ');
      return stalled(
        'UnknownColumn',
        `spec.mappings reads column${unknown.length > 1 ? 's' : ''} ${names} that Model "${refs.model.metadata.name}" ` +
          `does not return; its columns are: ${[...known].slice(0, 50).join(', ')}`,
      );
    }
  }

  if (!isConditionTrue(refs.model.status?.conditions, READY)) {
    return waiting(
      'ModelNotReady',
      `Model "${refs.model.metadata.name}" is not Ready (${notReadyDetail(refs.model)})`,
    );
  }
  if (!isConditionTrue(refs.destination.status?.conditions, READY)) {
    return waiting(
      'DestinationNotReady',
      `Destination "${refs.destination.metadata.name}" is not Ready (${notReadyDetail(refs.destination)})`,
    );
  }
  return OK;
}

/** The first cycle through `sync` in the dependsOn graph, as a path of names; undefined if none. */
export function findDependencyCycle(
  sync: Sync,
  lookup: (name: string) => Sync | undefined,
): string[] | undefined {
  const start = sync.metadata.name;
  const visited = new Set<string>();
  const walk = (name: string, path: string[]): string[] | undefined => {
    const node = name === start ? sync : lookup(name);
    for (const dep of node?.spec.dependsOn ?? []) {
      if (dep.name === start) return [...path, dep.name];
      if (visited.has(dep.name)) continue;
      visited.add(dep.name);
      const found = walk(dep.name, [...path, dep.name]);
      if (found) return found;
    }
    return undefined;
  };
  return walk(start, [start]);
}
