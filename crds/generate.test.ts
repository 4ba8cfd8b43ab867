import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderCustomResourceDefinitions } from './render.ts';

describe('generated CRD YAML', () => {
  it.each(renderCustomResourceDefinitions())(
    'crds/$file is up to date (run npm run generate)',
    ({ file, yaml }) => {
      const committed = readFileSync(new URL(file, import.meta.url), 'utf8');
      expect(committed).toBe(yaml);
    },
  );

  it('is structural: every schema node has a type or preserves unknown fields', () => {
    const untyped: string[] = [];
    const walk = (node: Record<string, unknown>, path: string) => {
      if (
        node['type'] === undefined &&
        node['x-kubernetes-preserve-unknown-fields'] !== true &&
        node['x-kubernetes-int-or-string'] !== true
      )
        untyped.push(path);
      for (const [key, child] of Object.entries(
        (node['properties'] as Record<string, Record<string, unknown>>) ?? {},
      )) {
        walk(child, `${path}.${key}`);
      }
      if (node['items']) walk(node['items'] as Record<string, unknown>, `${path}[]`);
    };
    for (const { yaml } of renderCustomResourceDefinitions()) {
      const crd = parse(yaml);
      walk(crd.spec.versions[0].schema.openAPIV3Schema, crd.spec.names.kind);
    }
    expect(untyped).toEqual([]);
  });

  it('describes every spec field', () => {
    const undescribed: string[] = [];
    const walk = (node: Record<string, unknown>, path: string) => {
      if (typeof node['description'] !== 'string' || node['description'] === '') undescribed.push(path);
      for (const [key, child] of Object.entries(
        (node['properties'] as Record<string, Record<string, unknown>>) ?? {},
      )) {
        walk(child, `${path}.${key}`);
      }
    };
    for (const { yaml } of renderCustomResourceDefinitions()) {
      const crd = parse(yaml);
      walk(crd.spec.versions[0].schema.openAPIV3Schema.properties.spec, `${crd.spec.names.kind}.spec`);
    }
    expect(undescribed).toEqual([]);
  });
});
