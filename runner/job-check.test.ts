// The connection check's discovery: what a connector with `discover` found is written to the diff store
// beside the namespace's Syncs; the termination message only counts it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { DestinationConnector } from '../core/connectors.ts';
import { DiffStore } from '../core/diffstore/index.ts';
import { silentLogger } from '../core/logger.ts';
import { checkPlan } from '../core/plan.ts';
import { secretResolver } from '../core/secrets.ts';
import { openBlobStore } from '../core/storage/index.ts';
import { discoverObjects } from './job.ts';

const root = mkdtempSync(join(tmpdir(), 'syncline-check-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const plan = (over: object = {}) =>
  checkPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'CheckPlan',
    namespace: 'team-a',
    target: {
      kind: 'Destination',
      name: 'crm',
      spec: { type: 'http', http: { url: 'http://127.0.0.1:9/' } },
    },
    objects: ['contacts', 'tickets'],
    diffStore: { url: `file://${root}` },
    ...over,
  });
const context = {
  secrets: secretResolver({}),
  log: silentLogger(),
  signal: new AbortController().signal,
  tmpDir: root,
};
const connector = (asked: string[][]): DestinationConnector =>
  ({
    capabilities: {} as never,
    check: async () => {},
    open: async () => ({}) as never,
    discover: async (_spec, _ctx, objects) => {
      asked.push(objects);
      return [
        {
          name: 'contacts',
          label: 'Contacts',
          fields: [
            { name: 'email', label: 'email', type: 'string', unique: true, required: false, options: [] },
            { name: 'stage', label: 'Lifecycle stage', type: 'enumeration', options: ['lead'] },
          ],
        },
      ];
    },
  }) as DestinationConnector;

describe('discovery in the connection check', () => {
  it('writes what discover found, compact, and says how much', async () => {
    const asked: string[][] = [];
    const said = await discoverObjects(plan(), connector(asked), context);
    expect(asked).toEqual([['contacts', 'tickets']]);
    expect(said).toBe('discovered 1 object with 2 fields (not found: tickets)');
    const stored = await DiffStore.readDestinationObjects(
      openBlobStore(`file://${root}`, { secrets: secretResolver({}) }),
      'team-a',
      'crm',
    );
    expect(stored).toMatchObject({ destination: 'crm', requested: ['contacts', 'tickets'] });
    expect(stored?.objects[0]?.fields).toEqual([
      { name: 'email', type: 'string', unique: true },
      { name: 'stage', label: 'Lifecycle stage', type: 'enumeration', options: ['lead'] },
    ]);
  });

  it('does nothing for a connector without discover, or without objects', async () => {
    const { discover: _discover, ...without } = connector([]);
    expect(await discoverObjects(plan(), without as DestinationConnector, context)).toBeUndefined();
    const asked: string[][] = [];
    expect(await discoverObjects(plan({ objects: [] }), connector(asked), context)).toBeUndefined();
    expect(asked).toEqual([]);
  });
});
