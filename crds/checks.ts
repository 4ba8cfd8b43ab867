import { CronExpressionParser } from 'cron-parser';
import type { z } from 'zod';
import { toStructuralSchema, type JSONSchemaNode } from './openapi.ts';
import { OBJECT_SCHEMAS, RESOURCES, type SynclineObject } from './resources.ts';
import { parseGoDuration } from './rules.ts';
import type { Schedule } from './sync.ts';

// Everything a Syncline resource must pass before anything acts on it, as one function for resources
// read from files (the embedded CLI), where no API server stands in front of them: the zod schemas
// (types, patterns and the CEL rules), what the API server adds under strict field validation (unknown
// fields, object names), and the operator's own checks that need no other object (the schedule).

type Kind = keyof typeof OBJECT_SCHEMAS;

/** One thing wrong with a resource: the field (`spec.mode`, `metadata.name`) and a message naming it. */
export interface ResourceProblem {
  path: string;
  message: string;
}

export type ResourceCheck =
  { ok: true; resource: SynclineObject } | { ok: false; problems: ResourceProblem[] };

/** The ObjectMeta fields of the Kubernetes API: any other field under metadata is unknown. */
const OBJECT_META_FIELDS = [
  'name',
  'generateName',
  'namespace',
  'selfLink',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
  'managedFields',
];
const TOP_LEVEL_FIELDS = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];

// The API server's own words for object names (k8s.io/apimachinery validation).
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN_MESSAGE =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')";
const LABEL_MESSAGE =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name')";

const specSchemas = new Map<string, JSONSchemaNode>();
function specSchema(kind: Kind): JSONSchemaNode {
  let schema = specSchemas.get(kind);
  if (!schema) {
    const def = RESOURCES.find((r) => r.kind === kind) as (typeof RESOURCES)[number];
    schema = toStructuralSchema(def.spec);
    specSchemas.set(kind, schema);
  }
  return schema;
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1;
      row.push(Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost));
    }
    previous = row;
  }
  return previous[b.length] ?? 0;
}

/** "did you mean" the closest known name, or the list of known names when none is close. */
export function closestName(name: string, known: readonly string[]): string {
  const ranked = known.map((k) => ({ k, d: distance(name, k) })).sort((x, y) => x.d - y.d);
  const best = ranked[0];
  if (best && best.d <= Math.max(2, Math.floor(name.length / 3))) return `did you mean "${best.k}"?`;
  return known.length > 0 ? `the known fields are: ${known.join(', ')}` : 'this object has no fields';
}

function unknownField(path: string, field: string, known: readonly string[]): ResourceProblem {
  return { path, message: `unknown field "${path}": ${closestName(field, known)}` };
}

/**
 * Fields the structural schema does not declare: what the API server prunes, or rejects as `unknown
 * field "spec.x"` under strict field validation (kubectl's default).
 */
function unknownFields(node: JSONSchemaNode, value: unknown, path: string, out: ResourceProblem[]): void {
  if (node['x-kubernetes-preserve-unknown-fields'] === true || value === null || typeof value !== 'object')
    return;
  if (Array.isArray(value)) {
    const items = node['items'] as JSONSchemaNode | undefined;
    if (items) value.forEach((item, i) => unknownFields(items, item, `${path}[${i}]`, out));
    return;
  }
  const properties = node['properties'] as Record<string, JSONSchemaNode> | undefined;
  const extra = node['additionalProperties'] as JSONSchemaNode | undefined;
  for (const [key, child] of Object.entries(value)) {
    const childSchema = properties?.[key] ?? (typeof extra === 'object' ? extra : undefined);
    if (childSchema) unknownFields(childSchema, child, `${path}.${key}`, out);
    else if (node['type'] === 'object')
      out.push(unknownField(`${path}.${key}`, key, Object.keys(properties ?? {})));
  }
}

