// The Salesforce emulator itself, driven with plain fetch over real HTTP: the JWT bearer and refresh
// flows, describe, sObject Collections and Rows with per-record errors, Bulk API 2.0 jobs, session
// expiry, the daily limit and the reset-after-apply fault.
import { afterEach, describe, expect, it } from 'vitest';
import { parseCsv } from './csv.ts';
import { idSuffix } from './ids.ts';
import {
  API_VERSION,
  generateTestKeyPair,
  signAssertion,
  startSalesforceEmulator,
  type SalesforceEmulator,
  type SalesforceEmulatorOptions,
} from './server.ts';

let sf: SalesforceEmulator | undefined;

afterEach(async () => {
  await sf?.close();
  sf = undefined;
});

const keys = generateTestKeyPair();

async function start(options: SalesforceEmulatorOptions = {}): Promise<SalesforceEmulator> {
  sf = await startSalesforceEmulator({ publicKey: keys.publicKey, seed: 3, bulkDelayMs: 10, ...options });
  return sf;
}

function assertion(
  base: SalesforceEmulator,
  overrides: Record<string, unknown> = {},
  key = keys.privateKey,
): string {
  return signAssertion(
    {
      iss: base.consumerKey,
      sub: base.users[0] as string,
      aud: base.loginUrl,
      exp: Math.floor(Date.now() / 1000) + 180,
      ...overrides,
    },
    key,
  );
}

