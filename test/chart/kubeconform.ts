import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureGoTool } from '../stack/build.ts';
import { exec } from './helm.ts';

type Schema = Record<string, unknown>;

/**
 * Standalone, strict JSON schemas for kubeconform from a live API server's OpenAPI v2 document (kubeconform's
 * own schemas come from the internet, which the tests do not reach). One file per kind, named as
 * kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json`, each carrying every definition so `$ref`s
 * resolve inside the file. Strict: objects with declared properties reject unknown ones.
 */
export function writeSchemas(
  openapi: { definitions: Record<string, Schema> },
  dir: string,
  kinds: Set<string>,
): string[] {
  mkdirSync(dir, { recursive: true });
  const definitions = strictDefinitions(openapi.definitions);
  const written: string[] = [];
  for (const [name, schema] of Object.entries(openapi.definitions)) {
    const gvks =
      (schema['x-kubernetes-group-version-kind'] as
        Array<{ group: string; version: string; kind: string }> | undefined) ?? [];
    for (const { group, version, kind } of gvks) {
      const apiVersion = group ? `${group}/${version}` : version;
      if (!kinds.has(`${apiVersion}/${kind}`)) continue;
      const suffix = group ? `-${group.split('.')[0]}-${version}` : `-${version}`;
      const file = join(dir, `${kind.toLowerCase()}${suffix}.json`);
      writeFileSync(file, JSON.stringify({ $ref: `#/definitions/${name}`, definitions }));
      written.push(`${apiVersion}/${kind}`);
    }
  }
  return written;
}

function strictDefinitions(definitions: Record<string, Schema>): Record<string, Schema> {
  const fix = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(fix);
    if (!node || typeof node !== 'object') return node;
    const schema = Object.fromEntries(
      Object.entries(node as Schema).map(([k, v]) => [
        k,
        k === 'x-kubernetes-group-version-kind' ? v : fix(v),
      ]),
    );
    // OpenAPI v2 says "string" for int-or-string and quantities; JSON schema needs both spelled out.
    if (schema['format'] === 'int-or-string') return { oneOf: [{ type: 'string' }, { type: 'integer' }] };
    if (schema['properties'] && schema['additionalProperties'] === undefined)
      schema['additionalProperties'] = false;
    return schema;
  };
  const fixed = fix(definitions) as Record<string, Schema>;
  const quantity = 'io.k8s.apimachinery.pkg.api.resource.Quantity';
  if (fixed[quantity]) fixed[quantity] = { oneOf: [{ type: 'string' }, { type: 'number' }] };
  return fixed;
}

export interface KubeconformResult {
  valid: number;
  invalid: string[];
  skipped: string[];
}

/** Validates manifests with kubeconform against the schemas in `schemaDir`; unknown kinds are reported as skipped. */
export async function kubeconform(manifestFile: string, schemaDir: string): Promise<KubeconformResult> {
  const binary = await ensureGoTool('kubeconform');
  const args = [
    '-strict',
    '-summary',
    '-verbose',
    '-output',
    'json',
    '-ignore-missing-schemas',
    '-schema-location',
    `${schemaDir}/{{ .ResourceKind }}{{ .KindSuffix }}.json`,
    manifestFile,
  ];
  const { stdout, stderr } = await exec(binary, args);
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new Error(`kubeconform printed no report: ${stderr || stdout}`);
  }
  const report = parsed as {
    resources: Array<{ kind: string; name: string; status: string; msg: string }>;
    summary: { valid: number };
  };
  const invalid = report.resources
    .filter((r) => r.status === 'statusInvalid' || r.status === 'statusError')
    .map((r) => `${r.kind}/${r.name}: ${r.msg}`);
  const skipped = report.resources.filter((r) => r.status === 'statusSkipped').map((r) => r.kind);
  return { valid: report.summary.valid, invalid, skipped };
}