function outerProblems(obj: Record<string, unknown>): ResourceProblem[] {
  const problems: ResourceProblem[] = [];
  for (const key of Object.keys(obj))
    if (!TOP_LEVEL_FIELDS.includes(key)) problems.push(unknownField(key, key, TOP_LEVEL_FIELDS));
  const metadata = obj['metadata'];
  if (metadata && typeof metadata === 'object' && !Array.isArray(metadata)) {
    const meta = metadata as Record<string, unknown>;
    for (const key of Object.keys(meta))
      if (!OBJECT_META_FIELDS.includes(key))
        problems.push(unknownField(`metadata.${key}`, key, OBJECT_META_FIELDS));
    const { name, namespace } = meta;
    if (typeof name === 'string' && name !== '' && !DNS1123_SUBDOMAIN.test(name))
      problems.push({
        path: 'metadata.name',
        message: `metadata.name: Invalid value: "${name}": ${SUBDOMAIN_MESSAGE}`,
      });
    if (typeof namespace === 'string' && (!DNS1123_LABEL.test(namespace) || namespace.length > 63))
      problems.push({
        path: 'metadata.namespace',
        message: `metadata.namespace: Invalid value: "${namespace}": ${LABEL_MESSAGE}`,
      });
  }
  return problems;
}

export function isValidTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

/**
 * What the operator finds wrong with a schedule beyond its pattern (the API server checks only the
 * shape of a cron expression): values out of range, an impossible date, an unknown time zone.
 * The reason is the one the Sync's Stalled condition carries.
 */
export function scheduleProblem(
  schedule: Schedule | undefined,
): { reason: 'InvalidSchedule' | 'InvalidTimeZone'; path: string; message: string } | undefined {
  if (schedule?.interval !== undefined) {
    const ms = parseGoDuration(schedule.interval);
    if (ms === undefined || ms <= 0) {
      return {
        reason: 'InvalidSchedule',
        path: 'spec.schedule.interval',
        message: `schedule.interval "${schedule.interval}" is not a duration such as 15m`,
      };
    }
    return undefined;
  }
  if (schedule?.cron === undefined) return undefined;
  const tz = schedule.timeZone ?? 'UTC';
  if (!isValidTimeZone(tz)) {
    return {
      reason: 'InvalidTimeZone',
      path: 'spec.schedule.timeZone',
      message: `schedule.timeZone "${tz}" is not an IANA time zone; use a name such as Europe/Berlin or America/New_York`,
    };
  }
  try {
    CronExpressionParser.parse(schedule.cron, { currentDate: new Date(0), tz }).next();
  } catch (error) {
    return {
      reason: 'InvalidSchedule',
      path: 'spec.schedule.cron',
      message: `schedule.cron "${schedule.cron}" cannot be evaluated: ${String(error)}`,
    };
  }
  return undefined;
}

function zodPath(path: readonly PropertyKey[]): string {
  return (
    path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('')
      .replace(/^\./, '') || '(root)'
  );
}

/**
 * Check one Syncline resource (a parsed YAML or JSON object whose kind is Source, Model, Destination,
 * Sync or Sequence) as the API server and the operator would; every problem at once.
 */
export function checkResource(kind: Kind, obj: Record<string, unknown>): ResourceCheck {
  const problems = outerProblems(obj);
  unknownFields(specSchema(kind), obj['spec'], 'spec', problems);
  const parsed = (OBJECT_SCHEMAS[kind] as z.ZodType).safeParse(obj);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = zodPath(issue.path);
      problems.push({ path, message: `${path}: ${issue.message}` });
    }
  } else if (kind === 'Sync' || kind === 'Sequence') {
    const problem = scheduleProblem((parsed.data as { spec: { schedule?: Schedule } }).spec.schedule);
    if (problem)
      problems.push({
        path: problem.path,
        message: `${problem.path}: ${problem.message} (${problem.reason})`,
      });
  }
  if (problems.length > 0 || !parsed.success) return { ok: false, problems };
  return { ok: true, resource: parsed.data as SynclineObject };
}
