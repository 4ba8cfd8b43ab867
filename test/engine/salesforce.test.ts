// Salesforce end to end: a PostgreSQL model delivered by the engine (executeRun) through the salesforce
// destination to the Salesforce emulator (test/emulators/salesforce), whose records are compared to the model.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationSpec, SyncSpec } from '../../crds/index.ts';
import { secretResolver } from '../../core/secrets.ts';
import { silentLogger } from '../../core/logger.ts';
import { executeRun } from '../../runner/run.ts';
import {
  generateTestKeyPair,
  startSalesforceEmulator,
  type SalesforceEmulator,
  type SalesforceEmulatorOptions,
} from '../emulators/salesforce/server.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, sql, tempState } from './helpers.ts';

let pgServer: PostgresServer;
let srcUrl: string;
let counter = 0;
const cleanups: (() => unknown)[] = [];
const keys = generateTestKeyPair();

beforeAll(async () => {
  pgServer = await startPostgres();
  srcUrl = await pgServer.createDatabase('src');
});
afterAll(async () => {
  for (const c of cleanups) await c();
  await pgServer?.stop();
});

type Mapping = NonNullable<SyncSpec['mappings']>[number];
// Mappings as written in a Sync (valueType applies only to static values).
const MAPPINGS = [
  { to: 'External_Id__c', from: 'id' },
  { to: 'FirstName', from: 'first_name' },
  { to: 'LastName', from: 'last_name' },
  { to: 'Email', from: 'email' },
  { to: 'Birthdate', from: 'birthdate' },
  { to: 'Score__c', from: 'score' },
  { to: 'Last_Activity__c', from: 'last_activity' },
  { to: 'HasOptedOutOfEmail', from: 'opted_out' },
  { to: 'LeadSource', from: 'lead_source' },
] as Mapping[];
const ACCOUNT = { to: 'Account.External_Id__c', from: 'account_ext' } as Mapping;

interface ModelRow {
  id: number;
  first_name: string | null;
  last_name: string | null;
  email: string | null;
  birthdate: string | Date | null;
  score: string | null;
  last_activity: Date | null;
  opted_out: boolean | null;
  lead_source: string | null;
  account_ext: string | null;
}

async function scenario(
  options: {
    emulator?: SalesforceEmulatorOptions;
    rows?: number;
    bulkThreshold?: number;
    oauth?: boolean;
  } = {},
) {
  counter++;
  const table = `contacts_${counter}`;
  const sf = await startSalesforceEmulator({
    publicKey: keys.publicKey,
    bulkDelayMs: 10,
    seed: counter,
    ...options.emulator,
  });
  cleanups.push(() => sf.close());
  const state = tempState();
  cleanups.push(() => state.remove());
  await sql(
    srcUrl,
    `CREATE TABLE ${table} (id int PRIMARY KEY, first_name text, last_name text, email text, birthdate date,
       score numeric(16,2), last_activity timestamptz, opted_out boolean, lead_source text, account_ext text)`,
  );
  await sql(
    srcUrl,
    `INSERT INTO ${table} SELECT g, 'Zoë ' || g || ' 李', 'Ünïcødé-' || g, 'p' || g || '@example.org',
       DATE '1990-01-01' + g, 12345678901234.25 + g, TIMESTAMPTZ '2024-02-29 12:34:56.789+00' + g * interval '1 hour',
       g % 2 = 0, 'Web', NULL FROM generate_series(1, ${options.rows ?? 10}) g`,
  );
  const destination = {
    type: 'salesforce',
    salesforce: {
      loginUrl: sf.url,
      ...(options.oauth
        ? {
            oauth: {
              clientId: sf.consumerKey,
              clientSecret: { secretKeyRef: { name: 'sf', key: 'clientSecret' } },
              refreshToken: { secretKeyRef: { name: 'sf', key: 'refreshToken' } },
            },
          }
        : {
            jwt: {
              consumerKey: sf.consumerKey,
              username: sf.users[0],
              privateKey: { secretKeyRef: { name: 'sf', key: 'privateKey' } },
            },
          }),
      bulkThreshold: options.bulkThreshold ?? 2000,
    },
  } as DestinationSpec;
  const secrets = secretResolver(
    {},
    {
      pg: { password: pgServer.password },
      sf: {
        privateKey: keys.privateKey,
        clientSecret: sf.consumerSecret,
        refreshToken: options.oauth ? sf.issueRefreshToken() : '',
      },
    },
  );
  const plan = (extra: Partial<SyncSpec> = {}) =>
    makePlan({
      server: pgServer,
      sourceDb: 'src',
      query: `SELECT * FROM ${table}`,
      destination,
      sync: {
        mode: 'upsert',
        target: { object: 'Contact', matchField: 'External_Id__c' },
        mappings: MAPPINGS,
        ...extra,
      },
      stateUrl: state.url,
      name: `salesforce-sync-${counter}`,
    });
  return {
    sf,
    source: (text: string) => sql(srcUrl, text.replaceAll('$T', table)),
    run: (
      extra: Partial<SyncSpec> = {},
      onProgress?: (p: { phase: string; delivery?: { delivered: number } }) => void,
    ) =>
      executeRun(plan(extra), {
        secrets,
        log: silentLogger(),
        signal: new AbortController().signal,
        backoff: { baseMs: 5, capMs: 40 },
        ...(onProgress ? { onProgress: onProgress as never } : {}),
      }),
    model: async () => sql<ModelRow>(srcUrl, `SELECT * FROM ${table} ORDER BY id`),
  };
}

