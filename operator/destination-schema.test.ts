// Validation of a Sync against its Destination's discovered objects and fields, the cache of what was
// discovered, and the connection check that asks for the objects the Syncs target.
import { describe, expect, it } from 'vitest';
import type { DestinationObjects } from '../core/diffstore/index.ts';
import type { Sync } from '../crds/index.ts';
import { reconcileConnection, targetedObjects } from './connection.ts';
import { closestNames, DestinationObjectsCache, editDistance } from './destination-objects.ts';
import { fakeContext, type FakeContext } from './fake-cluster.ts';
import { completeJob, NS, putReferences, putSync, runnerSummary } from './fake-fixtures.ts';
import { reconcileSync } from './sync.ts';
import { destination, httpCapabilities, model, saasCapabilities, sync } from './testdata/fixtures.ts';
import { schemaProblem, unmappedRequiredFields, validateSync, type SyncReferences } from './validation.ts';

const discovered: DestinationObjects = {
  version: 1,
  destination: 'crm',
  discoveredAt: '2026-01-01T11:59:00.000Z',
  requested: ['companies', 'contacts', 'deals'],
  objects: [
    {
      name: 'contacts',
      fields: [
        { name: 'email', type: 'string', unique: true },
        { name: 'emails', type: 'string' },
        { name: 'firstname', type: 'string' },
        { name: 'lastname', type: 'string', required: true },
        { name: 'hs_object_id', type: 'id', unique: true, readOnly: true },
        { name: 'lifecyclestage', type: 'enumeration', options: ['lead', 'customer', 'evangelist'] },
        { name: 'createdate', type: 'datetime', readOnly: true, required: true },
        { name: 'date_of_birth', type: 'date' },
        { name: 'last_seen_at', type: 'datetime' },
        { name: 'is_vip', type: 'boolean' },
        { name: 'lifetime_value', type: 'number' },
        { name: 'notes', type: 'string' },
      ],
    },
    {
      name: 'companies',
      fields: [
        { name: 'domain', type: 'string', unique: true },
        { name: 'name', type: 'string' },
      ],
    },
  ],
};

const contactsSync = (over: Partial<Sync['spec']> = {}) =>
  sync({
    target: { object: 'contacts', matchField: 'email' },
    mappings: [
      { to: 'email', from: 'email', valueType: 'string' },
      { to: 'lifecyclestage', value: 'customer', valueType: 'string' },
    ],
    ...over,
  });

/** HubSpot's refusals (numbers fit a date as epoch milliseconds). */
const typedCapabilities = {
  ...httpCapabilities,
  refusedColumns: {
    number: ['boolean', 'date', 'timestamp', 'time', 'interval', 'nested'],
    boolean: ['date', 'timestamp', 'time', 'interval', 'nested'],
    date: ['boolean', 'time', 'interval', 'nested'],
    datetime: ['boolean', 'time', 'interval', 'nested'],
  },
} as const;

const refs = (over: Partial<SyncReferences> = {}): SyncReferences => ({
  model: model(),
  destination: destination(),
  dependencies: [],
  capabilities: httpCapabilities,
  lookupSync: () => undefined,
  objects: discovered,
  ...over,
});

