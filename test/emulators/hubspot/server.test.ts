// The HubSpot emulator itself, driven with plain fetch: every endpoint's happy path, the contract check,
// whole-batch refusals, unique conflicts, rate limits, auth, faults and associations.
import { afterEach, describe, expect, it } from 'vitest';
import {
  BatchResponseAssociationRead,
  BatchResponseDefault,
  BatchResponseLabels,
  BatchResponseObjects,
  BatchResponseUpsert,
  ErrorBody,
  PropertiesResponse,
  RateLimitBody,
  SchemasResponse,
  TokenResponse,
} from './schemas.ts';
import { startHubSpotEmulator, type HubSpotEmulator, type HubSpotEmulatorOptions } from './server.ts';

let hs: HubSpotEmulator | undefined;

afterEach(async () => {
  await hs?.close();
  hs = undefined;
});

async function start(options: HubSpotEmulatorOptions = {}): Promise<HubSpotEmulator> {
  hs = await startHubSpotEmulator({ seed: 7, ...options });
  return hs;
}

async function call(
  base: HubSpotEmulator,
  path: string,
  body?: unknown,
  token: string = base.token,
): Promise<{ status: number; headers: Headers; json: unknown }> {
  const res = await fetch(`${base.url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    json: text === '' ? undefined : (JSON.parse(text) as unknown),
  };
}

describe('CRM objects v3 batch endpoints', () => {
  it('upserts by a unique property, creating then updating, with values stored as HubSpot returns them', async () => {
    const base = await start();
    const first = await call(base, '/crm/v3/objects/contacts/batch/upsert', {
      inputs: [
        {
          idProperty: 'email',
          id: 'Ada@Example.com',
          properties: {
            firstname: 'Ada ✓',
            lifetime_value: '12345678901234567890.5',
            date_of_birth: String(Date.UTC(1815, 11, 10)),
            last_seen_at: '1700000000000',
            is_vip: 'TRUE',
            lifecyclestage: 'customer',
          },
        },
        { idProperty: 'email', id: 'bob@example.com', properties: { lastname: '' } },
      ],
    });
    expect(first.status).toBe(200);
    const parsed = BatchResponseUpsert.parse(first.json);
    expect(parsed.results.map((r) => r.new)).toEqual([true, true]);
    const [ada] = base.records('contacts');
    expect(ada?.properties).toMatchObject({
      email: 'ada@example.com',
      firstname: 'Ada ✓',
      lifetime_value: '12345678901234567890.5',
      date_of_birth: '1815-12-10',
      last_seen_at: '2023-11-14T22:13:20.000Z',
      is_vip: 'true',
      hs_object_id: ada?.id,
    });
    const second = await call(base, '/crm/v3/objects/contacts/batch/upsert', {
      inputs: [{ idProperty: 'email', id: 'ada@example.com', properties: { firstname: 'Ada' } }],
    });
    const again = BatchResponseUpsert.parse(second.json).results[0];
    expect(again).toMatchObject({ id: ada?.id, new: false });
    expect(base.records('contacts')).toHaveLength(2);
    expect(base.record('contacts', ada?.id ?? '')?.properties.firstname).toBe('Ada');
    expect(base.violations()).toEqual([]);
  });

  it('upsert answers 207 with results for the good inputs and errors for the invalid ones', async () => {
    const base = await start();
    const res = await call(base, '/crm/v3/objects/deals/batch/upsert', {
      inputs: [
        { idProperty: 'external_id', id: 'd1', properties: { dealname: 'ok', amount: '10' } },
        { idProperty: 'external_id', id: 'd2', properties: { amount: 'ten' }, objectWriteTraceId: 'row-2' },
        { idProperty: 'external_id', id: 'd3', properties: { dealstage: 'nope' } },
      ],
    });
    expect(res.status).toBe(207);
    const body = BatchResponseUpsert.parse(res.json);
    expect(body.results.map((r) => r.properties.external_id)).toEqual(['d1']);
    expect(body.numErrors).toBe(2);
    expect(body.errors?.map((e) => e.category)).toEqual(['VALIDATION_ERROR', 'VALIDATION_ERROR']);
    expect(body.errors?.[0]).toMatchObject({
      status: 'error',
      context: { ids: ['d2'], objectWriteTraceId: ['row-2'] },
    });
    expect(body.errors?.[0]?.message).toMatch(/^Property values were not valid: .*INVALID_NUMBER/);
    expect(body.errors?.[1]?.message).toMatch(/INVALID_OPTION/);
    expect(base.records('deals').map((r) => r.properties.external_id)).toEqual(['d1']);
  });

  it('creates (201), reads by id and by idProperty (207 for missing ids), updates by id and by unique property', async () => {
    const base = await start();
    const created = await call(base, '/crm/v3/objects/companies/batch/create', {
      inputs: [
        { properties: { name: 'Acme', external_id: 'c-1', founded_on: '1999-02-03', industry: 'RETAIL' } },
        { properties: { name: 'Globex', external_id: 'c-2' }, associations: [] },
      ],
    });
    expect(created.status).toBe(201);
    // Results come back in no promised order: match them by the unique property.
    const results = BatchResponseObjects.parse(created.json).results;
    const ids = ['c-1', 'c-2'].map((key) => results.find((r) => r.properties.external_id === key)?.id ?? '');
    expect(ids.every((id) => /^\d+$/.test(id))).toBe(true);

    const read = await call(base, '/crm/v3/objects/companies/batch/read', {
      idProperty: 'external_id',
      inputs: [{ id: 'c-1' }, { id: 'nope' }],
      properties: ['name', 'founded_on', 'annualrevenue'],
    });
    expect(read.status).toBe(207);
    const readBody = BatchResponseObjects.parse(read.json);
    expect(readBody.results[0]?.properties).toMatchObject({
      name: 'Acme',
      founded_on: '1999-02-03',
      annualrevenue: null,
    });
    expect(readBody.errors?.[0]).toMatchObject({ category: 'OBJECT_NOT_FOUND', context: { ids: ['nope'] } });

    const byId = await call(base, '/crm/v3/objects/companies/batch/read', {
      inputs: ids.map((id) => ({ id })),
    });
    expect(byId.status).toBe(200);

    const updated = await call(base, '/crm/v3/objects/companies/batch/update', {
      inputs: [
        { id: ids[0], properties: { numberofemployees: '12' } },
        { id: 'c-2', idProperty: 'external_id', properties: { is_public: 'false' } },
      ],
    });
    expect(updated.status).toBe(200);
    expect(
      base.records('companies').map((r) => [r.properties.numberofemployees, r.properties.is_public]),
    ).toEqual([
      ['12', undefined],
      [undefined, 'false'],
    ]);

    const stale = await call(base, '/crm/v3/objects/companies/batch/update', {
      inputs: [{ id: '999999', properties: { name: 'x' } }],
    });
    expect(stale.status).toBe(207);
    expect(BatchResponseObjects.parse(stale.json).errors?.[0]).toMatchObject({
      category: 'OBJECT_NOT_FOUND',
    });
  });

  it('batch/create and batch/update refuse the whole batch (400) for one bad input, naming it', async () => {
    const base = await start();
    const cases: [string, Record<string, string>][] = [
      ['unknown property', { nosuch: 'x' }],
      ['number', { lifetime_value: '12abc' }],
      ['bool', { is_vip: 'yes' }],
      ['date not at midnight', { date_of_birth: String(Date.UTC(2020, 0, 1, 5, 30)) }],
      ['date', { date_of_birth: '2020-13-01' }],
      ['datetime', { last_seen_at: 'yesterday' }],
      ['enumeration', { lifecyclestage: 'vip' }],
      ['read-only', { hs_object_id: '1' }],
    ];
    for (const [what, bad] of cases) {
      const res = await call(base, '/crm/v3/objects/contacts/batch/create', {
        inputs: [
          { properties: { email: `${what.replace(/\W/g, '')}@x.io` } },
          { properties: { email: 'b@x.io', ...bad } },
        ],
      });
      expect(res.status, what).toBe(400);
      const body = ErrorBody.parse(res.json);
      expect(body.category).toBe('VALIDATION_ERROR');
      expect(body.message).toMatch(/^Property values were not valid: /);
      expect(body.context?.inputIndexes).toEqual(['1']);
      expect(body.errors?.[0]?.in).toMatch(/^inputs\[1\]\.properties\./);
    }
    expect(base.records('contacts')).toEqual([]);
    const id = base.createRecord('contacts', { email: 'keep@x.io' });
    const update = await call(base, '/crm/v3/objects/contacts/batch/update', {
      inputs: [
        { id, properties: { firstname: 'K' } },
        { id, properties: { lifecyclestage: 'vip' } },
      ],
    });
    expect(update.status).toBe(400);
    expect(base.record('contacts', id)?.properties.firstname).toBeUndefined();
    // Well-formed bodies: none of these is a contract violation.
    expect(base.violations()).toEqual([]);
  });

  it('enforces unique properties: 409 against an existing record, 400 for duplicates inside a batch', async () => {
    const base = await start();
    const existing = base.createRecord('contacts', { email: 'taken@x.io', external_id: 'e-1' });
    const create = await call(base, '/crm/v3/objects/contacts/batch/create', {
      inputs: [{ properties: { email: 'new@x.io' } }, { properties: { email: 'TAKEN@x.io' } }],
    });
    expect(create.status).toBe(409);
    expect(ErrorBody.parse(create.json)).toMatchObject({
      category: 'CONFLICT',
      message: `Contact already exists. Existing ID: ${existing}`,
    });
    const dup = await call(base, '/crm/v3/objects/contacts/batch/create', {
      inputs: [{ properties: { external_id: 'z' } }, { properties: { external_id: 'z' } }],
    });
    expect(dup.status).toBe(400);
    expect(ErrorBody.parse(dup.json).message).toMatch(/Duplicate IDs found in batch input/);
    const upsert = await call(base, '/crm/v3/objects/contacts/batch/upsert', {
      inputs: [{ idProperty: 'external_id', id: 'e-2', properties: { email: 'taken@x.io' } }],
    });
    expect(upsert.status).toBe(409);
    const nonUnique = await call(base, '/crm/v3/objects/contacts/batch/upsert', {
      inputs: [{ idProperty: 'firstname', id: 'x', properties: {} }],
    });
    expect(nonUnique.status).toBe(400);
    expect(ErrorBody.parse(nonUnique.json).message).toMatch(/non-unique 0-1 property firstname/);
    expect(base.records('contacts')).toHaveLength(1);
  });

  it('archives (204), and an upsert after the archive (or after a person deleted it) creates a new record', async () => {
    const base = await start();
    const up = () =>
      call(base, '/crm/v3/objects/contacts/batch/upsert', {
        inputs: [{ idProperty: 'external_id', id: 'k1', properties: { firstname: 'A' } }],
      });
    const first = BatchResponseUpsert.parse((await up()).json).results[0];
    const archived = await call(base, '/crm/v3/objects/contacts/batch/archive', {
      inputs: [{ id: first?.id }],
    });
    expect(archived.status).toBe(204);
    expect(archived.json).toBeUndefined();
    expect(base.records('contacts')).toEqual([]);
    expect(base.records('contacts', { includeArchived: true })[0]).toMatchObject({
      id: first?.id,
      archived: true,
    });
    const second = BatchResponseUpsert.parse((await up()).json).results[0];
    expect(second).toMatchObject({ new: true });
    expect(second?.id).not.toBe(first?.id);
    // A person deletes it in HubSpot; the connector's stale id then fails, and an upsert recreates it.
    expect(base.deleteRecord('contacts', second?.id ?? '')).toBe(true);
    const stale = await call(base, '/crm/v3/objects/contacts/batch/update', {
      inputs: [{ id: second?.id, properties: { firstname: 'B' } }],
    });
    expect(stale.status).toBe(207);
    const third = BatchResponseUpsert.parse((await up()).json).results[0];
    expect(third?.new).toBe(true);
    expect(base.records('contacts').map((r) => r.id)).toEqual([third?.id]);
  });
});

describe('the contract check', () => {
  it('answers a body that does not match the spec with 400 and counts it as a violation', async () => {
    const base = await start();
    const bodies: unknown[] = [
      { inputs: [{ idProperty: 'email', id: 'a@x.io', properties: { lifetime_value: 5 } }] }, // number, not string
      { inputs: [{ idProperty: 'email', id: 'a@x.io', props: {} }] }, // unknown field, properties missing
      {
        inputs: Array.from({ length: 101 }, (_, i) => ({
          idProperty: 'email',
          id: `${i}@x.io`,
          properties: {},
        })),
      },
      '{"inputs": [',
    ];
    for (const body of bodies) {
      const res = await call(base, '/crm/v3/objects/contacts/batch/upsert', body);
      expect(res.status).toBe(400);
      expect(ErrorBody.parse(res.json).category).toBe('VALIDATION_ERROR');
    }
    const violations = base.violations();
    expect(violations).toHaveLength(4);
    expect(violations[0]?.issues.join()).toMatch(/inputs\.0\.properties\.lifetime_value/);
    expect(violations[2]?.message).toMatch(/Batch input limit exceeded.*101.*100/);
    expect(base.stats().violations).toBe(4);
    expect(base.records('contacts')).toEqual([]);
  });
});

describe('properties and schemas', () => {
  it('lists properties with types, options, uniqueness and read-only flags; adds properties', async () => {
    const base = await start({ uniqueCompanyDomain: true });
    const res = await call(base, '/crm/v3/properties/contacts');
    const props = PropertiesResponse.parse(res.json).results;
    const byName = new Map(props.map((p) => [p.name, p]));
    expect(byName.get('external_id')).toMatchObject({ type: 'string', hasUniqueValue: true });
    expect(byName.get('lifecyclestage')?.options.map((o) => o.value)).toContain('customer');
    expect(byName.get('hs_object_id')?.modificationMetadata?.readOnlyValue).toBe(true);
    expect(byName.get('num_associated_deals')).toMatchObject({ calculated: true });
    expect(new Set(props.map((p) => p.type))).toEqual(
      new Set(['string', 'number', 'datetime', 'date', 'enumeration', 'bool', 'phone_number']),
    );
    const companies = PropertiesResponse.parse((await call(base, '/crm/v3/properties/0-2')).json).results;
    expect(companies.find((p) => p.name === 'domain')?.hasUniqueValue).toBe(true);

    const added = await call(base, '/crm/v3/properties/contacts', {
      name: 'plan',
      label: 'Plan',
      type: 'enumeration',
      fieldType: 'select',
      groupName: 'contactinformation',
      options: [{ label: 'Pro', value: 'pro', hidden: false }],
    });
    expect(added.status).toBe(201);
    base.addProperty('contacts', { name: 'score', label: 'Score', type: 'number', fieldType: 'number' });
    const up = await call(base, '/crm/v3/objects/contacts/batch/upsert', {
      inputs: [{ idProperty: 'email', id: 'p@x.io', properties: { plan: 'pro', score: '3' } }],
    });
    expect(up.status).toBe(200);
  });

  it('describes custom objects at /crm/v3/schemas and stores their records', async () => {
    const base = await start({
      customObjects: [
        {
          name: 'cars',
          labels: { singular: 'Car', plural: 'Cars' },
          requiredProperties: ['vin'],
          properties: [
            { name: 'vin', label: 'VIN', type: 'string', fieldType: 'text', hasUniqueValue: true },
            { name: 'year', label: 'Year', type: 'number', fieldType: 'number' },
          ],
        },
      ],
    });
    const schemas = SchemasResponse.parse((await call(base, '/crm/v3/schemas')).json).results;
    expect(schemas).toHaveLength(1);
    expect(schemas[0]).toMatchObject({
      name: 'cars',
      fullyQualifiedName: `p${base.portalId}_cars`,
      objectTypeId: '2-1000',
    });
    expect(schemas[0]?.properties.find((p) => p.name === 'vin')?.hasUniqueValue).toBe(true);
    expect((await call(base, '/crm-object-schemas/v3/schemas/cars')).status).toBe(200);
    const up = await call(base, `/crm/v3/objects/p${base.portalId}_cars/batch/upsert`, {
      inputs: [{ idProperty: 'vin', id: 'VIN1', properties: { year: '2020' } }],
    });
    expect(up.status).toBe(200);
    expect(base.records('2-1000')[0]?.properties).toMatchObject({ vin: 'VIN1', year: '2020' });
    const missing = await call(base, '/crm/v3/objects/cars/batch/create', {
      inputs: [{ properties: { year: '1' } }],
    });
    expect(missing.status).toBe(400);
  });
});

describe('associations v4', () => {
  it('creates labelled and default associations, reads them from both sides, archives them', async () => {
    const base = await start();
    const contact = base.createRecord('contacts', { email: 'c@x.io' });
    const company = base.createRecord('companies', { name: 'Acme', external_id: 'acme' });
    const other = base.createRecord('companies', { name: 'Other' });
    const labelled = await call(base, '/crm/v4/associations/contacts/companies/batch/create', {
      inputs: [
        {
          from: { id: contact },
          to: { id: company },
          types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 1 }],
        },
        {
          from: { id: contact },
          to: { id: '424242' },
          types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 279 }],
        },
      ],
    });
    expect(labelled.status).toBe(207);
    const created = BatchResponseLabels.parse(labelled.json);
    expect(created.results).toEqual([
      {
        fromObjectTypeId: '0-1',
        fromObjectId: contact,
        toObjectTypeId: '0-2',
        toObjectId: company,
        labels: ['Primary'],
      },
    ]);
    const def = await call(base, '/crm/v4/associations/contact/company/batch/associate/default', {
      inputs: [{ from: { id: contact }, to: { id: other } }],
    });
    expect(def.status).toBe(200);
    expect(BatchResponseDefault.parse(def.json).results[0]?.associationSpec).toEqual({
      associationCategory: 'HUBSPOT_DEFINED',
      associationTypeId: 279,
    });
    const read = await call(base, '/crm/v4/associations/companies/contacts/batch/read', {
      inputs: [{ id: company }, { id: other }],
    });
    expect(read.status).toBe(200);
    const fromCompanies = BatchResponseAssociationRead.parse(read.json).results;
    const types = Object.fromEntries(
      fromCompanies.map((r) => [r.from.id, r.to[0]?.associationTypes.map((t) => t.typeId)]),
    );
    expect(types).toEqual({ [company]: [2], [other]: [280] });
    expect(
      base
        .associations('contacts', 'companies', contact)
        .map((a) => a.toId)
        .sort(),
    ).toEqual([company, other].sort());

    const archived = await call(base, '/crm/v4/associations/contacts/companies/batch/archive', {
      inputs: [{ from: { id: contact }, to: [{ id: other }] }],
    });
    expect(archived.status).toBe(204);
    expect(base.associations('companies', 'contacts', other)).toEqual([]);
    // A deleted record's associations disappear with it.
    base.deleteRecord('companies', company);
    const none = await call(base, '/crm/v4/associations/contacts/companies/batch/read', {
      inputs: [{ id: contact }],
    });
    expect(none.status).toBe(207);
    expect(BatchResponseAssociationRead.parse(none.json).errors?.[0]?.subCategory).toBe(
      'crm.associations.NO_ASSOCIATIONS_FOUND',
    );
  });

  it('associates on batch/create through inputs[].associations', async () => {
    const base = await start();
    const company = base.createRecord('companies', { name: 'Acme' });
    const res = await call(base, '/crm/v3/objects/contacts/batch/create', {
      inputs: [
        {
          properties: { email: 'a@x.io' },
          associations: [
            {
              to: { id: company },
              types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 279 }],
            },
          ],
        },
      ],
    });
    expect(res.status).toBe(201);
    const id = BatchResponseObjects.parse(res.json).results[0]?.id;
    expect(base.associations('companies', 'contacts', company)).toEqual([
      {
        fromObjectType: 'companies',
        fromId: company,
        toObjectType: 'contacts',
        toId: id,
        types: [{ category: 'HUBSPOT_DEFINED', typeId: 280, label: null }],
      },
    ]);
  });
});

describe('auth', () => {
  it('401 INVALID_AUTHENTICATION for an unknown token, EXPIRED_AUTHENTICATION for an expired one', async () => {
    const base = await start();
    const unknown = await call(base, '/crm/v3/properties/contacts', undefined, 'wrong');
    expect(unknown.status).toBe(401);
    expect(ErrorBody.parse(unknown.json).category).toBe('INVALID_AUTHENTICATION');
    base.expireToken(base.token);
    const expired = await call(base, '/crm/v3/properties/contacts');
    expect(expired.status).toBe(401);
    expect(ErrorBody.parse(expired.json)).toMatchObject({ category: 'EXPIRED_AUTHENTICATION' });
    expect(base.stats().unauthorized).toEqual({ INVALID_AUTHENTICATION: 1, EXPIRED_AUTHENTICATION: 1 });
  });

  it('refreshes an OAuth access token at /oauth/v1/token; the new token works until it expires', async () => {
    let now = Date.UTC(2026, 0, 1);
    const oauth = {
      clientId: 'cid',
      clientSecret: 'secret',
      refreshToken: 'rt-1',
      accessTokenTtlSeconds: 60,
    };
    const base = await start({ oauth, tokens: [], clock: () => now });
    const refresh = (form: Record<string, string>) =>
      fetch(`${base.url}/oauth/v1/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form).toString(),
      });
    const bad = await refresh({
      grant_type: 'refresh_token',
      client_id: 'cid',
      client_secret: 'secret',
      refresh_token: 'x',
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ status: 'BAD_REFRESH_TOKEN' });
    const ok = await refresh({
      grant_type: 'refresh_token',
      client_id: 'cid',
      client_secret: 'secret',
      refresh_token: 'rt-1',
    });
    const token = TokenResponse.parse(await ok.json());
    expect(token.expires_in).toBe(60);
    expect((await call(base, '/crm/v3/properties/deals', undefined, token.access_token)).status).toBe(200);
    now += 61_000;
    const expired = await call(base, '/crm/v3/properties/deals', undefined, token.access_token);
    expect(ErrorBody.parse(expired.json).category).toBe('EXPIRED_AUTHENTICATION');
    expect(ErrorBody.parse(expired.json).message).toMatch(/expired 1 second\(s\) ago/);
  });
});