const day = (d: string | Date): string =>
  typeof d === 'string'
    ? d.slice(0, 10)
    : new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 10);

/** Salesforce's Contacts keyed by External_Id__c, as the model's values read in Salesforce. */
function expectEqual(sf: SalesforceEmulator, model: ModelRow[]): void {
  const records = new Map(sf.records('Contact').map((r) => [r.External_Id__c, r]));
  expect(records.size).toBe(model.length);
  // Salesforce keeps no empty strings: the model's '' arrives as null.
  const text = (v: string | null) => (v === '' ? null : v);
  for (const row of model) {
    const r = records.get(String(row.id));
    expect(r, `record ${row.id}`).toBeDefined();
    expect(r?.FirstName ?? null).toBe(text(row.first_name));
    expect(r?.LastName ?? null).toBe(text(row.last_name));
    expect(r?.Email ?? null).toBe(text(row.email));
    expect(r?.Birthdate ?? null).toBe(row.birthdate === null ? null : day(row.birthdate));
    expect(r?.Score__c ?? null).toBe(row.score === null ? null : Number(row.score));
    expect(r?.Last_Activity__c ?? null).toBe(
      row.last_activity === null ? null : new Date(row.last_activity).toISOString().replace('Z', '+0000'),
    );
    expect(r?.HasOptedOutOfEmail).toBe(row.opted_out ?? false);
    expect(r?.LeadSource ?? null).toBe(text(row.lead_source));
  }
}

