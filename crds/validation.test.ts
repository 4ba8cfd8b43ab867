import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { validateSync } from '../operator/validation.ts';
import {
  INVALID_CASES,
  OPERATOR_INVALID_SYNCS,
  VALID_SPECS,
  caseObject,
  objectFor,
} from '../test/fixtures/invalid-resources.ts';
import { checkResource } from './checks.ts';
import { OBJECT_SCHEMAS, type Destination, type Model, type Sync } from './index.ts';

const EXAMPLES = new URL('../examples/', import.meta.url).pathname;

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(entry) ? [path] : [];
  });
}

describe('zod schemas (the same rules the API server applies)', () => {
  it.each(Object.entries(VALID_SPECS))('accepts the valid %s the invalid cases start from', (kind, spec) => {
    const schema = OBJECT_SCHEMAS[kind as keyof typeof OBJECT_SCHEMAS];
    expect(schema.safeParse(objectFor(kind as never, 'ok', spec)).error).toBeUndefined();
  });

  it.each(INVALID_CASES)('rejects $kind: $name', (c) => {
    const result = checkResource(c.kind, caseObject(c, 'bad'));
    expect(result.ok).toBe(false);
    if (c.rule && !result.ok)
      expect(result.problems.map((p) => p.message)).toEqual(
        expect.arrayContaining([expect.stringContaining(c.api)]),
      );
  });

  it.each(OPERATOR_INVALID_SYNCS)(
    'rejects, with the reason and message the operator stalls the Sync with: $name',
    (c) => {
      const sync = objectFor('Sync', 'bad', c.spec(VALID_SPECS.Sync));
      expect(OBJECT_SCHEMAS.Sync.safeParse(sync).success).toBe(true); // the API server's rules pass
      const result = checkResource('Sync', sync);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.problems[0]?.message).toContain(`${c.message}`);
      if (!result.ok) expect(result.problems[0]?.message).toContain(`(${c.reason})`);
      const parsed = OBJECT_SCHEMAS.Sync.parse(sync) as Sync;
      const verdict = validateSync(parsed, {
        model: objectFor('Model', 'customers', VALID_SPECS.Model) as unknown as Model,
        destination: objectFor('Destination', 'crm', VALID_SPECS.Destination) as unknown as Destination,
        dependencies: [],
        lookupSync: () => undefined,
      });
      expect(verdict).toMatchObject({ ok: false, stalled: true, reason: c.reason });
      if (!verdict.ok) expect(verdict.message).toContain(c.message);
    },
  );

  it('accepts every Syncline resource in examples/', () => {
    const files = yamlFiles(EXAMPLES);
    expect(files.length).toBeGreaterThanOrEqual(5);
    let checked = 0;
    for (const file of files) {
      for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
        const obj = doc.toJS() as { kind?: string; apiVersion?: string };
        if (obj?.apiVersion !== 'syncline.io/v1alpha1') continue;
        const schema = OBJECT_SCHEMAS[obj.kind as keyof typeof OBJECT_SCHEMAS];
        expect(schema, `${file}: unknown kind ${obj.kind}`).toBeDefined();
        const result = checkResource(obj.kind as keyof typeof OBJECT_SCHEMAS, obj);
        expect(result.ok ? [] : result.problems, file).toEqual([]);
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(20);
  });
});