describe('rate limits', () => {
  it('sends the headers, then 429 TEN_SECONDLY_ROLLING with Retry-After once the interval budget is spent', async () => {
    const base = await start({ rateLimit: { max: 3, intervalMs: 2000, daily: 1000 } });
    const remaining: (string | null)[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await call(base, '/crm/v3/properties/contacts');
      expect(res.status).toBe(200);
      expect(res.headers.get('x-hubspot-ratelimit-max')).toBe('3');
      expect(res.headers.get('x-hubspot-ratelimit-interval-milliseconds')).toBe('2000');
      expect(res.headers.get('x-hubspot-ratelimit-daily')).toBe('1000');
      remaining.push(res.headers.get('x-hubspot-ratelimit-remaining'));
    }
    expect(remaining).toEqual(['2', '1', '0']);
    const limited = await call(base, '/crm/v3/properties/contacts');
    expect(limited.status).toBe(429);
    expect(RateLimitBody.parse(limited.json)).toMatchObject({
      policyName: 'TEN_SECONDLY_ROLLING',
      errorType: 'RATE_LIMIT',
    });
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);
    expect(limited.headers.get('x-hubspot-ratelimit-remaining')).toBe('0');
    expect(limited.headers.get('x-hubspot-ratelimit-daily-remaining')).toBe('997');
    await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000 + 50));
    expect((await call(base, '/crm/v3/properties/contacts')).status).toBe(200);
    expect(base.stats().rateLimited).toEqual({ TEN_SECONDLY_ROLLING: 1, SECONDLY: 0, DAILY: 0 });
    expect(
      base
        .requests()
        .filter((r) => r.policyName)
        .map((r) => r.status),
    ).toEqual([429]);
  });

  it('a secondly limit answers 429 SECONDLY with its own headers', async () => {
    const base = await start({ rateLimit: { secondly: 1, daily: null } });
    const first = await call(base, '/crm/v3/properties/contacts');
    expect(first.headers.get('x-hubspot-ratelimit-secondly')).toBe('1');
    expect(first.headers.get('x-hubspot-ratelimit-secondly-remaining')).toBe('0');
    expect(first.headers.get('x-hubspot-ratelimit-daily')).toBeNull();
    const second = await call(base, '/crm/v3/properties/contacts');
    expect(second.status).toBe(429);
    expect(RateLimitBody.parse(second.json).policyName).toBe('SECONDLY');
  });

  it('a daily quota that runs out answers 429 DAILY until it is reset', async () => {
    const base = await start({ rateLimit: { daily: 2 } });
    expect((await call(base, '/crm/v3/properties/contacts')).status).toBe(200);
    const last = await call(base, '/crm/v3/properties/contacts');
    expect(last.headers.get('x-hubspot-ratelimit-daily-remaining')).toBe('0');
    const over = await call(base, '/crm/v3/objects/contacts/batch/upsert', {
      inputs: [{ idProperty: 'email', id: 'a@x.io', properties: {} }],
    });
    expect(over.status).toBe(429);
    expect(RateLimitBody.parse(over.json)).toMatchObject({
      policyName: 'DAILY',
      message: 'You have reached your daily limit.',
    });
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(base.records('contacts')).toEqual([]);
    base.resetDailyQuota();
    expect((await call(base, '/crm/v3/properties/contacts')).status).toBe(200);
    expect(base.stats().rateLimited.DAILY).toBe(1);
  });
});