describe('salesforce delivery', () => {
  it('upserts the model exactly, then only changed rows; deletes address the kept Ids; clears null the fields', async () => {
    const s = await scenario();
    const first = await s.run();
    expect(first.result, `${first.reason}: ${first.message}`).toBe('Succeeded');
    expect(first.counts.delivered).toBe(10);
    expectEqual(s.sf, await s.model());
    const one = s.sf.records('Contact').find((r) => r.External_Id__c === '1');
    expect(one).toMatchObject({
      FirstName: 'Zoë 1 李',
      Birthdate: '1990-01-02',
      Score__c: 12345678901235.25,
      Last_Activity__c: '2024-02-29T13:34:56.789+0000',
      HasOptedOutOfEmail: false,
    });

    await s.source(`UPDATE $T SET first_name = NULL, score = NULL, birthdate = NULL WHERE id = 3`);
    await s.source(`UPDATE $T SET first_name = '' WHERE id = 4`);
    const before = s.sf.requests().length;
    const second = await s.run();
    expect(second.counts).toMatchObject({ changed: 2, delivered: 2 });
    const sent = s.sf.requests().slice(before);
    expect(sent.filter((r) => r.path.includes('/composite/sobjects'))).toHaveLength(1);
    expectEqual(s.sf, await s.model());

    await s.source(`DELETE FROM $T WHERE id IN (5, 6)`);
    const third = await s.run({ deleteBehavior: 'delete' });
    expect(third.result, `${third.reason}: ${third.message}`).toBe('Succeeded');
    const deletes = s.sf.requests().slice(sent.length + before);
    // No look-up by external id: the Ids came back with the first run and were kept in the snapshot.
    expect(deletes.filter((r) => r.method === 'GET' && r.path.includes('/External_Id__c/'))).toEqual([]);
    expect(deletes.filter((r) => r.method === 'DELETE')).toHaveLength(1);
    expectEqual(s.sf, await s.model());
    expect(s.sf.deletedRecords('Contact')).toHaveLength(2);

    // A record a person deleted in Salesforce is recreated by the next upsert (stale Id, not fatal).
    const seven = s.sf.records('Contact').find((r) => r.External_Id__c === '7');
    s.sf.deleteRecord(String(seven?.Id));
    await s.source(`UPDATE $T SET email = 'seven@example.org' WHERE id = 7`);
    const fourth = await s.run({ deleteBehavior: 'delete' });
    expect(fourth.result, `${fourth.reason}: ${fourth.message}`).toBe('Succeeded');
    expectEqual(s.sf, await s.model());

    await s.source(`DELETE FROM $T WHERE id = 8`);
    const fifth = await s.run({ deleteBehavior: 'clear' });
    expect(fifth.result, `${fifth.reason}: ${fifth.message}`).toBe('Succeeded');
    const cleared = s.sf.records('Contact').find((r) => r.External_Id__c === '8');
    expect(cleared).toMatchObject({ FirstName: null, Email: null, Birthdate: null, Score__c: null });
    // LastName is required (not nillable): clear leaves it; the checkbox goes to false.
    expect(cleared?.LastName).toBe('Ünïcødé-8');
    expect(cleared?.HasOptedOutOfEmail).toBe(false);
  });

  it('a rejected row is retried next run while the good rows arrive', async () => {
    const s = await scenario();
    await s.source(`UPDATE $T SET email = 'not an email' WHERE id = 4`);
    await s.source(`UPDATE $T SET lead_source = 'Carrier pigeon' WHERE id = 8`);
    const first = await s.run();
    expect(first.result).toBe('PartiallySucceeded');
    expect(first.counts).toMatchObject({ delivered: 8, failed: 2 });
    const reasons = Object.fromEntries(first.rejected.map((r) => [r.key, r.reason]));
    expect(reasons['4']).toMatch(/INVALID_EMAIL_ADDRESS/);
    expect(reasons['8']).toMatch(/LeadSource: "Carrier pigeon" is not a value of the restricted picklist/);
    await s.source(`UPDATE $T SET email = 'p4@example.org' WHERE id = 4`);
    await s.source(`UPDATE $T SET lead_source = 'Other' WHERE id = 8`);
    const second = await s.run();
    expect(second.result, `${second.reason}: ${second.message}`).toBe('Succeeded');
    expect(second.counts.delivered).toBe(2);
    expectEqual(s.sf, await s.model());
  });

  it('a large change set goes through Bulk API 2.0; failed rows are mapped back to their keys; lookups by parent external id', async () => {
    const s = await scenario({ rows: 150, bulkThreshold: 100 });
    s.sf.insertRecord('Account', { Name: 'Acme', External_Id__c: 'acme' });
    await s.source(`UPDATE $T SET account_ext = 'acme' WHERE id % 3 = 0`);
    await s.source(`UPDATE $T SET last_name = NULL WHERE id = 17`);
    await s.source(`UPDATE $T SET email = 'bad address' WHERE id = 101`);
    await s.source(`UPDATE $T SET account_ext = 'nowhere' WHERE id = 42`);
    const mappings = [...MAPPINGS, ACCOUNT];
    const first = await s.run({ mappings, delivery: { batchSize: 1000 } } as Partial<SyncSpec>);
    expect(first.result).toBe('PartiallySucceeded');
    expect(s.sf.jobs()).toHaveLength(1);
    expect(s.sf.jobs()[0]).toMatchObject({
      operation: 'upsert',
      state: 'JobComplete',
      numberRecordsFailed: 3,
    });
    const reasons = Object.fromEntries(first.rejected.map((r) => [r.key, r.reason]));
    expect(Object.keys(reasons).sort()).toEqual(['101', '17', '42']);
    expect(reasons['17']).toMatch(/REQUIRED_FIELD_MISSING/);
    expect(reasons['101']).toMatch(/INVALID_EMAIL_ADDRESS/);
    expect(reasons['42']).toMatch(/nowhere/);
    const acme = s.sf.records('Account')[0]?.Id;
    const contacts = new Map(s.sf.records('Contact').map((r) => [r.External_Id__c, r]));
    expect(contacts.size).toBe(147);
    expect(contacts.get('3')?.AccountId).toBe(acme);
    expect(contacts.get('4')?.AccountId ?? null).toBeNull();

    await s.source(`UPDATE $T SET last_name = 'Fixed' WHERE id = 17`);
    await s.source(`UPDATE $T SET email = 'p101@example.org' WHERE id = 101`);
    await s.source(`UPDATE $T SET account_ext = 'acme' WHERE id = 42`);
    const second = await s.run({ mappings, delivery: { batchSize: 1000 } } as Partial<SyncSpec>);
    expect(second.result, `${second.reason}: ${second.message}`).toBe('Succeeded');
    expect(second.counts.delivered).toBe(3);
    expect(s.sf.jobs()).toHaveLength(1); // three rows: sObject Collections
    expectEqual(s.sf, await s.model());

    // A large delete goes through a Bulk delete job by the kept Ids.
    await s.source(`DELETE FROM $T WHERE id <= 110`);
    const third = await s.run({
      mappings,
      deleteBehavior: 'delete',
      safety: { allowLargeDeletes: true },
      delivery: { batchSize: 1000 },
    } as Partial<SyncSpec>);
    expect(third.result, `${third.reason}: ${third.message}`).toBe('Succeeded');
    expect(s.sf.jobs().map((j) => j.operation)).toEqual(['upsert', 'delete']);
    expectEqual(s.sf, await s.model());
  });

  it('insert and update modes: update addresses records by external id, then by the kept Id', async () => {
    const s = await scenario({ rows: 4 });
    s.sf.insertRecord('Contact', { LastName: 'Old', External_Id__c: '1' });
    s.sf.insertRecord('Contact', { LastName: 'Old', External_Id__c: '2' });
    const first = await s.run({ mode: 'update' });
    expect(first.result).toBe('PartiallySucceeded');
    expect(first.rejected.map((r) => r.key).sort()).toEqual(['3', '4']);
    expect(first.rejected[0]?.reason).toMatch(/creates no records/);
    expect(s.sf.records('Contact').map((r) => r.LastName)).toEqual(['Ünïcødé-1', 'Ünïcødé-2']);
    await s.source(`UPDATE $T SET first_name = 'Again' WHERE id = 1`);
    const before = s.sf.requests().length;
    const second = await s.run({ mode: 'update' });
    const sent = s.sf.requests().slice(before);
    expect(sent.filter((r) => r.method === 'GET' && r.path.includes('/External_Id__c/1'))).toEqual([]);
    expect(second.counts.delivered).toBeGreaterThanOrEqual(1);
    expect(s.sf.records('Contact').find((r) => r.External_Id__c === '1')?.FirstName).toBe('Again');

    const t = await scenario({ rows: 3 });
    const inserted = await t.run({ mode: 'insert' });
    expect(inserted.result, `${inserted.reason}: ${inserted.message}`).toBe('Succeeded');
    expectEqual(t.sf, await t.model());
  });

  it('an expired session is renewed once and the run goes on (refresh-token flow)', async () => {
    const s = await scenario({ oauth: true });
    let expired = false;
    const summary = await s.run({ delivery: { batchSize: 2, concurrency: 1 } } as Partial<SyncSpec>, (p) => {
      if (!expired && p.phase === 'Delivering' && (p.delivery?.delivered ?? 0) > 0) {
        expired = true;
        s.sf.expireTokens();
      }
    });
    expect(summary.result, `${summary.reason}: ${summary.message}`).toBe('Succeeded');
    expect(s.sf.stats().sessionRejected).toBe(1);
    expect(s.sf.stats().tokensIssued).toBe(2);
    expectEqual(s.sf, await s.model());
  });

  it('the daily API limit ends the run PartiallySucceeded with DailyLimitReached; the next run delivers the rest', async () => {
    const s = await scenario({ emulator: { dailyApiLimit: 3 } });
    const first = await s.run({ delivery: { batchSize: 2, concurrency: 1 } } as Partial<SyncSpec>);
    expect(first.result).toBe('PartiallySucceeded');
    expect(first.reason).toBe('DailyLimitReached');
    expect(first.message).toMatch(/daily API request limit .* is reached/);
    expect(first.rejected[0]?.reason).toMatch(/^DailyLimitReached: .*pending for the next run/);
    const delivered = first.counts.delivered;
    expect(delivered).toBe(4);
    expect(s.sf.stats().limitRejected).toBeLessThanOrEqual(1);
    s.sf.setDailyApiLimit(1000);
    const second = await s.run({ delivery: { batchSize: 2, concurrency: 1 } } as Partial<SyncSpec>);
    expect(second.result, `${second.reason}: ${second.message}`).toBe('Succeeded');
    expect(second.counts.delivered).toBe(10 - delivered);
    expectEqual(s.sf, await s.model());
  });
});
