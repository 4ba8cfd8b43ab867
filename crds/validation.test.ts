import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { INVALID_CASES, VALID_SPECS, objectFor } from '../test/fixtures/invalid-resources.ts';
import { OBJECT_SCHEMAS } from './index.ts';

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
    const result = OBJECT_SCHEMAS[c.kind].safeParse(objectFor(c.kind, 'bad', c.spec(VALID_SPECS[c.kind])));
    expect(result.success).toBe(false);
    if (c.rule)
      expect(result.error?.issues.map((i) => i.message)).toEqual(
        expect.arrayContaining([expect.stringContaining(c.api)]),
      );
  });

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
        const result = schema.safeParse(obj);
        expect(result.error?.issues ?? [], file).toEqual([]);
        checked += 1;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(20);
  });
});
