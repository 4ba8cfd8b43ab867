// End to end with SaaS destinations: the operator as a process against the real API server and
// controller-manager, the test agent running the Jobs' pods as processes (test/agent/README.md), a
// PostgreSQL model and the HubSpot and Salesforce emulators (test/emulators/) as real HTTP servers in this
// process. Each Destination's connection check discovers the object its Syncs target; `kubectl syncline
// fields` reads what it found; a Sync mapping to a field the object lacks is refused before any run
// (Stalled, UnknownField naming the closest fields, no Job); a valid Sync runs and leaves the tool's
// records equal to the model, and a change to one row sends only that row on the annotation-triggered run.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent } from '../agent/agent.ts';
import { startHubSpotEmulator, type HubSpotEmulator } from '../emulators/hubspot/server.ts';
import {
  generateTestKeyPair,
  startSalesforceEmulator,
  type SalesforceEmulator,
} from '../emulators/salesforce/server.ts';
import { REPO_DIR } from '../stack/paths.ts';
import { nodeBinary, startOperator, type OperatorProcess } from './operator-process.ts';
import { startWarehouse, type Warehouse } from './scenario.ts';
import { condition, eventually, Kube, loadKubeConfig, waitForCondition } from './support.ts';

let kube: Kube;
let agent: Agent;
let warehouse: Warehouse;
let hs: HubSpotEmulator;
let sf: SalesforceEmulator;
let operator: OperatorProcess;
let ns: string;
let store: string;
const keys = generateTestKeyPair();

interface RunRecord {
  id: string;
  trigger?: string;
  result?: string;
  reason?: string;
  message?: string;
  counts?: { queried: number; added: number; changed: number; delivered: number; failed: number };
}

/** The model: unicode, a number beyond 2^53 with decimals, dates, booleans, NULLs and an empty string. */
const TABLE_SQL = `
  CREATE TABLE people (id int PRIMARY KEY, email text, first_name text, last_name text,
    lifetime_value numeric(38,6), birthdate date, is_vip boolean);
  INSERT INTO people SELECT g, 'p' || g || '@example.org', 'Zoë ' || g || ' 李', 'Ünïcødé-' || g,
    12345678901234567890.5 + g, DATE '1990-01-01' + g, g % 2 = 0 FROM generate_series(1, 6) g;
  UPDATE people SET first_name = NULL, birthdate = NULL, is_vip = NULL, lifetime_value = NULL WHERE id = 3;
  UPDATE people SET first_name = '' WHERE id = 4;`;

interface ModelRow {
  id: number;
  email: string | null;
  first_name: string | null;
  last_name: string | null;
  lifetime_value: string | null;
  birthdate: string | null;
  is_vip: boolean | null;
}

async function model(): Promise<ModelRow[]> {
  const { host, port, user, password } = warehouse.postgres;
  const client = new pg.Client({ host, port, user, password, database: 'app' });
  await client.connect();
  try {
    return (
      await client.query<ModelRow>(
        `SELECT id, email, first_name, last_name, lifetime_value::text AS lifetime_value,
           birthdate::text AS birthdate, is_vip FROM people ORDER BY id`,
      )
    ).rows;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  const kubeconfigPath = inject('kubeconfigPath');
  kube = new Kube(loadKubeConfig(kubeconfigPath));
  [warehouse, hs, sf] = await Promise.all([
    startWarehouse(0),
    startHubSpotEmulator({ seed: 13 }),
    startSalesforceEmulator({ publicKey: keys.publicKey, bulkDelayMs: 10, seed: 13 }),
  ]);
  await warehouse.query(TABLE_SQL);
  ns = await kube.namespace('e2e-saas');
  store = mkdtempSync(join(tmpdir(), 'syncline-e2e-saas-store-'));
  agent = new Agent({ kubeConfig: kube.kc, namespace: ns, retryMs: 500 });
  await agent.start();
  operator = startOperator([
    '--kubeconfig',
    kubeconfigPath,
    '--namespaces',
    ns,
    '--metrics-port',
    '0',
    '--diff-store-url',
    pathToFileURL(store).href,
    '--pod-start-timeout-seconds',
    '20',
    '--check-retry-seconds',
    '5',
    '--no-leader-elect',
  ]);
  await operator.port();

  await kube.secret(ns, 'pg', { password: warehouse.postgres.password });
  await kube.secret(ns, 'hubspot', { token: hs.token });
  await kube.secret(ns, 'salesforce', { privateKey: keys.privateKey });
  await kube.create('sources', ns, {
    kind: 'Source',
    metadata: { name: 'warehouse' },
    spec: {
      type: 'postgres',
      postgres: {
        host: '127.0.0.1',
        port: warehouse.port,
        database: 'app',
        user: 'postgres',
        password: { secretKeyRef: { name: 'pg', key: 'password' } },
        tls: { mode: 'disable' },
      },
    },
  });
  await kube.create('models', ns, {
    kind: 'Model',
    metadata: { name: 'people' },
    spec: { sourceRef: { name: 'warehouse' }, table: 'people', primaryKey: 'id' },
  });
}, 180_000);

