import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { destinationSpec, isCredentialHeader } from './destination.ts';
import { renderCustomResourceDefinitions } from './render.ts';

const http = (headers: unknown[]) => ({
  type: 'http',
  http: { url: 'https://api.example.com/contacts/{{ row.id }}', headers },
});

function problems(spec: unknown): string[] {
  const result = destinationSpec.safeParse(spec);
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('http headers that carry credentials', () => {
  it.each([
    'Authorization',
    'proxy-authorization',
    'Cookie',
    'X-Api-Key',
    'Api-Key',
    'X-Auth-Token',
    'X-Client-Secret',
    'X-Password',
  ])('refuses a plain value for %s, naming the fix', (name) => {
    expect(problems(http([{ name, value: 'Bearer abc' }]))).toEqual([
      'http.headers.0.value: a header whose name carries a credential (Authorization, Proxy-Authorization, Cookie, *-Key, *-Token, *-Secret, ...) must not have a plain value: put the value in a Secret and use valueFrom.secretKeyRef',
    ]);
  });

  it('accepts the same headers from a Secret, and plain values for other headers', () => {
    const fromSecret = { valueFrom: { secretKeyRef: { name: 'crm', key: 'token' } } };
    expect(
      problems(
        http([
          { name: 'Authorization', ...fromSecret },
          { name: 'X-Api-Key', ...fromSecret },
          { name: 'Content-Type', value: 'application/json' },
          { name: 'X-Team', value: 'growth' },
          { name: 'X-Idempotency-Key', value: 'not a credential' },
        ]),
      ),
    ).toEqual([]);
    expect(isCredentialHeader('Keep-Alive')).toBe(false);
    expect(isCredentialHeader('Idempotency-Key')).toBe(false);
  });

  it('is a CEL rule of the Destination CRD too', () => {
    const crd = renderCustomResourceDefinitions().find((c) => c.file === 'syncline.io_destinations.yaml');
    type Node = { properties: Record<string, Node>; items: Node; 'x-kubernetes-validations': unknown };
    const doc = parse(crd?.yaml ?? '') as { spec: { versions: { schema: { openAPIV3Schema: Node } }[] } };
    const header =
      doc.spec.versions[0]!.schema.openAPIV3Schema.properties['spec']!.properties['http']!.properties[
        'headers'
      ]!.items;
    const rules = header['x-kubernetes-validations'] as { rule: string; fieldPath?: string }[];
    expect(rules).toContainEqual(
      expect.objectContaining({
        rule: expect.stringContaining("self.name.matches('(?i)^((proxy-)?authorization"),
        fieldPath: '.value',
      }),
    );
  });
});
