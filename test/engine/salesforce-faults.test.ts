// Salesforce under faults: a PostgreSQL model delivered by the engine (executeRun, and `syncline job` as a
// real process) through the salesforce destination to the Salesforce emulator with its faults on — 503
// SERVER_UNAVAILABLE (nothing applied), a write applied and then the connection reset, Bulk jobs that fail
// part-way (the rest unprocessed), slow answers. After faulty runs (a load, then updates, deletes and
// inserts) and one clean run with the faults off, the Contacts equal the model value for value and no two
// records share an external id — on the sObject Collections path and on the Bulk API 2.0 path
// (delivery.batchSize ≥ bulkThreshold). Likewise after a `syncline job` SIGKILLed during delivery.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationSpec, SyncSpec } from '../../crds/index.ts';
import { secretResolver } from '../../core/secrets.ts';
import { silentLogger } from '../../core/logger.ts';
import type { RunSummary } from '../../core/summary.ts';
import { executeRun } from '../../runner/run.ts';
import {
  generateTestKeyPair,
  NO_FAULTS,
  startSalesforceEmulator,
  type FaultRates,
  type SalesforceEmulator,
} from '../emulators/salesforce/server.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, sql, tempState } from './helpers.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(REPO, 'bin', 'syncline.mjs');

let pgServer: PostgresServer;
let srcUrl: string;
let counter = 0;
let plans = 0;
const cleanups: (() => unknown)[] = [];
const keys = generateTestKeyPair();
const work = mkdtempSync(join(tmpdir(), 'syncline-sf-faults-'));

beforeAll(async () => {
  pgServer = await startPostgres();
  srcUrl = await pgServer.createDatabase('src');
});
afterAll(async () => {
  for (const c of cleanups) await c();
  await pgServer?.stop();
  rmSync(work, { recursive: true, force: true });
});

type Mapping = NonNullable<SyncSpec['mappings']>[number];
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
  { to: 'Description', from: 'description' },
] as Mapping[];

const FAULTS: FaultRates = { unavailable: 0.2, appliedThenReset: 0.2, bulkJobFailed: 0.5, slow: 0.15 };

interface ModelRow {
  id: number;
  first_name: string | null;
  last_name: string;
  email: string | null;
  birthdate: string | null;
  score: string | null;
  last_activity: string | null;
  opted_out: boolean | null;
  lead_source: string | null;
  description: string | null;
}

/** Values of the model for row `g` at version `v`: unicode, CSV-hostile text, NULLs, '' and big numbers. */
function values(g: string, v: number): string {
  return [
    `CASE (${g} + ${v}) % 5 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'Zoë ' || ${g} || ' 李 v${v}'
       WHEN 3 THEN '😀 "q", ' || ${g} ELSE 'v${v}-' || ${g} END`,
    `'Ünïcødé-' || ${g} || '-${v}'`,
    `CASE (${g} + ${v}) % 4 WHEN 0 THEN NULL ELSE 'p' || ${g} || '.v${v}@example.org' END`,
    `CASE (${g} + ${v}) % 6 WHEN 0 THEN NULL ELSE DATE '1900-01-01' + ((${g} * 37 + ${v}) % 40000) END`,
    `CASE (${g} + ${v}) % 7 WHEN 0 THEN NULL WHEN 1 THEN -999999999999.99 WHEN 2 THEN 0
       ELSE 1234567890123.25 - ${g} * 1000 - ${v} END`,
    `CASE (${g} + ${v}) % 5 WHEN 0 THEN NULL
       ELSE TIMESTAMPTZ '2024-02-29 12:34:56.789+00' + (${g} * 7919 + ${v}) * interval '1 minute' END`,
    `CASE (${g} + ${v}) % 3 WHEN 0 THEN NULL WHEN 1 THEN true ELSE false END`,
    `(ARRAY['Web', 'Other', 'Phone Inquiry', NULL])[1 + (${g} + ${v}) % 4]`,
    `CASE (${g} + ${v}) % 4 WHEN 0 THEN NULL WHEN 1 THEN E'line\\nbreak, "quoted"\\n' || ${g}
       WHEN 2 THEN E'tab\\there \\\\ back' ELSE repeat('x', 3000) || ${v} END`,
  ].join(', ');
}

