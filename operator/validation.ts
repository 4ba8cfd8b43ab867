import { runsAfter, type Destination, type Model, type Source, type Sync } from '../crds/index.ts';
import type { DestinationCapabilities, DestinationField } from '../core/connectors.ts';
import type { DestinationObjects } from '../core/diffstore/index.ts';
import { describeError } from '../core/errors.ts';
import { capabilityProblem } from '../core/capabilities.ts';
import { isTransientReason } from '../core/reasons.ts';
import { isConditionTrue, findCondition, READY } from './conditions.ts';
import type { OperatorConfig } from './config.ts';
import { runnerSettingsProblem, syncDiffStoreUrl } from './runner-policy.ts';
import { timetable } from './schedule.ts';
import { closestNames } from './destination-objects.ts';
import { COLUMN_KIND_EXAMPLES, columnKind } from '../core/column-types.ts';

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
  /**
   * What the Destination's last connection check discovered of the objects its Syncs target (read from
   * the diff store, operator/destination-objects.ts); undefined when its connector has no `discover`.
   */
  objects?: DestinationObjects;
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
  refs: Pick<SyncReferences, 'capabilities' | 'capabilitiesError' | 'objects'>,
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
  const unsupported = capabilityProblem(refs.capabilities, spec, destinationType, {
    sync: `${sync.metadata.namespace ?? 'default'}/${sync.metadata.name}`,
    ...matchableFields(spec.target?.object, refs.objects),
  });
  return unsupported ? stalled(unsupported.reason, unsupported.message) : undefined;
}

