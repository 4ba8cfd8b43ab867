import { closestName } from '../../crds/checks.ts';
import type { FilterableColumn, ModelSpec, Relationship, SegmentCondition } from '../../crds/index.ts';
import { SEGMENT_MAX_PARENT_DEPTH } from '../../crds/segment.ts';
import { SynclineError } from '../errors.ts';

// Resolves a segment Model against the Models it names (its parent chain, the related Models, the
// segments of inSegment) and checks every name a condition uses, before any SQL is built.

/** How deep inSegment may nest (a segment in a segment in ...). */
export const IN_SEGMENT_MAX_DEPTH = 5;

export interface NamedModel {
  name: string;
  spec: ModelSpec;
}

/** Finds a Model of the namespace by name. */
export type ModelLookup = (name: string) => ModelSpec | undefined;

/** The Model whose rows a segment selects from, and the conditions of each segment on the way to it. */
export interface ResolvedChain {
  root: NamedModel;
  /** The where of each segment from the root down to the segment itself (all must hold). */
  conditions: SegmentCondition[];
  /** Every Model this segment depends on, for the operator to watch. */
  dependsOn: Set<string>;
}

function lookupOrFail(lookup: ModelLookup, name: string, what: string): ModelSpec {
  const spec = lookup(name);
  if (!spec)
    throw new SynclineError('SegmentNotFound', `${what} Model "${name}" does not exist in the namespace`);
  return spec;
}

/** Walk a segment's parents to the first Model that is not a segment. */
export function resolveChain(model: NamedModel, lookup: ModelLookup, seen: string[] = []): ResolvedChain {
  const conditions: SegmentCondition[] = [];
  const dependsOn = new Set<string>();
  let current = model;
  const path = [...seen];
  for (;;) {
    if (path.includes(current.name))
      throw new SynclineError(
        'SegmentCycle',
        `segments refer to each other in a circle: ${[...path, current.name].join(' -> ')}`,
      );
    path.push(current.name);
    const segment = current.spec.segment;
    if (!segment) break;
    if (conditions.length >= SEGMENT_MAX_PARENT_DEPTH)
      throw new SynclineError(
        'SegmentTooDeep',
        `segment "${model.name}" is more than ${SEGMENT_MAX_PARENT_DEPTH} segments deep (${path.join(' -> ')}); point it at a Model nearer the root`,
      );
    conditions.unshift(segment.where);
    const parentName = segment.parent.name;
    const parent = lookupOrFail(lookup, parentName, `segment "${current.name}": parent`);
    if (parent.sourceRef.name !== current.spec.sourceRef.name)
      throw new SynclineError(
        'InvalidSegment',
        `segment "${current.name}" reads Source "${current.spec.sourceRef.name}" but its parent "${parentName}" reads "${parent.sourceRef.name}"; a segment uses its parent's Source`,
      );
    dependsOn.add(parentName);
    current = { name: parentName, spec: parent };
  }
  return { root: current, conditions, dependsOn };
}

export function filterableOf(model: NamedModel): FilterableColumn[] {
  return model.spec.filterable ?? [];
}

/** The declared column, or UnknownSegmentColumn naming the closest ones. */
export function columnOf(model: NamedModel, name: string, where: string): FilterableColumn {
  const columns = filterableOf(model);
  const found = columns.find((c) => c.name === name);
  if (found) return found;
  const known = columns.map((c) => c.name);
  throw new SynclineError(
    'UnknownSegmentColumn',
    known.length === 0
      ? `${where}: column "${name}" is not filterable: Model "${model.name}" lists no spec.filterable columns`
      : `${where}: column "${name}" is not a filterable column of Model "${model.name}": ${closestName(name, known)}`,
  );
}

export function relationshipOf(model: NamedModel, name: string, where: string): Relationship {
  const relationships = model.spec.relationships ?? [];
  const found = relationships.find((r) => r.name === name);
  if (found) return found;
  const known = relationships.map((r) => r.name);
  throw new SynclineError(
    'UnknownRelationship',
    known.length === 0
      ? `${where}: relationship "${name}": Model "${model.name}" declares no spec.relationships`
      : `${where}: relationship "${name}" is not declared by Model "${model.name}": ${closestName(name, known).replace('the known fields are', 'the relationships are')}`,
  );
}

/** The related Model of a relationship, on the same Source as the root. */
export function relatedModel(root: NamedModel, relationship: Relationship, lookup: ModelLookup): NamedModel {
  const name = relationship.modelRef.name;
  const spec = lookupOrFail(lookup, name, `relationship "${relationship.name}":`);
  if (spec.sourceRef.name !== root.spec.sourceRef.name)
    throw new SynclineError(
      'InvalidSegment',
      `relationship "${relationship.name}": Model "${name}" reads Source "${spec.sourceRef.name}", not "${root.spec.sourceRef.name}"; related Models must be on the parent's Source`,
    );
  return { name, spec };
}