async function scenario(options: { rows: number; bulkThreshold?: number }) {
  const n = ++counter;
  const table = `contacts_${n}`;
  const sf = await startSalesforceEmulator({
    publicKey: keys.publicKey,
    bulkDelayMs: 10,
    slowMs: 60,
    seed: 100 + n,
  });
  cleanups.push(() => sf.close());
  const state = tempState();
  cleanups.push(() => state.remove());
  await sql(
    srcUrl,
    `CREATE TABLE ${table} (id int PRIMARY KEY, first_name text, last_name text NOT NULL, email text,
       birthdate date, score numeric(18,2), last_activity timestamptz, opted_out boolean, lead_source text,
       description text)`,
  );
  await sql(
    srcUrl,
    `INSERT INTO ${table} SELECT g, ${values('g', 0)} FROM generate_series(1, ${options.rows}) g`,
  );
  const destination = {
    type: 'salesforce',
    salesforce: {
      loginUrl: sf.url,
      jwt: {
        consumerKey: sf.consumerKey,
        username: sf.users[0],
        privateKey: { secretKeyRef: { name: 'sf', key: 'privateKey' } },
      },
      bulkThreshold: options.bulkThreshold ?? 2000,
    },
  } as DestinationSpec;
  const secrets = secretResolver(
    {},
    { pg: { password: pgServer.password }, sf: { privateKey: keys.privateKey } },
  );
  const plan = (delivery: Record<string, number>) => {
    const p = makePlan({
      server: pgServer,
      sourceDb: 'src',
      query: `SELECT * FROM ${table}`,
      destination,
      sync: {
        mode: 'upsert',
        deleteBehavior: 'delete',
        target: { object: 'Contact', matchField: 'External_Id__c' },
        mappings: MAPPINGS,
        delivery,
        safety: { maxDeleteShare: 1, allowLargeDeletes: true },
      } as Partial<SyncSpec> & { mode: 'upsert' },
      stateUrl: state.url,
      name: `salesforce-faults-${n}`,
    });
    return { ...p, runner: { ...p.runner, checkpointSeconds: 0.3 } };
  };
  return {
    sf,
    source: (text: string) => sql(srcUrl, text.replaceAll('$T', table)),
    /** Updates, deletes and inserts: version `v` of the model. */
    change: async (v: number, span: { updated: number; deleted: number; inserted: number }) => {
      const cols =
        'first_name, last_name, email, birthdate, score, last_activity, opted_out, lead_source, description';
      await sql(
        srcUrl,
        `UPDATE ${table} t SET (${cols}) = (SELECT ${values('t.id', v)}) WHERE t.id IN
           (SELECT id FROM ${table} ORDER BY (id * 7919 + ${v}) % 1009 LIMIT ${span.updated})`,
      );
      await sql(
        srcUrl,
        `DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} ORDER BY (id * 104729 + ${v}) % 997 LIMIT ${span.deleted})`,
      );
      await sql(
        srcUrl,
        `INSERT INTO ${table} SELECT g, ${values('g', v)} FROM generate_series(
           (SELECT max(id) + 1 FROM ${table}), (SELECT max(id) + ${span.inserted} FROM ${table})) g`,
      );
    },
    run: (delivery: Record<string, number>) =>
      executeRun(plan(delivery), {
        secrets,
        log: silentLogger(),
        signal: new AbortController().signal,
        backoff: { baseMs: 5, capMs: 40 },
      }),
    plan,
    model: async () =>
      sql<ModelRow>(
        srcUrl,
        `SELECT id, first_name, last_name, email, birthdate::text AS birthdate, score::text AS score,
           to_char(last_activity AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"+0000"') AS last_activity,
           opted_out, lead_source, description FROM ${table} ORDER BY id`,
      ),
  };
}
type Scenario = Awaited<ReturnType<typeof scenario>>;