/** The unique, writable fields of the discovered target object: what target.matchField may name. */
function matchableFields(
  objectName: string | undefined,
  discovered: DestinationObjects | undefined,
): { uniqueFields?: string[] } {
  const object = discovered?.objects.find((o) => o.name === objectName);
  if (!object) return {};
  return { uniqueFields: object.fields.filter((f) => f.unique && !f.readOnly).map((f) => f.name) };
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
  const field = runsAfter(spec)?.field ?? 'spec.dependsOn';
  for (const dependency of refs.dependencies) {
    if (dependency.name === sync.metadata.name) {
      return stalled('DependencyCycle', `${field} names the Sync itself: remove it`);
    }
    if (!dependency.sync) {
      return stalled(
        'DependencyNotFound',
        `Sync "${dependency.name}" named in ${field} does not exist in namespace ${ns}: create it, or remove it from ${field}`,
      );
    }
  }
  const cycle = findDependencyCycle(sync, refs.lookupSync);
  if (cycle) {
    return stalled('DependencyCycle', `${field} forms a cycle (${cycle.join(' -> ')}): break it`);
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

  const unknownColumn = unknownColumnProblem(sync, refs.model);
  if (unknownColumn) return unknownColumn;

  const schema = refs.objects ? schemaProblem(sync, refs.objects) : undefined;
  if (schema && schema.ok === false && schema.stalled) return schema;
  const typeFit = typeFitProblem(sync, refs.model, refs.destination, refs);
  if (typeFit) return typeFit;

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
  return schema ?? OK;
}

/** Mappings that read a column the Model does not return (once a run has told its columns). */
function unknownColumnProblem(sync: Sync, model: Model): Verdict | undefined {
  const columns = model.status?.columns;
  if (!columns || columns.length === 0) return undefined;
  const known = new Set(columns.map((c) => c.name));
  const unknown = (sync.spec.mappings ?? []).filter((m) => m.from !== undefined && !known.has(m.from));
  if (unknown.length === 0) return undefined;
  const names = unknown.map((m) => `"${m.from}" (to ${m.to})`).join(', ');
  return stalled(
    'UnknownColumn',
    `spec.mappings reads column${unknown.length > 1 ? 's' : ''} ${names} that Model "${model.metadata.name}" ` +
      `does not return; its columns are: ${[...known].slice(0, 50).join(', ')}`,
  );
}

// ---- the Destination's discovered objects and fields ----

const list = (names: readonly string[], most = 20) =>
  names.length > most ? `${names.slice(0, most).join(', ')}, … (${names.length} in all)` : names.join(', ');

/** The closest names as a question, or the names there are; ends a sentence. */
function suggestion(name: string, candidates: readonly string[], what: string): string {
  const close = closestNames(name, candidates);
  if (close.length > 0) return `did you mean ${close.join(', ')}?`;
  return candidates.length > 0 ? `its ${what} are: ${list(candidates)}.` : `it has no ${what}.`;
}

/**
 * A Sync checked against the objects and fields its Destination's connection check discovered: the
 * target object and the associations' objects exist, every mapped top-level field exists and can be
 * written, static values of enumerations are among the options, match fields are unique. Undefined when
 * nothing is wrong; a waiting verdict when the discovery does not cover an object yet (the check that
 * does is due: the objects are part of the Destination's check hash).
 */
export function schemaProblem(sync: Sync, discovered: DestinationObjects): Verdict | undefined {
  const target = sync.spec.target;
  if (!target?.object) return undefined;
  const who = `Sync ${sync.metadata.namespace ?? 'default'}/${sync.metadata.name}`;
  const destination = `Destination "${discovered.destination}"`;
  const objectNames = discovered.objects.map((o) => o.name);
  const objectOf = (name: string, field: string) => {
    const found = discovered.objects.find((o) => o.name === name);
    if (found) return found;
    if (!discovered.requested.includes(name)) {
      return waiting(
        'DestinationObjectsUnknown',
        `the fields of object "${name}" of ${destination} have not been discovered yet: its connection check runs first`,
      );
    }
    return stalled(
      'UnknownObject',
      `${who}: ${field} "${name}" is not an object of ${destination} (checked ${discovered.discoveredAt}); ` +
        `${suggestion(name, objectNames, 'objects found')} Fix ${field}, or create the object in the tool`,
    );
  };
  const object = objectOf(target.object, 'spec.target.object');
  if ('ok' in object) return object;
  const fields = new Map(object.fields.map((f) => [f.name, f]));
  const fieldNames = object.fields.map((f) => f.name);
  const unknown = (name: string, where: string) =>
    stalled(
      'UnknownField',
      `${who}: ${where} names field "${name}", which object "${object.name}" of ${destination} does not have; ` +
        `${suggestion(name, fieldNames, 'fields')} Fix ${where}, or create the field in the tool`,
    );
  for (const [index, mapping] of (sync.spec.mappings ?? []).entries()) {
    const name = mapping.to.split('.')[0] ?? mapping.to;
    const where = `spec.mappings[${index}].to`;
    const field = fields.get(name);
    if (!field) return unknown(name, where);
    if (field.readOnly) {
      return stalled(
        'ReadOnlyField',
        `${who}: ${where} writes field "${name}" of object "${object.name}", which ${destination} keeps read-only; ` +
          'remove the mapping or map another field',
      );
    }
    const bad = invalidValue(field, mapping.value);
    if (bad) {
      return stalled(
        'InvalidFieldValue',
        `${who}: spec.mappings[${index}].value "${mapping.value}" is not an option of field "${name}" of object ` +
          `"${object.name}"; ${bad}`,
      );
    }
  }
  const matchProblem = (
    objectName: string,
    objectFields: readonly DestinationField[],
    field: string,
    where: string,
  ) => {
    const found = objectFields.find((f) => f.name === field);
    if (!found) {
      return stalled(
        'UnknownField',
        `${who}: ${where} names field "${field}", which object "${objectName}" of ${destination} does not have; ` +
          `${suggestion(
            field,
            objectFields.map((f) => f.name),
            'fields',
          )} Fix ${where}`,
      );
    }
    if (!found.unique) {
      const unique = objectFields.filter((f) => f.unique).map((f) => f.name);
      return stalled(
        'MatchFieldNotUnique',
        `${who}: ${where} "${field}" is not a unique field of object "${objectName}", so rows cannot be matched to ` +
          `records; ${unique.length > 0 ? `match by one of ${list(unique)}` : 'make it unique (an external id) in the tool'}`,
      );
    }
    return undefined;
  };
  if (target.matchField) {
    const problem = matchProblem(object.name, object.fields, target.matchField, 'spec.target.matchField');
    if (problem) return problem;
  }
  for (const [index, association] of (target.associations ?? []).entries()) {
    const associated = objectOf(association.object, `spec.target.associations[${index}].object`);
    if ('ok' in associated) return associated;
    const where = `spec.target.associations[${index}].matchField`;
    const problem = matchProblem(associated.name, associated.fields, association.matchField, where);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * A mapping from a Model column whose kind of values (core/column-types.ts) the destination's connector
 * converts to no value of the field's discovered type (`capabilities.refusedColumns`): every row would be
 * rejected, so the Sync stalls before any run. Needs the Model's column types (known after a run) and the
 * discovered fields; dotted targets (nested values, Salesforce relationships) are not checked.
 */
export function typeFitProblem(
  sync: Sync,
  model: Model,
  destination: Destination,
  refs: Pick<SyncReferences, 'capabilities' | 'objects'>,
): Verdict | undefined {
  const refusedByType = refs.capabilities?.refusedColumns;
  const object = refs.objects?.objects.find((o) => o.name === sync.spec.target?.object);
  const columns = new Map((model.status?.columns ?? []).map((c) => [c.name, c.type]));
  if (!refusedByType || !object || columns.size === 0) return undefined;
  const fields = new Map(object.fields.map((f) => [f.name, f]));
  for (const [index, mapping] of (sync.spec.mappings ?? []).entries()) {
    const type = mapping.from === undefined ? undefined : columns.get(mapping.from);
    const field = fields.get(mapping.to);
    if (type === undefined || !field) continue;
    const kind = columnKind(type);
    const refused = refusedByType[field.type];
    if (!refused?.includes(kind)) continue;
    const fits = (Object.keys(COLUMN_KIND_EXAMPLES) as (keyof typeof COLUMN_KIND_EXAMPLES)[])
      .filter((k) => !refused.includes(k))
      .map((k) => `${k} (${COLUMN_KIND_EXAMPLES[k]})`);
    return stalled(
      'IncompatibleFieldType',
      `Sync ${sync.metadata.namespace ?? 'default'}/${sync.metadata.name}: spec.mappings[${index}] maps column ` +
        `"${mapping.from}" of Model "${model.metadata.name}", of type ${type} (${kind} values), to field ` +
        `"${field.name}" of object "${object.name}", of type ${field.type}, and the ${destination.spec.type} ` +
        `destination converts no ${kind} value to a ${field.type}: every row would be rejected. A ${field.type} ` +
        `field takes ${fits.join(', ')} columns; cast the column in the Model, or map it to another field`,
    );
  }
  return undefined;
}

/** Why a static value does not fit an enumeration field, or undefined. */
function invalidValue(field: DestinationField, value: string | undefined): string | undefined {
  if (value === undefined || field.type !== 'enumeration' || !field.options?.length) return undefined;
  if (field.options.includes(value)) return undefined;
  const close = closestNames(value, field.options);
  return `${close.length > 0 ? `did you mean ${close.join(', ')}? ` : ''}its options are: ${list(field.options)}`;
}

/**
 * Fields the target object requires that no mapping of an insert Sync writes (a Warning Event only: the
 * tool may fill them, with a default or a workflow). Undefined when there are none.
 */
export function unmappedRequiredFields(
  sync: Sync,
  discovered: DestinationObjects | undefined,
): { reason: string; message: string } | undefined {
  const objectName = sync.spec.target?.object;
  if (!discovered || sync.spec.mode !== 'insert' || !objectName || !sync.spec.mappings) return undefined;
  const object = discovered.objects.find((o) => o.name === objectName);
  if (!object) return undefined;
  const written = new Set(sync.spec.mappings.map((m) => m.to.split('.')[0]));
  const missing = object.fields
    .filter((f) => f.required && !f.readOnly && !written.has(f.name))
    .map((f) => f.name);
  if (missing.length === 0) return undefined;
  return {
    reason: 'RequiredFieldUnmapped',
    message:
      `Sync ${sync.metadata.namespace ?? 'default'}/${sync.metadata.name} inserts into object "${objectName}" without ` +
      `mapping its required field${missing.length > 1 ? 's' : ''} ${list(missing)}: records may be rejected unless ` +
      'the tool fills them; add a mapping for each',
  };
}

/** The first cycle through `sync` in the graph of the Syncs each runs after (dependsOn or afterSyncs), as a path of names; undefined if none. */
export function findDependencyCycle(
  sync: Sync,
  lookup: (name: string) => Sync | undefined,
): string[] | undefined {
  const start = sync.metadata.name;
  const visited = new Set<string>();
  const walk = (name: string, path: string[]): string[] | undefined => {
    const node = name === start ? sync : lookup(name);
    for (const name of (node ? runsAfter(node.spec)?.names : undefined) ?? []) {
      if (name === start) return [...path, name];
      if (visited.has(name)) continue;
      visited.add(name);
      const found = walk(name, [...path, name]);
      if (found) return found;
    }
    return undefined;
  };
  return walk(start, [start]);
}
