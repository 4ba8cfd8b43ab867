import { z } from 'zod';

/** An OpenAPI v3 schema node as a CRD carries it. */
export type JSONSchemaNode = { [key: string]: unknown };

const DROPPED_KEYS = new Set(['$schema', 'propertyNames', 'definitions', '$defs', 'id', '$id']);
const INT_LIMIT = Number.MAX_SAFE_INTEGER;

/**
 * Turn a zod schema into a structural OpenAPI v3 schema, as CustomResourceDefinitions require: every
 * node typed, no $ref, no anyOf of unrelated types, no additionalProperties next to properties.
 */
export function toStructuralSchema(schema: z.ZodType): JSONSchemaNode {
  const raw = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'any',
  }) as JSONSchemaNode;
  return structural(raw);
}

function structural(node: JSONSchemaNode): JSONSchemaNode {
  if (node['x-kubernetes-int-or-string'] === true) {
    // An integer or a string (a union in zod): the one untyped node CEL rules can still read.
    const out: JSONSchemaNode = { 'x-kubernetes-int-or-string': true };
    if (typeof node['description'] === 'string') out['description'] = node['description'];
    return out;
  }
  if (node['x-kubernetes-preserve-unknown-fields'] === true && node['type'] === undefined) {
    // Free-form JSON (for example a static mapping value): any type, kept as given.
    const out: JSONSchemaNode = { 'x-kubernetes-preserve-unknown-fields': true };
    if (typeof node['description'] === 'string') out['description'] = node['description'];
    return out;
  }
  const out: JSONSchemaNode = {};
  for (const [key, value] of Object.entries(node)) {
    if (DROPPED_KEYS.has(key)) continue;
    if (key === 'additionalProperties' && (value === false || node['properties'] !== undefined)) continue;
    if ((key === 'maximum' && value === INT_LIMIT) || (key === 'minimum' && value === -INT_LIMIT)) continue;
    if (key === 'properties') {
      out[key] = Object.fromEntries(
        Object.entries(value as Record<string, JSONSchemaNode>).map(([name, child]) => [
          name,
          structural(child),
        ]),
      );
    } else if (key === 'items' || key === 'additionalProperties') {
      out[key] = structural(value as JSONSchemaNode);
    } else if (key === 'allOf' || key === 'anyOf' || key === 'oneOf') {
      throw new Error(
        `CRD schemas must be structural; found ${key} in ${JSON.stringify(node).slice(0, 200)}`,
      );
    } else {
      out[key] = value;
    }
  }
  if (out['type'] === undefined) {
    throw new Error(`every CRD schema node needs a type; found ${JSON.stringify(node).slice(0, 200)}`);
  }
  if (Array.isArray(out['required']) && out['required'].length === 0) delete out['required'];
  return out;
}
