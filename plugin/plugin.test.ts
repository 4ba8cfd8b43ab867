import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DiffStore, type DestinationObjects } from '../core/diffstore/index.ts';
import { secretResolver } from '../core/secrets.ts';
import { openBlobStore } from '../core/storage/index.ts';
import type { Destination } from '../crds/index.ts';
import type { PluginCluster } from './cluster.ts';
import { fields, fieldsView, secretRefs } from './commands.ts';
import { duration, relative, render, table } from './format.ts';
import { main } from './main.ts';

describe('kubectl syncline output', () => {
  it('pads tables like kubectl', () => {
    expect(
      table(
        ['NAME', 'READY'],
        [
          ['contacts', 'True'],
          ['a', 'False'],
        ],
      ),
    ).toBe('NAME       READY\ncontacts   True\na          False');
  });

  it('renders JSON, YAML or text', () => {
    const data = { items: [{ name: 'contacts' }] };
    expect(JSON.parse(render('json', data, () => 'x'))).toEqual(data);
    expect(render('yaml', data, () => 'x')).toBe('items:\n  - name: contacts');
    expect(render('text', data, () => 'the text')).toBe('the text');
  });

  it('says times relative to now', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    expect(relative('2026-01-01T11:57:00Z', now)).toBe('3m ago');
    expect(relative('2026-01-01T14:00:00Z', now)).toBe('in 2h');
    expect(relative(undefined, now)).toBe('-');
    expect(duration('2026-01-01T12:00:00Z', '2026-01-01T12:01:30Z')).toBe('1m30s');
  });

  it('finds every secretKeyRef a plan needs', () => {
    const spec = {
      postgres: { password: { secretKeyRef: { name: 'pg', key: 'password' } } },
      http: { headers: [{ valueFrom: { secretKeyRef: { name: 'crm', key: 'token' } } }] },
    };
    expect(secretRefs(spec)).toEqual([
      { name: 'pg', key: 'password' },
      { name: 'crm', key: 'token' },
    ]);
  });
});

describe('kubectl syncline errors', () => {
  it('an unknown command exits 2 and points at --help', async () => {
    const lines: string[] = [];
    const stderr = process.stderr.write;
    process.stderr.write = ((chunk: string) =>
      lines.push(chunk) > 0) as unknown as typeof process.stderr.write;
    try {
      expect(await main(['node', 'kubectl-syncline', 'frob'], { out: (t) => lines.push(t) })).toBe(2);
    } finally {
      process.stderr.write = stderr;
    }
    expect(lines.join('')).toContain("unknown command 'frob'");
  });

  it('a missing kubeconfig is one line that says so', async () => {
    const lines: string[] = [];
    const stderr = process.stderr.write;
    process.stderr.write = ((chunk: string) =>
      lines.push(chunk) > 0) as unknown as typeof process.stderr.write;
    try {
      const code = await main(
        ['node', 'kubectl-syncline', 'status', '--kubeconfig', '/nonexistent/kubeconfig'],
        { out: (t) => lines.push(t) },
      );
      expect(code).toBe(1);
    } finally {
      process.stderr.write = stderr;
    }
    expect(lines.join('')).toMatch(
      /^error: cannot read your kubeconfig: .*\/nonexistent\/kubeconfig.* \(KubeConfigInvalid\)\n$/,
    );
  });
});

describe('kubectl syncline fields', () => {
  const discovered: DestinationObjects = {
    version: 1,
    destination: 'crm',
    discoveredAt: '2026-01-01T12:00:00.000Z',
    requested: ['contacts', 'tickets'],
    objects: [
      {
        name: 'contacts',
        label: 'Contacts',
        fields: [
          { name: 'lifecyclestage', type: 'enumeration', options: ['lead', 'customer'] },
          { name: 'email', type: 'string', unique: true, required: true },
          { name: 'hs_object_id', type: 'id', unique: true, readOnly: true },
        ],
      },
    ],
  };
  const crm = (checked = true): Destination =>
    ({
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'Destination',
      metadata: { name: 'crm', namespace: 'team-a' },
      spec: { type: 'hubspot' },
      status: checked ? { lastCheckedAt: '2026-01-01T12:00:01Z' } : {},
    }) as unknown as Destination;

  it('lists the fields like kubectl explain, or as data', () => {
    const view = fieldsView(crm(), discovered, 'contacts');
    expect(view.text).toBe(
      [
        'DESTINATION: team-a/crm (hubspot)',
        'OBJECT:      contacts (Contacts)',
        'DISCOVERED:  2026-01-01T12:00:00.000Z',
        '',
        'FIELDS (3):',
        'NAME             TYPE          REQUIRED   UNIQUE   READ-ONLY   OPTIONS',
        'email            string        yes        yes',
        'hs_object_id     id                       yes      yes',
        'lifecyclestage   enumeration                                   lead, customer',
      ].join('\n'),
    );
    expect(view.data).toMatchObject({ object: 'contacts', fields: discovered.objects[0]!.fields });
  });

  it('says clearly when the Destination was not checked or has no such object', () => {
    const message = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        return (error as Error).message;
      }
      return 'no error';
    };
    expect(message(() => fieldsView(crm(false), undefined, 'contacts'))).toContain(
      'has not been checked yet',
    );
    expect(message(() => fieldsView(crm(), undefined, 'contacts'))).toContain('no fields were discovered');
    expect(message(() => fieldsView(crm(), discovered, 'tickets'))).toContain(
      'has no object "tickets" (checked 2026-01-01T12:00:00.000Z); objects found: contacts',
    );
    expect(message(() => fieldsView(crm(), discovered, 'deals'))).toContain('have not been discovered');
  });

  it('reads the discovery from the diff store', async () => {
    const root = mkdtempSync(join(tmpdir(), 'syncline-plugin-fields-'));
    try {
      const blob = openBlobStore(`file://${root}`, { secrets: secretResolver({}) });
      await DiffStore.writeDestinationObjects(blob, 'team-a', discovered);
      const lines: string[] = [];
      const cluster = {
        namespace: 'team-a',
        get: async () => crm(),
        operatorDiffStoreUrl: async () => `file://${root}`,
      } as unknown as PluginCluster;
      await fields(cluster, 'crm', 'contacts', {}, 'json', { out: (t) => lines.push(t) });
      expect(JSON.parse(lines.join(''))).toMatchObject({ destination: 'crm', object: 'contacts' });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