afterAll(async () => {
  await operator?.kill();
  await agent?.stop();
  await hs?.close();
  await sf?.close();
  await warehouse?.postgres.stop();
  if (store) rmSync(store, { recursive: true, force: true });
});

async function history(name: string): Promise<RunRecord[]> {
  return ((await kube.get('syncs', ns, name))?.status?.['history'] as RunRecord[] | undefined) ?? [];
}

/** `kubectl syncline fields DESTINATION OBJECT -o json`, the plugin as a process. */
function pluginFields(destination: string, object: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      nodeBinary(),
      [
        join(REPO_DIR, 'bin/kubectl-syncline.mjs'),
        'fields',
        destination,
        object,
        '-n',
        ns,
        '--kubeconfig',
        inject('kubeconfigPath'),
        '--diff-store',
        pathToFileURL(store).href,
        '-o',
        'json',
      ],
      { cwd: REPO_DIR, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, out }));
  });
}

async function manualRun(name: string): Promise<RunRecord> {
  const before = (await history(name)).length;
  await kube.patch('syncs', ns, name, {
    metadata: { annotations: { 'syncline.io/run-requested-at': new Date().toISOString() } },
  });
  return eventually(
    `the manual run of ${name}`,
    async () => {
      const runs = await history(name);
      return runs.length > before && runs[0]?.trigger === 'manual' && runs[0].result ? runs[0] : undefined;
    },
    { timeoutMs: 90_000, describe: async () => JSON.stringify((await kube.get('syncs', ns, name))?.status) },
  );
}

/** The Sync that maps to a field the object lacks is Stalled (UnknownField), a Warning Event, no Job. */
async function expectRefused(sync: string, field: string, closest: RegExp): Promise<void> {
  const stalled = await waitForCondition(kube, 'syncs', ns, sync, 'Stalled', 'True', 'UnknownField', 90_000);
  const message = condition(stalled, 'Stalled')?.message ?? '';
  expect(message).toContain(`names field "${field}"`);
  expect(message).toMatch(closest);
  expect(condition(stalled, 'Ready')).toMatchObject({ status: 'False', reason: 'UnknownField' });
  const event = await eventually('the UnknownField Event', async () =>
    (await kube.events(ns)).find((e) => e.involvedObject.name === sync && e.reason === 'UnknownField'),
  );
  expect(event.type).toBe('Warning');
  expect(await kube.jobs(ns, `syncline.io/sync=${sync}`)).toEqual([]);
  expect(await history(sync)).toEqual([]);
}