/** The live Contacts equal the model, value for value as Salesforce keeps them, and no external id twice. */
function expectEqual(sf: SalesforceEmulator, model: ModelRow[]): void {
  const live = sf.records('Contact');
  const ids = live.map((r) => String(r['External_Id__c']).toLowerCase());
  const seen = new Map<string, number>();
  for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1);
  expect(
    [...seen].filter(([, n]) => n > 1),
    'external ids on more than one record',
  ).toEqual([]);
  const records = new Map(live.map((r) => [String(r['External_Id__c']), r]));
  expect(
    [...records.keys()].filter((k) => !model.some((row) => String(row.id) === k)),
    'records with no row',
  ).toEqual([]);
  const text = (v: string | null) => (v === '' ? null : v);
  const mismatches: string[] = [];
  for (const row of model) {
    const r = records.get(String(row.id));
    if (!r) {
      mismatches.push(`${row.id}: no record`);
      continue;
    }
    const expected: Record<string, unknown> = {
      FirstName: text(row.first_name),
      LastName: row.last_name,
      Email: text(row.email),
      Birthdate: row.birthdate,
      Score__c: row.score === null ? null : Number(row.score),
      Last_Activity__c: row.last_activity,
      HasOptedOutOfEmail: row.opted_out ?? false,
      LeadSource: text(row.lead_source),
      Description: text(row.description),
    };
    for (const [field, value] of Object.entries(expected)) {
      const got = r[field] ?? null;
      if (got !== value)
        mismatches.push(`${row.id}.${field}: expected ${JSON.stringify(value)}, got ${JSON.stringify(got)}`);
    }
  }
  expect(mismatches.slice(0, 20), `${mismatches.length} mismatches`).toEqual([]);
}

const faultsSeen = (sf: SalesforceEmulator) => sf.stats().faults;

async function faultyThenClean(s: Scenario, delivery: Record<string, number>, bulk: boolean) {
  s.sf.setFaults(FAULTS);
  const results: RunSummary[] = [];
  results.push(await s.run(delivery));
  await s.change(
    1,
    bulk ? { updated: 250, deleted: 120, inserted: 130 } : { updated: 60, deleted: 25, inserted: 30 },
  );
  results.push(await s.run(delivery));
  const faults = faultsSeen(s.sf);
  s.sf.setFaults(NO_FAULTS);
  await s.sf.settled();
  const clean = await s.run(delivery);
  expect(
    clean.result,
    `${clean.reason}: ${clean.message} ${JSON.stringify(clean.rejected.slice(0, 3))}`,
  ).toBe('Succeeded');
  expectEqual(s.sf, await s.model());
  return { results, faults, clean };
}

describe('salesforce under faults: one clean run leaves the Contacts equal to the model, no duplicates', () => {
  it('sObject Collections (503, applied-then-reset, slow)', async () => {
    const s = await scenario({ rows: 240 });
    const { results, faults } = await faultyThenClean(
      s,
      { batchSize: 10, concurrency: 3, maxRetries: 3 },
      false,
    );
    console.log(
      `[salesforce faults: collections] faulty runs ${results.map((r) => `${r.result}${r.reason ? ` (${r.reason}: ${r.message})` : ''} delivered ${r.counts.delivered} failed ${r.counts.failed}`).join('; ')}; faults ${JSON.stringify(faults)}`,
    );
    expect(s.sf.jobs()).toEqual([]);
    expect(faults.unavailable).toBeGreaterThan(0);
    expect(faults.appliedThenReset).toBeGreaterThan(0);
    expect(faults.slow).toBeGreaterThan(0);
  }, 120_000);

  it('Bulk API 2.0 (jobs failing part-way, 503, slow)', async () => {
    // Enough jobs (4 a run) that, with half of them failing part-way, both outcomes occur.
    const s = await scenario({ rows: 1000, bulkThreshold: 100 });
    const { results, faults } = await faultyThenClean(
      s,
      { batchSize: 250, concurrency: 2, maxRetries: 3 },
      true,
    );
    const jobs = s.sf.jobs();
    console.log(
      `[salesforce faults: bulk] faulty runs ${results.map((r) => `${r.result}${r.reason ? ` (${r.reason}: ${r.message})` : ''} delivered ${r.counts.delivered} failed ${r.counts.failed}`).join('; ')}; faults ${JSON.stringify(faults)}; jobs ${jobs.map((j) => `${j.operation}:${j.state}`).join(' ')}`,
    );
    expect(jobs.some((j) => j.operation === 'upsert' && j.state === 'JobComplete')).toBe(true);
    expect(faults.bulkJobFailed).toBeGreaterThan(0);
    expect(jobs.some((j) => j.state === 'Failed')).toBe(true);
    expect(faults.unavailable).toBeGreaterThan(0);
    // A job whose upload or close failed is aborted, never left Open.
    expect(jobs.filter((j) => j.state === 'Open')).toEqual([]);
  }, 120_000);
});