async function tokenRequest(base: SalesforceEmulator, form: Record<string, string>): Promise<Response> {
  return fetch(base.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
}

async function login(base: SalesforceEmulator): Promise<string> {
  const res = await tokenRequest(base, {
    grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
    assertion: assertion(base),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

interface Client {
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  json<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
}

async function client(base: SalesforceEmulator): Promise<Client> {
  const token = await login(base);
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base.url}/services/data/${API_VERSION}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(typeof body === 'string' ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
  return {
    call,
    json: async <T>(method: string, path: string, body?: unknown) => {
      const res = await call(method, path, body);
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
  };
}

interface Result {
  id?: string | null;
  success: boolean;
  created?: boolean;
  errors: Array<{ statusCode: string; message: string; fields: string[] }>;
}

const contact = (fields: Record<string, unknown>) => ({ attributes: { type: 'Contact' }, ...fields });

describe('OAuth 2.0 JWT bearer flow', () => {
  it('issues a token for a well-signed assertion, in the documented shape', async () => {
    const base = await start();
    const res = await tokenRequest(base, {
      grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
      assertion: assertion(base),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, string>;
    expect(body).toMatchObject({ instance_url: base.url, token_type: 'Bearer' });
    expect(body.access_token).toMatch(/^00D\w{12}!/);
    expect(body.id).toMatch(new RegExp(`^${base.url}/id/00D\\w{15}/005\\w{15}$`));
    expect(body.issued_at).toMatch(/^\d{13}$/);
    expect(body.signature).toBeTruthy();
    expect(body).not.toHaveProperty('refresh_token');
    // The token endpoint never logs the assertion.
    expect(base.requests()[0]).toMatchObject({ path: '/services/oauth2/token', body: '', status: 200 });
  });

  it('refuses a bad signature, a wrong audience, an expired assertion, an unknown issuer and user', async () => {
    const base = await start();
    const other = generateTestKeyPair();
    const cases: Array<[string, string, string]> = [
      [assertion(base, {}, other.privateKey), 'invalid_grant', 'invalid assertion'],
      [assertion(base, { aud: 'https://test.salesforce.com' }), 'invalid_grant', 'audience is invalid'],
      [
        assertion(base, { exp: Math.floor(Date.now() / 1000) - 10 }),
        'invalid_grant',
        'expired authorization code',
      ],
      [assertion(base, { iss: 'someone-else' }), 'invalid_client_id', 'client identifier invalid'],
      [assertion(base, { sub: 'nobody@example.com' }), 'invalid_grant', "user hasn't approved this consumer"],
      ['not.a.jwt', 'invalid_grant', 'invalid assertion'],
    ];
    for (const [jwt, error, description] of cases) {
      const res = await tokenRequest(base, {
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion: jwt,
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error, error_description: description });
    }
    expect(base.stats().tokensIssued).toBe(0);
  });

  it('refreshes with a refresh token, and refuses an unknown one', async () => {
    const base = await start();
    const refresh = base.issueRefreshToken();
    const ok = await tokenRequest(base, {
      grant_type: 'refresh_token',
      refresh_token: refresh,
      client_id: base.consumerKey,
    });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ token_type: 'Bearer', instance_url: base.url });
    const bad = await tokenRequest(base, {
      grant_type: 'refresh_token',
      refresh_token: 'nope',
      client_id: base.consumerKey,
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      error: 'invalid_grant',
      error_description: 'expired access/refresh token',
    });
  });

  it('answers 401 INVALID_SESSION_ID once tokens expire, by time or by hand', async () => {
    const base = await start({ sessionSeconds: 0.2 });
    const api = await client(base);
    expect((await api.call('GET', '/limits')).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 250));
    const expired = await api.call('GET', '/limits');
    expect(expired.status).toBe(401);
    expect(await expired.json()).toEqual([
      { message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' },
    ]);
    const fresh = await client(base);
    expect((await fresh.call('GET', '/limits')).status).toBe(200);
    base.expireTokens();
    expect((await fresh.call('GET', '/limits')).status).toBe(401);
    expect(base.stats().sessionRejected).toBe(2);
  });
});

describe('describe and ids', () => {
  it('describes fields as Salesforce does', async () => {
    const base = await start();
    const api = await client(base);
    const { status, body } = await api.json<{
      name: string;
      keyPrefix: string;
      fields: Array<Record<string, unknown>>;
    }>('GET', '/sobjects/Contact/describe');
    expect(status).toBe(200);
    expect(body).toMatchObject({ name: 'Contact', keyPrefix: '003' });
    const byName = new Map(body.fields.map((f) => [f.name, f]));
    expect(byName.get('LastName')).toMatchObject({
      type: 'string',
      length: 80,
      nillable: false,
      createable: true,
      updateable: true,
      defaultedOnCreate: false,
    });
    expect(byName.get('External_Id__c')).toMatchObject({
      type: 'string',
      unique: true,
      externalId: true,
      idLookup: true,
      nillable: true,
      custom: true,
    });
    expect(byName.get('AccountId')).toMatchObject({
      type: 'reference',
      referenceTo: ['Account'],
      relationshipName: 'Account',
    });
    const source = byName.get('LeadSource') as {
      picklistValues: Array<{ value: string }>;
      restrictedPicklist: boolean;
    };
    expect(source.restrictedPicklist).toBe(true);
    expect(source.picklistValues.map((v) => v.value)).toContain('Web');
    expect(source.picklistValues[0]).toEqual({
      active: true,
      defaultValue: false,
      label: 'Web',
      validFor: null,
      value: 'Web',
    });
    for (const f of body.fields)
      for (const key of [
        'name',
        'label',
        'type',
        'nillable',
        'createable',
        'updateable',
        'unique',
        'externalId',
        'idLookup',
        'length',
        'picklistValues',
        'referenceTo',
        'relationshipName',
      ])
        expect(f).toHaveProperty(key);
    const unknown = await api.json('GET', '/sobjects/Nope__c/describe');
    expect(unknown.status).toBe(404);
    const global = await api.json<{ sobjects: Array<{ name: string }> }>('GET', '/sobjects');
    expect(global.body.sobjects.map((s) => s.name)).toEqual(['Account', 'Contact', 'Lead', 'Customer__c']);
  });

  it('makes 18-character ids with the key prefix and the case-checksum suffix', async () => {
    const base = await start();
    const ids = [
      base.insertRecord('Account', { Name: 'A' }),
      base.insertRecord('Contact', { LastName: 'C' }),
      base.insertRecord('Lead', { LastName: 'L', Company: 'X' }),
      base.insertRecord('Customer__c', {}),
    ];
    expect(ids.map((id) => id.slice(0, 3))).toEqual(['001', '003', '00Q', 'a0X']);
    for (const id of ids) {
      expect(id).toHaveLength(18);
      expect(id.slice(15)).toBe(idSuffix(id.slice(0, 15)));
    }
    expect(base.records('Customer__c')[0]?.Name).toBe(ids[3]);
    expect(base.records('Lead')[0]?.Status).toBe('Open - Not Contacted');
  });
});

describe('sObject Collections', () => {
  it('creates with per-record errors in input order', async () => {
    const base = await start();
    const api = await client(base);
    const { status, body } = await api.json<Result[]>('POST', '/composite/sobjects', {
      allOrNone: false,
      records: [
        contact({
          LastName: 'Ok',
          Email: 'ok@example.com',
          Birthdate: '1990-02-28',
          HasOptedOutOfEmail: true,
        }),
        contact({ FirstName: 'No last name' }),
        contact({ LastName: 'x'.repeat(81) }),
        contact({ LastName: 'Bad mail', Email: 'not-an-email' }),
        contact({ LastName: 'Bad source', LeadSource: 'Carrier pigeon' }),
        { attributes: { type: 'Account' }, Name: 'Ünïcødé ✓', AnnualRevenue: 123456789012 },
      ],
    });
    expect(status).toBe(200);
    expect(body.map((r) => r.success)).toEqual([true, false, false, false, false, true]);
    expect(body[0]).toEqual({ id: expect.stringMatching(/^003\w{15}$/), success: true, errors: [] });
    expect(body[1]).toEqual({
      success: false,
      errors: [
        {
          statusCode: 'REQUIRED_FIELD_MISSING',
          message: 'Required fields are missing: [LastName]',
          fields: ['LastName'],
        },
      ],
    });
    expect(body[2]?.errors[0]).toMatchObject({ statusCode: 'STRING_TOO_LONG', fields: ['LastName'] });
    expect(body[2]?.errors[0]?.message).toMatch(/^Last Name: data value too large: x+ \(max length=80\)$/);
    expect(body[3]?.errors[0]).toEqual({
      statusCode: 'INVALID_EMAIL_ADDRESS',
      message: 'Email: invalid email address: not-an-email',
      fields: ['Email'],
    });
    expect(body[4]?.errors[0]).toMatchObject({
      statusCode: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
      fields: ['LeadSource'],
    });
    expect(body[5]?.id).toMatch(/^001/);
    const [saved] = base.records('Contact');
    expect(saved).toMatchObject({
      LastName: 'Ok',
      Birthdate: '1990-02-28',
      HasOptedOutOfEmail: true,
      FirstName: null,
    });
    expect(base.records('Account')[0]).toMatchObject({ Name: 'Ünïcødé ✓', AnnualRevenue: 123456789012 });
  });

  it('rolls everything back with allOrNone', async () => {
    const base = await start();
    const api = await client(base);
    const { body } = await api.json<Result[]>('POST', '/composite/sobjects', {
      allOrNone: true,
      records: [contact({ LastName: 'A' }), contact({ Email: 'b@example.com' })],
    });
    expect(body[0]).toEqual({
      id: null,
      success: false,
      errors: [
        {
          statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
          message:
            'Record rolled back because not all records were valid and the request was using AllOrNone header',
          fields: [],
        },
      ],
    });
    expect(body[1]?.errors[0]?.statusCode).toBe('REQUIRED_FIELD_MISSING');
    expect(base.records('Contact')).toEqual([]);
  });

  it('matches external ids through every change of the store: edits, the recycle bin, purges, roll-backs', async () => {
    const base = await start();
    const api = await client(base);
    const status = async (value: string) =>
      (await api.call('GET', `/sobjects/Contact/External_Id__c/${value}`)).status;
    const a = base.insertRecord('Contact', { LastName: 'A', External_Id__c: 'Key-A' });
    expect(await status('key-a')).toBe(200); // case-insensitively
    base.editRecord(a, { External_Id__c: 'key-b' });
    expect([await status('key-a'), await status('KEY-B')]).toEqual([404, 200]);
    base.deleteRecord(a);
    expect(await status('key-b')).toBe(404); // the recycle bin neither matches nor holds the value
    const b = base.insertRecord('Contact', { LastName: 'B', External_Id__c: 'key-b' });
    base.deleteRecord(b, { hard: true });
    expect(await status('key-b')).toBe(404);
    base.editRecord(a, { IsDeleted: false }); // restored behind the API's back
    expect(await status('key-b')).toBe(200);
    // Duplicates made behind the checks are all found, in creation order.
    const c = base.insertRecord('Contact', { LastName: 'C', External_Id__c: 'dup' });
    const d = base.insertRecord('Contact', { LastName: 'D', External_Id__c: 'other' });
    base.editRecord(d, { External_Id__c: 'DUP' });
    const dup = await api.json<string[]>('GET', '/sobjects/Contact/External_Id__c/dup');
    expect(dup).toEqual({
      status: 300,
      body: [c, d].map((id) => `/services/data/${API_VERSION}/sobjects/Contact/${id}`),
    });
    // A create rolled back by allOrNone leaves its value free; the values held still clash, the freed don't.
    await api.json('POST', '/composite/sobjects', {
      allOrNone: true,
      records: [contact({ LastName: 'E', External_Id__c: 'key-e' }), contact({ FirstName: 'no last name' })],
    });
    expect(await status('key-e')).toBe(404);
    const { body } = await api.json<Result[]>('POST', '/composite/sobjects', {
      allOrNone: false,
      records: ['key-e', 'Dup', 'other', 'key-a'].map((v) => contact({ LastName: v, External_Id__c: v })),
    });
    expect(body.map((r) => r.success || r.errors[0]?.statusCode)).toEqual([
      true,
      'DUPLICATE_VALUE',
      true,
      true,
    ]);
  });

  it('fails the whole request on an unknown field or an unreadable value, as the deserializer does', async () => {
    const base = await start();
    const api = await client(base);
    const unknown = await api.json('POST', '/composite/sobjects', {
      records: [contact({ LastName: 'A' }), contact({ LastName: 'B', Shoe_Size__c: 9 })],
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toEqual([
      { message: "No such column 'Shoe_Size__c' on sobject of type Contact", errorCode: 'INVALID_FIELD' },
    ]);
    const badDate = await api.json<Array<{ errorCode: string }>>('POST', '/composite/sobjects', {
      records: [contact({ LastName: 'A' }), contact({ LastName: 'B', Birthdate: '2021-02-30' })],
    });
    expect(badDate.status).toBe(400);
    expect(badDate.body[0]?.errorCode).toBe('JSON_PARSER_ERROR');
    const tooMany = await api.json<Array<{ errorCode: string }>>('POST', '/composite/sobjects', {
      records: Array.from({ length: 201 }, (_, i) => contact({ LastName: `n${i}` })),
    });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body[0]?.errorCode).toBe('EXCEEDED_ID_LIMIT');
    expect(base.records('Contact')).toEqual([]);
  });

  it('updates by Id, honours fieldsToNull, and reports deleted and unknown records', async () => {
    const base = await start();
    const api = await client(base);
    const a = base.insertRecord('Contact', { LastName: 'A', Email: 'a@example.com', Title: 'CEO' });
    const b = base.insertRecord('Contact', { LastName: 'B' });
    base.deleteRecord(b);
    const { body } = await api.json<Result[]>('PATCH', '/composite/sobjects', {
      allOrNone: false,
      records: [
        contact({ Id: a, Title: 'CTO', fieldsToNull: ['Email'] }),
        contact({ Id: b, Title: 'x' }),
        contact({ Id: '003000000000000AAA', Title: 'x' }),
        contact({ Title: 'no id' }),
        contact({ Id: a, fieldsToNull: ['LastName'] }),
      ],
    });
    expect(body[0]).toEqual({ id: a, success: true, errors: [] });
    expect(body[1]).toEqual({
      id: b,
      success: false,
      errors: [{ statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] }],
    });
    expect(body[2]?.errors[0]?.statusCode).toBe('INVALID_CROSS_REFERENCE_KEY');
    expect(body[3]?.errors[0]?.statusCode).toBe('MISSING_ARGUMENT');
    expect(body[4]?.errors[0]?.statusCode).toBe('REQUIRED_FIELD_MISSING');
    expect(base.records('Contact')).toEqual([
      expect.objectContaining({ Id: a, Title: 'CTO', Email: null, LastName: 'A' }),
    ]);
  });

  it('upserts by external id: creates, then updates; DUPLICATE_VALUE on the unique field', async () => {
    const base = await start();
    const api = await client(base);
    const first = await api.json<Result[]>('PATCH', '/composite/sobjects/Contact/External_Id__c', {
      allOrNone: false,
      records: [
        contact({ External_Id__c: 'k1', LastName: 'One' }),
        contact({ External_Id__c: 'k2', LastName: 'Two' }),
      ],
    });
    expect(first.body.map((r) => r.created)).toEqual([true, true]);
    const second = await api.json<Result[]>('PATCH', '/composite/sobjects/Contact/External_Id__c', {
      allOrNone: false,
      records: [
        contact({ External_Id__c: 'K1', LastName: 'One again' }),
        contact({ External_Id__c: 'k3', LastName: 'Three' }),
        contact({ LastName: 'no key' }),
        contact({ External_Id__c: 'dup', LastName: 'x' }),
        contact({ External_Id__c: 'dup', LastName: 'y' }),
      ],
    });
    expect(second.body[0]).toEqual({ id: first.body[0]?.id, success: true, errors: [], created: false });
    expect(second.body[1]).toMatchObject({ success: true, created: true });
    expect(second.body[2]?.errors[0]?.statusCode).toBe('MISSING_ARGUMENT');
    expect(second.body[3]?.errors[0]?.statusCode).toBe('DUPLICATE_EXTERNAL_ID');
    expect(second.body[4]?.errors[0]?.statusCode).toBe('DUPLICATE_EXTERNAL_ID');
    expect(base.records('Contact').map((r) => r.LastName)).toEqual(['One again', 'Two', 'Three']);
    // Changing a record's external id to one another record holds breaks the unique index.
    const clash = await api.json<Result[]>('PATCH', '/composite/sobjects', {
      records: [contact({ Id: first.body[1]?.id, External_Id__c: 'k1' })],
    });
    expect(clash.body[0]?.errors[0]).toEqual({
      statusCode: 'DUPLICATE_VALUE',
      message: `duplicate value found: External_Id__c duplicates value on record with id: ${first.body[0]?.id}`,
      fields: [],
    });
    // A record deleted by a person is recreated by the next upsert.
    base.deleteRecord(first.body[1]?.id as string);
    const again = await api.json<Result[]>('PATCH', '/composite/sobjects/Contact/External_Id__c', {
      records: [contact({ External_Id__c: 'k2', LastName: 'Two' })],
    });
    expect(again.body[0]).toMatchObject({ success: true, created: true });
    expect(again.body[0]?.id).not.toBe(first.body[1]?.id);
  });

  it('sets a lookup through the parent external id, and reports an unknown parent', async () => {
    const base = await start();
    const api = await client(base);
    const account = base.insertRecord('Account', { Name: 'Acme', External_Id__c: 'acme' });
    const { body } = await api.json<Result[]>('PATCH', '/composite/sobjects/Contact/External_Id__c', {
      records: [
        contact({ External_Id__c: 'c1', LastName: 'A', Account: { External_Id__c: 'acme' } }),
        contact({ External_Id__c: 'c2', LastName: 'B', Account: { External_Id__c: 'nope' } }),
      ],
    });
    expect(body[0]?.success).toBe(true);
    expect(body[1]?.errors[0]).toEqual({
      statusCode: 'INVALID_FIELD',
      message: 'Foreign key external ID: nope not found for field External_Id__c in entity Account',
      fields: [],
    });
    expect(base.records('Contact')[0]?.AccountId).toBe(account);
  });

  it('deletes by ids with per-record results', async () => {
    const base = await start();
    const api = await client(base);
    const a = base.insertRecord('Contact', { LastName: 'A' });
    const b = base.insertRecord('Contact', { LastName: 'B' });
    base.deleteRecord(b);
    const { body } = await api.json<Result[]>(
      'DELETE',
      `/composite/sobjects?ids=${a},${b},garbage&allOrNone=false`,
    );
    expect(body).toEqual([
      { id: a, success: true, errors: [] },
      {
        id: b,
        success: false,
        errors: [{ statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] }],
      },
      {
        id: 'garbage',
        success: false,
        errors: [{ statusCode: 'MALFORMED_ID', message: 'malformed id garbage', fields: [] }],
      },
    ]);
    expect(base.records('Contact')).toEqual([]);
    expect(base.deletedRecords('Contact')).toHaveLength(2);
  });
});

describe('sObject Rows', () => {
  it('upserts one record by external id: 201 created, then 200 updated', async () => {
    const base = await start();
    const api = await client(base);
    const created = await api.json<Result>('PATCH', '/sobjects/Customer__c/External_Id__c/cust-1', {
      Tier__c: 'Gold',
      Signup_Date__c: '2024-02-29',
      Last_Seen__c: '2024-05-06T07:08:09.123+02:00',
      Lifetime_Value__c: 1234.567,
      Discount__c: 12.5,
      Is_Active__c: true,
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ success: true, created: true, errors: [] });
    const updated = await api.json<Result>('PATCH', '/sobjects/Customer__c/External_Id__c/cust-1', {
      Notes__c: '',
    });
    expect(updated.status).toBe(200);
    expect(updated.body).toEqual({ id: created.body.id, success: true, errors: [], created: false });
    expect(base.records('Customer__c')[0]).toMatchObject({
      External_Id__c: 'cust-1',
      Tier__c: 'Gold',
      Signup_Date__c: '2024-02-29',
      Last_Seen__c: '2024-05-06T05:08:09.123+0000',
      Lifetime_Value__c: 1234.57,
      Discount__c: 12.5,
      Is_Active__c: true,
      Notes__c: null,
    });
    const bad = await api.json('PATCH', '/sobjects/Customer__c/External_Id__c/cust-2', {
      Tier__c: 'Platinum',
    });
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual([
      {
        message: 'Tier: bad value for restricted picklist field: Platinum',
        errorCode: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
        fields: ['Tier__c'],
      },
    ]);
    const got = await api.json<Record<string, unknown>>('GET', `/sobjects/Customer__c/${created.body.id}`);
    expect(got.body).toMatchObject({ attributes: { type: 'Customer__c' }, Id: created.body.id });
  });
});

async function runJob(
  api: Client,
  base: SalesforceEmulator,
  spec: Record<string, unknown>,
  csv: string,
): Promise<{ id: string; info: Record<string, unknown> }> {
  const created = await api.json<{ id: string; state: string; contentUrl: string }>('POST', '/jobs/ingest', {
    contentType: 'CSV',
    lineEnding: 'LF',
    columnDelimiter: 'COMMA',
    ...spec,
  });
  expect(created.status).toBe(200);
  expect(created.body.state).toBe('Open');
  expect(created.body.contentUrl).toBe(`services/data/${API_VERSION}/jobs/ingest/${created.body.id}/batches`);
  const upload = await api.call('PUT', `/jobs/ingest/${created.body.id}/batches`, csv, {
    'content-type': 'text/csv',
  });
  expect(upload.status).toBe(201);
  const closed = await api.json<{ state: string }>('PATCH', `/jobs/ingest/${created.body.id}`, {
    state: 'UploadComplete',
  });
  expect(closed.body.state).toBe('UploadComplete');
  let info: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    info = (await api.json<Record<string, unknown>>('GET', `/jobs/ingest/${created.body.id}`)).body;
    seen.add(String(info.state));
    if (info.state === 'JobComplete' || info.state === 'Failed') break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  expect(seen.has('InProgress') || seen.has('UploadComplete')).toBe(true);
  void base;
  return { id: created.body.id, info };
}

async function results(api: Client, id: string, kind: string): Promise<string[][]> {
  const res = await api.call('GET', `/jobs/ingest/${id}/${kind}/`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
  return parseCsv(await res.text()).rows;
}

describe('Bulk API 2.0 ingest', () => {
  it('runs a job to JobComplete asynchronously, with failed rows and results not in input order', async () => {
    const base = await start();
    const api = await client(base);
    base.insertRecord('Account', { Name: 'Acme', External_Id__c: 'acme' });
    const existing = base.insertRecord('Contact', {
      LastName: 'Old',
      External_Id__c: 'e5',
      Title: 'keep me',
    });
    const rows = Array.from(
      { length: 20 },
      (_, i) => `e${i},Last ${i},e${i}@example.com,acme,2000-01-${String((i % 28) + 1).padStart(2, '0')}`,
    );
    rows[3] = 'e3,,e3@example.com,acme,2000-01-04'; // no LastName
    rows[7] = 'e7,Last 7,bad-email,acme,2000-01-08';
    rows[11] = 'e11,Last 11,e11@example.com,nope,2000-01-12';
    rows[13] = 'e13,"Quoted, with comma",#N/A,acme,2000-02-30';
    const csv = ['External_Id__c,LastName,Email,Account.External_Id__c,Birthdate', ...rows].join('\n') + '\n';
    const { id, info } = await runJob(
      api,
      base,
      { object: 'Contact', operation: 'upsert', externalIdFieldName: 'External_Id__c' },
      csv,
    );
    expect(info).toMatchObject({ state: 'JobComplete', numberRecordsProcessed: 20, numberRecordsFailed: 4 });
    const ok = await results(api, id, 'successfulResults');
    expect(ok[0]).toEqual([
      'sf__Id',
      'sf__Created',
      'External_Id__c',
      'LastName',
      'Email',
      'Account.External_Id__c',
      'Birthdate',
    ]);
    expect(ok).toHaveLength(17);
    const okKeys = ok.slice(1).map((r) => r[2]);
    const inputOrder = rows.map((r) => r.split(',')[0]).filter((k) => okKeys.includes(k));
    expect(okKeys).not.toEqual(inputOrder);
    expect(new Set(okKeys)).toEqual(new Set(inputOrder));
    expect(ok.find((r) => r[2] === 'e5')?.slice(0, 2)).toEqual([existing, 'false']);
    expect(ok.find((r) => r[2] === 'e0')?.[1]).toBe('true');
    const failed = await results(api, id, 'failedResults');
    expect(failed[0]?.slice(0, 2)).toEqual(['sf__Id', 'sf__Error']);
    const errors = new Map(failed.slice(1).map((r) => [r[2], r[1]]));
    expect(errors.get('e3')).toBe(
      'REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --',
    );
    expect(errors.get('e7')).toBe('INVALID_EMAIL_ADDRESS:Email: invalid email address: bad-email:Email --');
    expect(errors.get('e11')).toMatch(/^INVALID_FIELD:Foreign key external ID: nope not found/);
    expect(errors.get('e13')).toMatch(/^INVALID_TYPE_ON_FIELD_IN_RECORD:Birthdate/);
    expect(await results(api, id, 'unprocessedrecords')).toEqual([
      ['External_Id__c', 'LastName', 'Email', 'Account.External_Id__c', 'Birthdate'],
    ]);
    const e5 = base.records('Contact').find((r) => r.External_Id__c === 'e5');
    expect(e5).toMatchObject({
      Id: existing,
      LastName: 'Last 5',
      Title: 'keep me',
      AccountId: expect.stringMatching(/^001/),
    });
    expect(base.records('Contact')).toHaveLength(16); // 15 created, e5 updated
  });

  it('sets null with #N/A, leaves a field unchanged on an empty cell, and deletes', async () => {
    const base = await start();
    const api = await client(base);
    const a = base.insertRecord('Contact', { LastName: 'A', Title: 'T', Email: 'a@example.com' });
    const b = base.insertRecord('Contact', { LastName: 'B' });
    const update = await runJob(
      api,
      base,
      { object: 'Contact', operation: 'update', lineEnding: 'CRLF' },
      `Id,Title,Email\r\n${a},#N/A,\r\n`,
    );
    expect(update.info).toMatchObject({
      state: 'JobComplete',
      numberRecordsProcessed: 1,
      numberRecordsFailed: 0,
    });
    expect(base.records('Contact')[0]).toMatchObject({ Title: null, Email: 'a@example.com' });
    const del = await runJob(api, base, { object: 'Contact', operation: 'delete' }, `Id\n${b}\n${b}\n`);
    expect(del.info).toMatchObject({ numberRecordsProcessed: 2, numberRecordsFailed: 1 });
    expect(base.records('Contact').map((r) => r.Id)).toEqual([a]);
  });

  it('fails a job whose header names an unknown field, or whose line ending is not the declared one', async () => {
    const base = await start();
    const api = await client(base);
    const bad = await runJob(
      api,
      base,
      { object: 'Contact', operation: 'insert' },
      'LastName,Nope__c\nA,1\nB,2\n',
    );
    expect(bad.info).toMatchObject({
      state: 'Failed',
      errorMessage: 'InvalidBatch : Field name not found : Nope__c',
    });
    expect(await results(api, bad.id, 'unprocessedrecords')).toEqual([
      ['LastName', 'Nope__c'],
      ['A', '1'],
      ['B', '2'],
    ]);
    const crlf = await runJob(api, base, { object: 'Contact', operation: 'insert' }, 'LastName\r\nA\r\n');
    expect(crlf.info).toMatchObject({ state: 'Failed' });
    expect(String(crlf.info.errorMessage)).toMatch(/LineEnding is invalid/);
    expect(base.records('Contact')).toEqual([]);
  });

  it('refuses a second upload, and aborts an open job', async () => {
    const base = await start();
    const api = await client(base);
    const job = await api.json<{ id: string }>('POST', '/jobs/ingest', {
      object: 'Lead',
      operation: 'insert',
    });
    const put = (): Promise<Response> =>
      api.call('PUT', `/jobs/ingest/${job.body.id}/batches`, 'LastName,Company\nA,B\n', {
        'content-type': 'text/csv',
      });
    expect((await put()).status).toBe(201);
    const again = await put();
    expect(again.status).toBe(400);
    expect(((await again.json()) as Array<{ message: string }>)[0]?.message).toMatch(
      /^Found multiple contents for job/,
    );
    const aborted = await api.json<{ state: string }>('PATCH', `/jobs/ingest/${job.body.id}`, {
      state: 'Aborted',
    });
    expect(aborted.body.state).toBe('Aborted');
    expect(base.jobs()[0]).toMatchObject({ state: 'Aborted', unprocessed: 1 });
    const upsertWithoutKey = await api.json<Array<{ errorCode: string }>>('POST', '/jobs/ingest', {
      object: 'Lead',
      operation: 'upsert',
    });
    expect(upsertWithoutKey.status).toBe(400);
    expect(base.records('Lead')).toEqual([]);
  });

  it('fails a job part-way under the bulkJobFailed fault, and pages results with maxRecords and locator', async () => {
    const base = await start({ faults: { bulkJobFailed: 1 } });
    const api = await client(base);
    const csv = 'LastName\n' + Array.from({ length: 10 }, (_, i) => `L${i}`).join('\n') + '\n';
    const job = await runJob(api, base, { object: 'Contact', operation: 'insert' }, csv);
    expect(job.info).toMatchObject({ state: 'Failed', numberRecordsProcessed: 5 });
    expect(await results(api, job.id, 'unprocessedrecords')).toHaveLength(6);
    await base.settled();
    const first = await api.call('GET', `/jobs/ingest/${job.id}/successfulResults/?maxRecords=3`);
    const locator = first.headers.get('sforce-locator') as string;
    expect(parseCsv(await first.text()).rows).toHaveLength(4);
    expect(locator).not.toBe('null');
    const rest = await api.call(
      'GET',
      `/jobs/ingest/${job.id}/successfulResults/?maxRecords=3&locator=${locator}`,
    );
    expect(rest.headers.get('sforce-locator')).toBe('null');
    expect(parseCsv(await rest.text()).rows).toHaveLength(3);
    expect(base.records('Contact')).toHaveLength(5);
  });
});

describe('limits and faults', () => {
  it('counts requests in Sforce-Limit-Info and refuses with REQUEST_LIMIT_EXCEEDED past the daily limit', async () => {
    const base = await start({ dailyApiLimit: 3 });
    const api = await client(base);
    const first = await api.call('GET', '/limits');
    expect(first.headers.get('sforce-limit-info')).toBe('api-usage=1/3');
    expect(((await first.json()) as { DailyApiRequests: unknown }).DailyApiRequests).toEqual({
      Max: 3,
      Remaining: 2,
    });
    await api.call('GET', '/sobjects');
    const third = await api.call('GET', '/sobjects/Lead/describe');
    expect(third.headers.get('sforce-limit-info')).toBe('api-usage=3/3');
    const refused = await api.call('GET', '/limits');
    expect(refused.status).toBe(403);
    expect(refused.headers.get('sforce-limit-info')).toBe('api-usage=3/3');
    expect(await refused.json()).toEqual([
      { errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'TotalRequests Limit exceeded.' },
    ]);
    expect(base.stats()).toMatchObject({ apiUsage: 3, limitRejected: 1 });
  });

  it('answers 503 SERVER_UNAVAILABLE without applying, and resets the connection after applying', async () => {
    const base = await start({ faults: { unavailable: 1 } });
    const api = await client(base);
    const down = await api.call('POST', '/composite/sobjects', { records: [contact({ LastName: 'A' })] });
    expect(down.status).toBe(503);
    expect(((await down.json()) as Array<{ errorCode: string }>)[0]?.errorCode).toBe('SERVER_UNAVAILABLE');
    expect(base.records('Contact')).toEqual([]);
    base.setFaults({ appliedThenReset: 1 });
    await expect(
      api.call('POST', '/composite/sobjects', { records: [contact({ LastName: 'A' })] }),
    ).rejects.toThrow();
    expect(base.records('Contact')).toHaveLength(1);
    expect(base.stats().faults).toMatchObject({ unavailable: 1, appliedThenReset: 1 });
    expect(base.requests().at(-1)).toMatchObject({ fault: 'appliedThenReset' });
  });
});