describe('SaaS destinations through the operator', () => {
  it('HubSpot: discovery, fields, UnknownField before any run, a run equal to the model, then only the changed row', async () => {
    await kube.create('destinations', ns, {
      kind: 'Destination',
      metadata: { name: 'hubspot' },
      spec: {
        type: 'hubspot',
        hubspot: { baseUrl: hs.url, privateAppToken: { secretKeyRef: { name: 'hubspot', key: 'token' } } },
      },
    });
    const mappings = [
      { to: 'external_id', from: 'id' },
      { to: 'email', from: 'email' },
      { to: 'firstname', from: 'first_name' },
      { to: 'lastname', from: 'last_name' },
      { to: 'lifetime_value', from: 'lifetime_value' },
      { to: 'date_of_birth', from: 'birthdate' },
      { to: 'is_vip', from: 'is_vip' },
    ];
    const spec = (m: typeof mappings) => ({
      modelRef: { name: 'people' },
      destinationRef: { name: 'hubspot' },
      mode: 'upsert',
      target: { object: 'contacts', matchField: 'external_id' },
      mappings: m,
      schedule: { interval: '1h' },
    });
    // A misspelt property: `firstnme`.
    await kube.create('syncs', ns, {
      kind: 'Sync',
      metadata: { name: 'hubspot-typo' },
      spec: spec(mappings.map((m) => (m.to === 'firstname' ? { ...m, to: 'firstnme' } : m))),
    });

    // (a) The check discovers contacts: the Destination is Ready, and the plugin lists the fields.
    await waitForCondition(kube, 'destinations', ns, 'hubspot', 'Ready', 'True', undefined, 120_000);
    const listed = await eventually('the discovered contacts', async () => {
      const r = await pluginFields('hubspot', 'contacts');
      return r.code === 0 ? r : undefined;
    });
    const fields = JSON.parse(listed.out) as {
      destination: string;
      type: string;
      object: string;
      fields: { name: string; type: string; unique?: boolean; readOnly?: boolean; options?: string[] }[];
    };
    expect(fields).toMatchObject({ destination: 'hubspot', type: 'hubspot', object: 'contacts' });
    const byName = new Map(fields.fields.map((f) => [f.name, f]));
    expect(byName.get('external_id')).toMatchObject({ unique: true });
    expect(byName.get('date_of_birth')?.type).toBe('date');
    expect(byName.get('num_associated_deals')?.readOnly).toBe(true);
    expect(byName.get('lifecyclestage')?.options).toContain('customer');
    const unknownObject = await pluginFields('hubspot', 'tickets');
    expect(unknownObject.code).not.toBe(0);
    expect(unknownObject.out).toContain('have not been discovered');

    // (b) Refused before any run, naming the closest fields.
    await expectRefused('hubspot-typo', 'firstnme', /did you mean .*firstname/);

    // (c) A valid Sync runs once when created; HubSpot's contacts then equal the model.
    await kube.create('syncs', ns, {
      kind: 'Sync',
      metadata: { name: 'hubspot-people' },
      spec: spec(mappings),
    });
    const first = await waitForCondition(
      kube,
      'syncs',
      ns,
      'hubspot-people',
      'Ready',
      'True',
      'Succeeded',
      120_000,
    );
    expect(first.status!['lastRun']).toMatchObject({
      trigger: 'schedule',
      result: 'Succeeded',
      counts: { queried: 6, added: 6, delivered: 6, failed: 0 },
    });
    expectHubSpotEqual(await model());
    expect(hs.violations()).toEqual([]);

    // A change to one row, then a manual run: only that row is sent.
    await warehouse.query(
      "UPDATE people SET first_name = 'Ωmega', lifetime_value = 98765432109876543210.123456 WHERE id = 2",
    );
    const before = hs.requests().length;
    const manual = await manualRun('hubspot-people');
    expect(manual).toMatchObject({ result: 'Succeeded', counts: { queried: 6, changed: 1, delivered: 1 } });
    const writes = hs
      .requests()
      .slice(before)
      .filter(
        (r) => r.method === 'POST' && r.path.includes('/crm/v3/objects/') && r.path.includes('/batch/'),
      );
    const inputs = writes.flatMap(
      (r) => (r.body as { inputs?: { id?: string; properties?: Record<string, string> }[] }).inputs ?? [],
    );
    expect(inputs.map((i) => i.id ?? i.properties?.['external_id'])).toEqual(['2']);
    expectHubSpotEqual(await model());
    // The refused Sync never ran.
    expect(await kube.jobs(ns, 'syncline.io/sync=hubspot-typo')).toEqual([]);
  }, 300_000);

  it('Salesforce: discovery, fields, UnknownField before any run, a run equal to the model, then only the changed row', async () => {
    await kube.create('destinations', ns, {
      kind: 'Destination',
      metadata: { name: 'salesforce' },
      spec: {
        type: 'salesforce',
        salesforce: {
          loginUrl: sf.url,
          jwt: {
            consumerKey: sf.consumerKey,
            username: sf.users[0],
            privateKey: { secretKeyRef: { name: 'salesforce', key: 'privateKey' } },
          },
        },
      },
    });
    const mappings = [
      { to: 'External_Id__c', from: 'id' },
      { to: 'Email', from: 'email' },
      { to: 'FirstName', from: 'first_name' },
      { to: 'LastName', from: 'last_name' },
      { to: 'Birthdate', from: 'birthdate' },
      { to: 'HasOptedOutOfEmail', from: 'is_vip' },
    ];
    const spec = (m: typeof mappings) => ({
      modelRef: { name: 'people' },
      destinationRef: { name: 'salesforce' },
      mode: 'upsert',
      target: { object: 'Contact', matchField: 'External_Id__c' },
      mappings: m,
      schedule: { interval: '1h' },
    });
    await kube.create('syncs', ns, {
      kind: 'Sync',
      metadata: { name: 'salesforce-typo' },
      spec: spec(mappings.map((m) => (m.to === 'Email' ? { ...m, to: 'Emial' } : m))),
    });

    await waitForCondition(kube, 'destinations', ns, 'salesforce', 'Ready', 'True', undefined, 120_000);
    const listed = await eventually('the discovered Contact', async () => {
      const r = await pluginFields('salesforce', 'Contact');
      return r.code === 0 ? r : undefined;
    });
    const fields = JSON.parse(listed.out) as {
      object: string;
      fields: { name: string; type: string; unique?: boolean; readOnly?: boolean; required?: boolean }[];
    };
    expect(fields.object).toBe('Contact');
    const byName = new Map(fields.fields.map((f) => [f.name, f]));
    expect(byName.get('External_Id__c')).toMatchObject({ unique: true });
    expect(byName.get('LastName')).toMatchObject({ required: true });
    expect(byName.get('Birthdate')?.type).toBe('date');

    await expectRefused('salesforce-typo', 'Emial', /did you mean .*Email/);

    await kube.create('syncs', ns, {
      kind: 'Sync',
      metadata: { name: 'salesforce-people' },
      spec: spec(mappings),
    });
    const first = await waitForCondition(
      kube,
      'syncs',
      ns,
      'salesforce-people',
      'Ready',
      'True',
      'Succeeded',
      120_000,
    );
    expect(first.status!['lastRun']).toMatchObject({
      result: 'Succeeded',
      counts: { queried: 6, delivered: 6, failed: 0 },
    });
    expectSalesforceEqual(await model());

    await warehouse.query("UPDATE people SET last_name = 'Ñandú 🦤' WHERE id = 5");
    const before = sf.requests().length;
    const manual = await manualRun('salesforce-people');
    expect(manual).toMatchObject({ result: 'Succeeded', counts: { queried: 6, changed: 1, delivered: 1 } });
    const writes = sf
      .requests()
      .slice(before)
      .filter((r) => r.method !== 'GET' && r.path.includes('/composite/sobjects'));
    const records = writes.flatMap(
      (r) => (JSON.parse(r.body || '{}') as { records?: { External_Id__c?: unknown }[] }).records ?? [],
    );
    expect(records.map((r) => String(r.External_Id__c))).toEqual(['5']);
    expectSalesforceEqual(await model());
    expect(await kube.jobs(ns, 'syncline.io/sync=salesforce-typo')).toEqual([]);
  }, 300_000);
});