describe('closest names', () => {
  it('suggests near and containing names, nearest first', () => {
    expect(editDistance('emial', 'email')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(closestNames('emial', ['email', 'emails', 'firstname', 'phone'])).toEqual(['email', 'emails']);
    expect(closestNames('Email', ['email', 'lastname'])).toEqual(['email']);
    expect(closestNames('zzz', ['email', 'lastname'])).toEqual([]);
  });
});

describe('a Sync against the discovered objects and fields', () => {
  it('accepts mappings the object can take', () => {
    expect(validateSync(contactsSync(), refs())).toEqual({ ok: true });
    expect(schemaProblem(contactsSync(), discovered)).toBeUndefined();
    // Dotted targets address the top-level field.
    expect(
      schemaProblem(
        contactsSync({ mappings: [{ to: 'firstname.given', from: 'a', valueType: 'string' }] }),
        discovered,
      ),
    ).toBeUndefined();
  });

  it('UnknownObject names the Sync, the object, the objects found and the fix', () => {
    const verdict = validateSync(
      contactsSync({ target: { object: 'contact' } }),
      refs({
        objects: { ...discovered, requested: [...discovered.requested, 'contact'] },
      }),
    );
    expect(verdict).toMatchObject({ ok: false, stalled: true, reason: 'UnknownObject' });
    if (!verdict.ok) {
      expect(verdict.message).toContain('Sync team/customers-to-crm: spec.target.object "contact"');
      expect(verdict.message).toContain('did you mean contacts?');
      expect(verdict.message).toContain('Fix spec.target.object');
    }
  });

  it('UnknownField with the closest names', () => {
    const verdict = validateSync(
      contactsSync({ mappings: [{ to: 'emial', from: 'email', valueType: 'string' }] }),
      refs(),
    );
    expect(verdict).toMatchObject({ stalled: true, reason: 'UnknownField' });
    if (!verdict.ok) {
      expect(verdict.message).toBe(
        'Sync team/customers-to-crm: spec.mappings[0].to names field "emial", which object "contacts" of ' +
          'Destination "crm" does not have; did you mean email, emails? Fix spec.mappings[0].to, or create the field in the tool',
      );
    }
  });

  it('ReadOnlyField, InvalidFieldValue and MatchFieldNotUnique', () => {
    expect(
      validateSync(
        contactsSync({ mappings: [{ to: 'createdate', from: 'c', valueType: 'string' }] }),
        refs(),
      ),
    ).toMatchObject({ reason: 'ReadOnlyField', stalled: true });
    const value = validateSync(
      contactsSync({ mappings: [{ to: 'lifecyclestage', value: 'customers', valueType: 'string' }] }),
      refs(),
    );
    expect(value).toMatchObject({ reason: 'InvalidFieldValue', stalled: true });
    if (!value.ok)
      expect(value.message).toContain('did you mean customer? its options are: lead, customer, evangelist');
    const match = validateSync(
      contactsSync({ target: { object: 'contacts', matchField: 'firstname' } }),
      refs(),
    );
    expect(match).toMatchObject({ reason: 'MatchFieldNotUnique', stalled: true });
    if (!match.ok) expect(match.message).toContain('match by one of email, hs_object_id');
    expect(
      validateSync(contactsSync({ target: { object: 'contacts', matchField: 'mail' } }), refs()),
    ).toMatchObject({ reason: 'UnknownField' });
  });

  it('checks the associations: their object and their unique match field', () => {
    const associate = (object: string, matchField: string) =>
      contactsSync({
        target: { object: 'contacts', associations: [{ object, from: 'company_domain', matchField }] },
      });
    expect(validateSync(associate('companies', 'domain'), refs())).toEqual({ ok: true });
    expect(validateSync(associate('companies', 'name'), refs())).toMatchObject({
      reason: 'MatchFieldNotUnique',
    });
    expect(validateSync(associate('deals', 'dealname'), refs())).toMatchObject({ reason: 'UnknownObject' });
  });

  it('waits for a check when the discovery does not cover the object yet', () => {
    expect(validateSync(contactsSync({ target: { object: 'tickets' } }), refs())).toMatchObject({
      ok: false,
      stalled: false,
      reason: 'DestinationObjectsUnknown',
    });
  });

  it('validates nothing without a discovery (a connector without discover)', () => {
    expect(
      validateSync(
        contactsSync({ mappings: [{ to: 'nope', from: 'x', valueType: 'string' }] }),
        refs({ objects: undefined }),
      ),
    ).toEqual({ ok: true });
  });

  it('warns of required fields no mapping of an insert Sync writes', () => {
    expect(unmappedRequiredFields(contactsSync({ mode: 'insert' }), discovered)).toMatchObject({
      reason: 'RequiredFieldUnmapped',
      message: expect.stringContaining('required field lastname'),
    });
    expect(unmappedRequiredFields(contactsSync({ mode: 'upsert' }), discovered)).toBeUndefined();
    expect(
      unmappedRequiredFields(
        contactsSync({ mode: 'insert', mappings: [{ to: 'lastname', from: 'l', valueType: 'string' }] }),
        discovered,
      ),
    ).toBeUndefined();
  });
});

describe("a mapping's column type against the field's type", () => {
  const columns = [
    { name: 'id', type: 'INTEGER' },
    { name: 'email', type: 'VARCHAR' },
    { name: 'vip', type: 'BOOLEAN' },
    { name: 'signed_up', type: 'DATE' },
    { name: 'seen', type: 'TIMESTAMP WITH TIME ZONE' },
    { name: 'value', type: 'DECIMAL(18,2)' },
    { name: 'value_text', type: 'VARCHAR' },
    { name: 'born_ms', type: 'BIGINT' },
    { name: 'tags', type: 'VARCHAR[]' },
    { name: 'doc', type: 'JSON' },
  ];
  const columnsKnown = model({ conditions: model().status!.conditions, columns });
  const mapped = (from: string, to: string) =>
    contactsSync({
      mappings: [
        { to: 'email', from: 'email', valueType: 'string' },
        { to, from, valueType: 'string' },
      ],
    });
  const verdict = (from: string, to: string, over: Partial<SyncReferences> = {}) =>
    validateSync(mapped(from, to), refs({ model: columnsKnown, capabilities: typedCapabilities, ...over }));

  it('IncompatibleFieldType names the column, its type, the field, its type and what fits', () => {
    const bad = verdict('vip', 'date_of_birth');
    expect(bad).toMatchObject({ ok: false, stalled: true, reason: 'IncompatibleFieldType' });
    if (!bad.ok)
      expect(bad.message).toBe(
        'Sync team/customers-to-crm: spec.mappings[1] maps column "vip" of Model "customers", of type BOOLEAN ' +
          '(boolean values), to field "date_of_birth" of object "contacts", of type date, and the http destination ' +
          'converts no boolean value to a date: every row would be rejected. A date field takes integer (INTEGER, ' +
          'BIGINT), decimal (DECIMAL), float (DOUBLE), date (DATE), timestamp (TIMESTAMP, TIMESTAMPTZ), text ' +
          '(VARCHAR) columns; cast the column in the Model, or map it to another field',
      );
    expect(verdict('signed_up', 'is_vip')).toMatchObject({ reason: 'IncompatibleFieldType' });
    expect(verdict('seen', 'lifetime_value')).toMatchObject({ reason: 'IncompatibleFieldType' });
    expect(verdict('tags', 'lifetime_value')).toMatchObject({ reason: 'IncompatibleFieldType' });
  });

  it('lets compatible pairs through, text into anything and types it cannot judge', () => {
    for (const [from, to] of [
      ['value_text', 'lifetime_value'], // numeric text is converted
      ['value', 'lifetime_value'],
      ['signed_up', 'date_of_birth'],
      ['seen', 'date_of_birth'], // a timestamp is sent as its day
      ['seen', 'last_seen_at'],
      ['born_ms', 'date_of_birth'], // epoch milliseconds, for a connector that takes them
      ['value_text', 'is_vip'],
      ['vip', 'is_vip'],
      ['vip', 'notes'],
      ['tags', 'notes'],
      ['doc', 'lifetime_value'], // a JSON column may hold a number
    ])
      expect(verdict(from!, to!), `${from} to ${to}`).toEqual({ ok: true });
  });

  it('checks nothing without column types, discovered fields or the connector saying what it refuses', () => {
    expect(verdict('vip', 'date_of_birth', { model: model() })).toEqual({ ok: true });
    expect(verdict('vip', 'date_of_birth', { objects: undefined })).toEqual({ ok: true });
    expect(verdict('vip', 'date_of_birth', { capabilities: httpCapabilities })).toEqual({ ok: true });
  });
});

describe('the discovered objects, read once per check', () => {
  it('re-reads only when the Destination was checked again, and retries a failed read', async () => {
    let reads = 0;
    let fail = true;
    const cache = new DestinationObjectsCache(async () => {
      reads++;
      if (fail) throw new Error('store down');
      return discovered;
    });
    const at = (lastCheckedAt?: string) => destination(lastCheckedAt ? { lastCheckedAt } : {});
    expect(await cache.get(at())).toBeUndefined();
    expect(reads).toBe(0);
    expect(await cache.get(at('2026-01-01T11:00:00Z'))).toBeUndefined();
    fail = false;
    expect(await cache.get(at('2026-01-01T11:00:00Z'))).toEqual(discovered);
    expect(await cache.get(at('2026-01-01T11:00:00Z'))).toEqual(discovered);
    expect(reads).toBe(2);
    await cache.get(at('2026-01-01T12:00:00Z'));
    expect(reads).toBe(3);
  });
});

function setup(spec: Partial<Sync['spec']>): FakeContext {
  const ctx = fakeContext();
  putReferences(ctx.cluster);
  putSync(ctx.cluster, 'to-crm', spec);
  return ctx;
}

describe('over a fake cluster', () => {
  it('a Sync mapping an unknown field stalls with a Warning Event and starts no run', async () => {
    const ctx = setup({
      mode: 'upsert',
      target: { object: 'contacts', matchField: 'email' },
      mappings: [{ to: 'emial', from: 'email', valueType: 'string' }],
    });
    ctx.cluster.discovered.set(`${NS}/crm`, discovered);
    await reconcileSync(ctx, ctx.store.sync(NS, 'to-crm')!);
    await reconcileSync(ctx, ctx.store.sync(NS, 'to-crm')!);
    const status = ctx.store.sync(NS, 'to-crm')!.status;
    expect(status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual([
      'Ready=False/UnknownField',
      'Stalled=True/UnknownField',
      'Running=False/Idle',
    ]);
    expect(ctx.cluster.jobs.size).toBe(0);
    expect(ctx.events.recorded).toEqual([
      expect.objectContaining({
        type: 'Warning',
        reason: 'UnknownField',
        message: expect.stringContaining('did you mean email'),
      }),
    ]);
    expect(ctx.cluster.discoveredReads).toBe(1);
  });

  it('an upsert Sync without target.matchField stalls before any run, naming the unique fields found', async () => {
    const ctx = fakeContext({ capabilities: async () => saasCapabilities });
    putReferences(ctx.cluster);
    putSync(ctx.cluster, 'to-crm', {
      mode: 'upsert',
      target: { object: 'contacts' },
      mappings: [{ to: 'email', from: 'email', valueType: 'string' }],
    });
    ctx.cluster.discovered.set(`${NS}/crm`, discovered);
    await reconcileSync(ctx, ctx.store.sync(NS, 'to-crm')!);
    const status = ctx.store.sync(NS, 'to-crm')!.status;
    expect(status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual([
      'Ready=False/MatchFieldRequired',
      'Stalled=True/MatchFieldRequired',
      'Running=False/Idle',
    ]);
    expect(ctx.cluster.jobs.size).toBe(0);
    // hs_object_id is unique but read-only: it cannot be mapped, so it is not offered.
    expect(ctx.events.recorded).toEqual([
      expect.objectContaining({
        type: 'Warning',
        reason: 'MatchFieldRequired',
        message:
          'Sync team/to-crm: mode "upsert" matches rows to records of the http destination by ' +
          'spec.target.matchField, which is not set: set it to one of the unique fields of object "contacts": ' +
          'email, and map it (usually from the primary key)',
      }),
    ]);
    // Named, it runs.
    putSync(ctx.cluster, 'to-crm', {
      mode: 'upsert',
      target: { object: 'contacts', matchField: 'email' },
      mappings: [{ to: 'email', from: 'email', valueType: 'string' }],
    });
    await reconcileSync(ctx, ctx.store.sync(NS, 'to-crm')!);
    expect(ctx.cluster.jobs.size).toBe(1);
  });

  it('once a run has told the column types, a mapping no value of its column fits stalls, and no run starts', async () => {
    const ctx = fakeContext({ capabilities: async () => typedCapabilities });
    putReferences(ctx.cluster);
    putSync(ctx.cluster, 'to-crm', {
      target: { object: 'contacts', matchField: 'email' },
      mappings: [
        { to: 'email', from: 'email', valueType: 'string' },
        { to: 'is_vip', from: 'signed_up', valueType: 'string' },
      ],
    });
    ctx.cluster.discovered.set(`${NS}/crm`, discovered);
    // The first run starts: the column types are not known yet.
    await reconcileSync(ctx, ctx.store.sync(NS, 'to-crm')!);
    const [job] = [...ctx.cluster.jobs.keys()];
    const jobName = job!.split('/')[1]!;
    const columns = [
      { name: 'id', type: 'INTEGER' },
      { name: 'email', type: 'VARCHAR' },
      { name: 'signed_up', type: 'DATE' },
    ];
    completeJob(ctx.cluster, jobName, { ...runnerSummary(jobName), columns });
    await reconcileSync(ctx, ctx.store.sync(NS, 'to-crm')!);
    expect(ctx.store.model(NS, 'customers')!.status?.columns).toEqual(columns);
    await reconcileSync(ctx, ctx.store.sync(NS, 'to-crm')!);
    const stalledSync = ctx.store.sync(NS, 'to-crm')!;
    expect(stalledSync.status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`).sort()).toEqual([
      'Ready=False/IncompatibleFieldType',
      'Running=False/Idle',
      'Stalled=True/IncompatibleFieldType',
    ]);
    expect(ctx.events.recorded.at(-1)).toMatchObject({
      type: 'Warning',
      reason: 'IncompatibleFieldType',
      message: expect.stringContaining('maps column "signed_up" of Model "customers", of type DATE'),
    });
    // The next slot starts no run.
    ctx.setNow('2026-01-01T12:05:00.000Z');
    await reconcileSync(ctx, ctx.store.sync(NS, 'to-crm')!);
    expect(ctx.cluster.jobs.size).toBe(1);
  });

  it('an insert Sync leaving a required field unmapped runs, with a Warning Event', async () => {
    const ctx = setup({
      mode: 'insert',
      target: { object: 'contacts' },
      mappings: [{ to: 'email', from: 'email', valueType: 'string' }],
    });
    ctx.cluster.discovered.set(`${NS}/crm`, discovered);
    await reconcileSync(ctx, ctx.store.sync(NS, 'to-crm')!);
    expect(ctx.cluster.jobs.size).toBe(1);
    expect(ctx.events.reasons()).toEqual(['RunStarted', 'RequiredFieldUnmapped']);
  });

  const discovering = async () => ({
    modes: ['upsert' as const, 'update' as const, 'insert' as const],
    deleteBehaviors: ['ignore' as const, 'delete' as const],
    comparesAllColumns: false,
    defaultBatchSize: 100,
    discovers: true,
  });

  it("the connection check asks for the objects the Destination's Syncs target", async () => {
    const ctx = fakeContext({ capabilities: discovering });
    putReferences(ctx.cluster);
    putSync(ctx.cluster, 'a', {
      target: {
        object: 'contacts',
        associations: [{ object: 'companies', from: 'd', matchField: 'domain' }],
      },
    });
    putSync(ctx.cluster, 'b', { target: { object: 'contacts' } });
    expect(targetedObjects(ctx.store.syncsOfDestination(NS, 'crm'))).toEqual(['companies', 'contacts']);
    // The objects are part of the check: the Destination checked without them is checked again.
    await reconcileConnection(ctx, ctx.store.destination(NS, 'crm')!);
    const [job] = [...ctx.cluster.jobs.values()];
    const env = job?.spec?.template.spec?.containers[0]?.env ?? [];
    const plan = JSON.parse(env.find((e) => e.name === 'SYNCLINE_CHECK_PLAN')?.value ?? '{}');
    expect(plan).toMatchObject({
      kind: 'CheckPlan',
      objects: ['companies', 'contacts'],
      diffStore: { url: 'file:///tmp/syncline-fake-store' },
    });
  });

  it('a Destination whose connector discovers nothing (files, http) is checked as before', async () => {
    const ctx = fakeContext();
    putReferences(ctx.cluster);
    putSync(ctx.cluster, 'a', { target: { object: 'export' } });
    await reconcileConnection(ctx, ctx.store.destination(NS, 'crm')!);
    expect(ctx.cluster.jobs.size).toBe(0);
  });

  it('a Destination whose Syncs target no object is checked as before', async () => {
    const ctx = fakeContext();
    putReferences(ctx.cluster);
    putSync(ctx.cluster, 'a', {});
    await reconcileConnection(ctx, ctx.store.destination(NS, 'crm')!);
    expect(ctx.cluster.jobs.size).toBe(0);
  });
});