interface JobOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  killedInDelivery: boolean;
  output: string;
}

/** `syncline job --plan FILE` as a real process; SIGKILLed `afterMs` after its first write reached Salesforce. */
function runJob(
  plan: unknown,
  sf: SalesforceEmulator,
  kill?: { afterMs: number; isWrite: (r: { method: string; path: string }) => boolean },
): Promise<JobOutcome> {
  const file = join(work, `plan-${++plans}.json`);
  writeFileSync(file, JSON.stringify(plan));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'job', '--plan', file], {
      cwd: REPO,
      env: {
        ...process.env,
        TMPDIR: work,
        SYNCLINE_SECRET_PG__PASSWORD: pgServer.password,
        SYNCLINE_SECRET_SF__PRIVATEKEY: keys.privateKey,
        SYNCLINE_TERMINATION_LOG: join(work, 'termination'),
        SYNCLINE_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    let exited = false;
    let killedInDelivery = false;
    let watching: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      if (kill && !watching && output.includes('phase Delivering')) {
        const from = sf.requests().length;
        watching = setInterval(() => {
          if (!sf.requests().slice(from).some(kill.isWrite)) return;
          clearInterval(watching);
          setTimeout(() => {
            if (exited) return;
            killedInDelivery = !output.includes('phase Committing');
            child.kill('SIGKILL');
          }, kill.afterMs);
        }, 5);
      }
    });
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      exited = true;
      clearInterval(watching);
      resolve({ code, signal, killedInDelivery, output });
    });
  });
}

describe('salesforce: a syncline job SIGKILLed during delivery, then one clean run', () => {
  for (const path of ['collections', 'bulk'] as const) {
    it(`${path}: equal to the model, no duplicate records`, async () => {
      const bulk = path === 'bulk';
      const s = await scenario({ rows: bulk ? 600 : 300, ...(bulk ? { bulkThreshold: 100 } : {}) });
      const delivery = bulk ? { batchSize: 150, concurrency: 1 } : { batchSize: 10, concurrency: 2 };
      // Slow answers stretch delivery so that the kill lands in the middle of it.
      s.sf.setFaults({ slow: 1 });
      const isWrite = bulk
        ? (r: { method: string; path: string }) => r.method === 'PUT' && r.path.endsWith('/batches')
        : (r: { method: string; path: string }) =>
            r.method === 'PATCH' && r.path.includes('/composite/sobjects');
      const killed = await runJob(s.plan(delivery), s.sf, { afterMs: bulk ? 150 : 400, isWrite });
      expect(killed.signal, killed.output.slice(-2000)).toBe('SIGKILL');
      expect(killed.killedInDelivery).toBe(true);
      const partial = s.sf.records('Contact').length;
      await s.sf.settled();
      s.sf.setFaults(NO_FAULTS);
      await s.change(
        2,
        bulk ? { updated: 200, deleted: 100, inserted: 120 } : { updated: 40, deleted: 20, inserted: 20 },
      );
      // Records the killed job wrote whose rows have since left the model: the clean run must delete them.
      const modelIds = new Set((await s.model()).map((r) => String(r.id)));
      const leftModel = s.sf.records('Contact').filter((r) => !modelIds.has(String(r['External_Id__c'])));
      expect(leftModel.length).toBeGreaterThan(0);
      const clean = await runJob(s.plan(delivery), s.sf);
      expect(clean.code, clean.output.slice(-3000)).toBe(0);
      expectEqual(s.sf, await s.model());
      console.log(
        `[salesforce kill: ${path}] ${partial} records when killed, ${leftModel.length} of them deleted from the model before the clean run; after the clean run ${s.sf.records('Contact').length}; jobs ${s.sf
          .jobs()
          .map((j) => `${j.operation}:${j.state}`)
          .join(' ')}`,
      );
    }, 120_000);
  }
});