/** HubSpot's contacts keyed by external_id, as HubSpot stores the model's values ("" for NULL). */
function expectHubSpotEqual(rows: ModelRow[]): void {
  const records = new Map(hs.records('contacts').map((r) => [r.properties['external_id'], r.properties]));
  expect(records.size).toBe(rows.length);
  const blank = (v: string | undefined) => (v === undefined || v === '' ? null : v);
  for (const row of rows) {
    const p = records.get(String(row.id));
    expect(p, `contact ${row.id}`).toBeDefined();
    expect({
      email: blank(p?.['email']),
      firstname: blank(p?.['firstname']),
      lastname: blank(p?.['lastname']),
      lifetime_value: blank(p?.['lifetime_value']),
      date_of_birth: blank(p?.['date_of_birth']),
      is_vip: blank(p?.['is_vip']),
    }).toEqual({
      email: row.email?.toLowerCase() ?? null,
      firstname: row.first_name || null,
      lastname: row.last_name || null,
      lifetime_value: row.lifetime_value,
      date_of_birth: row.birthdate,
      is_vip: row.is_vip === null ? null : String(row.is_vip),
    });
  }
}

/** Salesforce's Contacts keyed by External_Id__c (no empty strings; a NULL checkbox is false). */
function expectSalesforceEqual(rows: ModelRow[]): void {
  const records = new Map(sf.records('Contact').map((r) => [r['External_Id__c'], r]));
  expect(records.size).toBe(rows.length);
  for (const row of rows) {
    const r = records.get(String(row.id));
    expect(r, `Contact ${row.id}`).toBeDefined();
    expect({
      Email: r?.['Email'] ?? null,
      FirstName: r?.['FirstName'] ?? null,
      LastName: r?.['LastName'] ?? null,
      Birthdate: r?.['Birthdate'] ?? null,
      HasOptedOutOfEmail: r?.['HasOptedOutOfEmail'],
    }).toEqual({
      Email: row.email,
      FirstName: row.first_name || null,
      LastName: row.last_name || null,
      Birthdate: row.birthdate,
      HasOptedOutOfEmail: row.is_vip ?? false,
    });
  }
}