describe('faults', () => {
  it('5xx applies nothing; a reset after applying leaves the write done; slow answers wait', async () => {
    const base = await start({ slowMs: [150, 151] });
    const upsert = (id: string) =>
      fetch(`${base.url}/crm/v3/objects/contacts/batch/upsert`, {
        method: 'POST',
        headers: { authorization: `Bearer ${base.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ idProperty: 'email', id, properties: {} }] }),
      });
    base.injectFault('unavailable');
    const down = await upsert('a@x.io');
    expect(down.status).toBeGreaterThanOrEqual(500);
    expect(base.records('contacts')).toEqual([]);
    base.injectFault('appliedThenReset');
    await expect(upsert('b@x.io')).rejects.toThrow();
    expect(base.records('contacts').map((r) => r.properties.email)).toEqual(['b@x.io']);
    base.injectFault('appliedThen5xx');
    expect((await upsert('c@x.io')).status).toBe(502);
    expect(base.records('contacts')).toHaveLength(2);
    base.injectFault('slow');
    const t0 = Date.now();
    expect((await upsert('d@x.io')).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(base.stats().faults).toEqual({ unavailable: 1, slow: 1, appliedThenReset: 1, appliedThen5xx: 1 });
  });

  it('seeded fault rates repeat from the seed', async () => {
    const outcomes: number[][] = [];
    for (let round = 0; round < 2; round++) {
      const base = await startHubSpotEmulator({ seed: 3, faults: { unavailable: 0.3 } });
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) statuses.push((await call(base, '/crm/v3/properties/contacts')).status);
      outcomes.push(statuses);
      await base.close();
    }
    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(outcomes[0]?.some((s) => s >= 500)).toBe(true);
  });
});
