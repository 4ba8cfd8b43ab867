import { describe, expect, it } from 'vitest';
import type { Destination, Sync } from '../../crds/index.ts';
import { capabilityProblems } from './capabilities.ts';
import type { ResourceSet } from './resources.ts';

const destination = (name: string, spec: Destination['spec']): Destination =>
  ({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Destination',
    metadata: { name, namespace: 'default' },
    spec,
  }) as Destination;

const sync = (name: string, destinationRef: string, spec: Partial<Sync['spec']>): Sync =>
  ({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Sync',
    metadata: { name, namespace: 'default' },
    spec: { modelRef: { name: 'm' }, destinationRef: { name: destinationRef }, mode: 'upsert', ...spec },
  }) as Sync;

function resources(syncs: Sync[]): ResourceSet {
  const secret = { secretKeyRef: { name: 's', key: 'k' } };
  const destinations = [
    destination('hubspot', { type: 'hubspot', hubspot: { privateAppToken: secret } } as never),
    destination('salesforce', {
      type: 'salesforce',
      salesforce: { jwt: { consumerKey: 'c', username: 'u', privateKey: secret } },
    } as never),
    destination('http', { type: 'http', http: { url: 'http://127.0.0.1:9/x' } } as never),
  ];
  return {
    sources: new Map(),
    models: new Map(),
    destinations: new Map(
      destinations.map((d) => [`default/${d.metadata.name}`, { object: d, file: 'd.yaml' }]),
    ),
    syncs: new Map(syncs.map((s) => [`default/${s.metadata.name}`, { object: s, file: 'syncs.yaml' }])),
    secrets: {},
    secretFiles: {},
    configMaps: {},
  };
}

describe('the capability check of the CLI, before any Sync runs', () => {
  it("refuses upsert and update to HubSpot and Salesforce without a match field, with the connector's hint", async () => {
    const problems = await capabilityProblems(
      resources([
        sync('hs-upsert', 'hubspot', { target: { object: 'contacts' } }),
        sync('sf-update', 'salesforce', { mode: 'update', target: { object: 'Contact' } }),
        sync('sf-insert', 'salesforce', { mode: 'insert', target: { object: 'Contact' } }),
        sync('sf-matched', 'salesforce', { target: { object: 'Contact', matchField: 'External_Id__c' } }),
        sync('to-http', 'http', {}),
      ]),
    );
    expect(problems).toEqual([
      'syncs.yaml: Sync "hs-upsert": mode "upsert" matches rows to records of the hubspot destination by ' +
        'spec.target.matchField, which is not set: set it to a property with unique values (contacts: email, ' +
        'or a custom unique id) of object "contacts", and map it (usually from the primary key) (MatchFieldRequired)',
      'syncs.yaml: Sync "sf-update": mode "update" matches rows to records of the salesforce destination by ' +
        'spec.target.matchField, which is not set: set it to an External ID field (such as External_Id__c) of ' +
        'object "Contact", and map it (usually from the primary key) (MatchFieldRequired)',
    ]);
  });

  it('reports the other capability problems the same way, and a connector that does not load', async () => {
    const set = resources([
      sync('all-to-hubspot', 'hubspot', { mode: 'all', target: { object: 'contacts' } }),
      sync('no-object', 'salesforce', {}),
    ]);
    expect(await capabilityProblems(set)).toEqual([
      expect.stringMatching(
        /^syncs\.yaml: Sync "all-to-hubspot": mode "all" is not supported .*\(UnsupportedMode\)$/,
      ),
      expect.stringMatching(
        /^syncs\.yaml: Sync "no-object": salesforce destinations need spec\.target\.object.*\(MissingTarget\)$/,
      ),
    ]);
    let loads = 0;
    const broken = await capabilityProblems(set, async () => {
      loads++;
      throw new Error('boom');
    });
    expect(broken).toEqual([
      'syncs.yaml: Sync "all-to-hubspot": destination type "hubspot" cannot be loaded: boom (InternalError)',
      'syncs.yaml: Sync "no-object": destination type "salesforce" cannot be loaded: boom (InternalError)',
    ]);
    expect(loads).toBe(2);
  });
});
