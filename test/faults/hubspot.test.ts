// The fault suite against the HubSpot emulator: trial after trial the model changes (updates, reverts to
// earlier values, deletes archived with deleteBehavior delete, deletes followed by the same row again,
// rows deleted earlier inserted again, inserts) and a real `syncline job` delivers it to the emulator —
// a real HTTP server in this process — while it is SIGKILLed or SIGTERMed at a random point of delivery,
// and while the emulator throws 429s (HubSpot's rolling limit, its headers and Retry-After: the budget is
// spent by a neighbour app on the same portal), 5xx, slow answers, and writes applied and then answered
// with a reset connection or a 502. Then, faults off, one clean run must leave the live contacts equal to
// the model, value for value as HubSpot stores them, with no duplicate records and no contract violation.
// Seeded: SYNCLINE_FAULT_SEED (and SYNCLINE_FAULT_TRIALS).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationSpec, SyncSpec } from '../../crds/index.ts';
import { startHubSpotEmulator, type FaultRates, type HubSpotEmulator } from '../emulators/hubspot/server.ts';
import { makePlan, sql, tempState } from '../engine/helpers.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { canonicalNumber, type Mismatch } from './compare.ts';
import { runJob, type Kill } from './job.ts';
import { HOSTILE, ModelChanges, createModel, pick, type ModelShape } from './model.ts';
import { seeded } from './random.ts';

const SEED = Number(process.env['SYNCLINE_FAULT_SEED'] ?? Date.now() % 1_000_000);
const TRIALS = Number(process.env['SYNCLINE_FAULT_TRIALS'] ?? 10);
/** A minute, plus room for each trial (a trial takes 1–4 s). */
const TIMEOUT_MS = 60_000 + TRIALS * 15_000;
/** Rows of the first load, and rows touched per kind of change per trial. */
const ROWS = 400;
const SCALE = 25;
const TABLE = 'model_hubspot';

/** HubSpot's rolling limit, scaled down: 30 requests a second (the portal's budget, shared). */
const RATE = { max: 30, intervalMs: 1000, daily: 1_000_000 };
const FAULTS: FaultRates = { unavailable: 0.05, appliedThenReset: 0.04, appliedThen5xx: 0.04, slow: 0.03 };
const DELIVERY = { batchSize: 10, concurrency: 3, maxRetries: 20 };
/** The neighbour app's requests (the job never reads company properties). */
const NEIGHBOUR_PATH = '/crm/v3/properties/companies';

const LIFECYCLE = [
  'subscriber',
  'lead',
  'marketingqualifiedlead',
  'salesqualifiedlead',
  'opportunity',
  'customer',
  'evangelist',
  'other',
];
const LANGUAGES = ['en', 'de', 'fr', 'es', 'ja'];
const INTERESTS = ['data', 'crm', 'marketing', 'support'];

const TEXTS = [
  '',
  null,
  'Zoë 李',
  '😀 ünïcödé',
  'tab\there',
  'line\nbreak\r\nend',
  '"quoted", \'single\'',
  'back\\slash',
  '{{ row.id }}',
  '\\N',
  'NULL',
  ' spaced ',
];
const DECIMALS = [
  '1234567890123456789012345678.1234567891',
  '-9999999999999999999999999999.9999999999',
  '0.0000000001',
  '-0.0000000001',
  '0',
  '9007199254740993.0000000001',
  null,
];
const DOUBLES = [
  '0',
  '-0',
  '0.1',
  '1e308',
  '5e-324',
  '-2.2250738585072014e-308',
  '0.30000000000000004',
  '9007199254740993',
  '-1.5',
  null,
];
const DATES = ['1970-01-01', '2024-02-29', '1899-12-31', '9999-12-31', '2000-01-01', null];
const TIMES = [
  '2024-02-29 12:34:56.789999+00',
  '1969-12-31 23:59:59.999999+00',
  '2038-01-19 03:14:08+00',
  '2024-06-01 00:00:00.5+05:30',
  '1900-01-01 00:00:00+00',
  null,
];

/** The model: contacts with every kind of property (string, number, date, datetime, bool, enumerations). */
const SHAPE: ModelShape = {
  columns: [
    'id',
    'email',
    'firstname',
    'lastname',
    'lifetime_value',
    'score',
    'date_of_birth',
    'last_seen_at',
    'is_vip',
    'lifecyclestage',
    'interests',
    'hs_language',
  ],
  ddl: `id bigint PRIMARY KEY, email text, firstname text, lastname text, lifetime_value numeric(38,10),
        score double precision, date_of_birth date, last_seen_at timestamptz, is_vip boolean,
        lifecyclestage text, interests text[], hs_language text`,
  // Emails are unique per id (HubSpot's contacts are unique by email): only the case and a +tag change.
  values: (g, v, id) =>
    [
      `CASE ((${g}) + (${v})) % 4 WHEN 0 THEN NULL WHEN 1 THEN 'P' || (${id}) || '@Example.ORG'
         WHEN 2 THEN 'p' || (${id}) || '+v' || (${v}) || '@example.org' ELSE 'p' || (${id}) || '@example.org' END`,
      `CASE WHEN (${g}) % 97 = 7 THEN repeat('0123456789abcdef', 3750) || (${v})::text ELSE ${pick(TEXTS, g, v, 'text')} END`,
      `CASE ((${g}) + (${v})) % 3 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'v' || (${v}) END`,
      `CASE WHEN ((${g}) + (${v})) % 7 = 6 THEN ((${g}) * 7919 + (${v}))::numeric / 7 ELSE ${pick(DECIMALS, g, v, 'numeric')} END::numeric(38,10)`,
      pick(DOUBLES, g, v, 'float8'),
      `CASE WHEN ((${g}) + (${v})) % 4 = 3 THEN DATE '1900-01-01' + (((${g}) * 37 + (${v})) % 60000)::int ELSE ${pick(DATES, g, v, 'date')} END`,
      `CASE WHEN ((${g}) + (${v})) % 4 = 3 THEN TIMESTAMPTZ '2000-01-01 00:00:00+00' + ((${g}) * 7919 + (${v})) * interval '1.234567 second' ELSE ${pick(TIMES, g, v, 'timestamptz')} END`,
      `CASE ((${g}) + (${v})) % 3 WHEN 0 THEN NULL WHEN 1 THEN true ELSE false END`,
      pick(['lead', 'Customer', 'OTHER', 'subscriber', 'evangelist', null, ''], g, v, 'text'),
      pick(
        ['{data,crm}', '{}', null, '{Marketing}', '{support,data,crm,marketing}', '{" crm "}'],
        g,
        v,
        'text[]',
      ),
      pick(['en', 'de', 'JA', null, 'fr'], g, v, 'text'),
    ].join(', '),
  idOf: HOSTILE.idOf,
};

/** Every column but the key goes to the property of its name; the key to the unique external_id. */
const MAPPINGS: SyncSpec['mappings'] = [
  { to: 'external_id', from: 'id', valueType: 'string' },
  ...SHAPE.columns.slice(1).map((c) => ({ to: c, from: c, valueType: 'string' as const })),
];

let server: PostgresServer;
let srcUrl: string;
let hs: HubSpotEmulator;
const work = mkdtempSync(join(tmpdir(), 'syncline-faults-hubspot-'));
const states: { remove(): void }[] = [];

beforeAll(async () => {
  console.log(`fault suite (hubspot): seed ${SEED} (SYNCLINE_FAULT_SEED=${SEED}), ${TRIALS} trials`);
  server = await startPostgres();
  srcUrl = await server.createDatabase('src');
  hs = await startHubSpotEmulator({ seed: SEED, rateLimit: RATE, faults: FAULTS, slowMs: [50, 400] });
  hs.addProperty('contacts', { name: 'score', label: 'Score', type: 'number', fieldType: 'number' });
});
afterAll(async () => {
  await hs?.close();
  await server?.stop();
  for (const state of states) state.remove();
  rmSync(work, { recursive: true, force: true });
});

function planFor(stateUrl: string) {
  const plan = makePlan({
    server,
    sourceDb: 'src',
    query: `SELECT ${SHAPE.columns.join(', ')} FROM ${TABLE}`,
    destination: {
      type: 'hubspot',
      hubspot: { baseUrl: hs.url, privateAppToken: { secretKeyRef: { name: 'hubspot', key: 'token' } } },
    } as DestinationSpec,
    sync: {
      mode: 'upsert',
      deleteBehavior: 'delete',
      target: { object: 'contacts', matchField: 'external_id' },
      mappings: MAPPINGS,
      delivery: DELIVERY,
      safety: { maxDeleteShare: 1, allowLargeDeletes: true },
    } as Partial<SyncSpec> & { mode: 'upsert' },
    stateUrl,
    name: 'faults-hubspot',
  });
  return { ...plan, runner: { ...plan.runner, checkpointSeconds: 0.3 } };
}

const jobEnv = () => ({
  work,
  pgPassword: server.password,
  env: { SYNCLINE_SECRET_HUBSPOT__TOKEN: hs.token },
});

/** Let a run finish (1 in 6), or stop it with SIGKILL or SIGTERM up to `spanMs` into delivery. */
function chooseKill(next: () => number, spanMs: number): Kill | undefined {
  if (next() < 1 / 6) return undefined;
  return { signal: next() < 0.6 ? 'SIGKILL' : 'SIGTERM', afterMs: Math.floor(next() * spanMs) };
}

/**
 * Another app on the portal spends what is left of the interval's budget at once (its requests in parallel),
 * so that the job's requests then in flight or about to go get HubSpot's 429 (TEN_SECONDLY_ROLLING, with
 * its X-HubSpot-RateLimit-* headers and Retry-After) although the last answer it saw left budget.
 */
async function neighbourBurst(): Promise<number> {
  const one = async () => {
    const response = await fetch(`${hs.url}${NEIGHBOUR_PATH}`, {
      headers: { authorization: `Bearer ${hs.token}` },
    }).catch(() => undefined);
    await response?.arrayBuffer().catch(() => undefined);
  };
  await Promise.all(Array.from({ length: RATE.max }, one));
  return RATE.max;
}

interface Report {
  kills: { SIGKILL: number; SIGTERM: number };
  killedCommitting: number;
  finished: number;
  bursts: number;
  failedRuns: string[];
  log: string[];
  ms: number;
}

/** The job's write requests (batch upsert, archive…) in the emulator's log from entry `from` on. */
const WRITE = /\/batch\/(upsert|create|update|archive)$/;
function jobRequests(from: number) {
  return hs
    .requests()
    .slice(from)
    .filter((r) => r.path !== NEIGHBOUR_PATH);
}

/**
 * How long the job wrote in the runs that were not stopped (first write to last request): kills are spread
 * over that span, counted from the job's first write the emulator saw.
 */
class DeliverySpan {
  private first = 1500;
  private later = 400;
  of(trial: number): number {
    return trial === 0 ? this.first : this.later;
  }
  learn(trial: number, from: number): void {
    const requests = jobRequests(from);
    const firstWrite = requests.find((r) => WRITE.test(r.path));
    const last = requests.at(-1);
    if (!firstWrite || !last) return;
    const ms = Math.min(3000, Math.max(100, last.at - firstWrite.at));
    if (trial === 0) this.first = ms;
    else this.later = ms;
  }
}

/** The reason and error of the job's last error line, else its last lines. */
function lastLines(output: string): string {
  const lines = output.trim().split('\n');
  const error = lines.findLast((l) => l.includes('"level":"error"') || l.includes('"level":50'));
  if (error) {
    try {
      const entry = JSON.parse(error) as { reason?: string; err?: string; msg?: string };
      return `${entry.reason ?? ''} ${entry.err ?? entry.msg ?? ''}`.trim().slice(0, 400);
    } catch {
      // not JSON
    }
  }
  return lines.slice(-3).join(' | ').slice(0, 600);
}

/** Resolves true at the job's first write after entry `from`, or false once `stopped()` says the job ended. */
function firstWrite(from: number, stopped: () => boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const poll = () => {
      if (jobRequests(from).some((r) => WRITE.test(r.path))) resolve(true);
      else if (stopped()) resolve(false);
      else setTimeout(poll, 5);
    };
    poll();
  });
}

async function runTrials(stateUrl: string): Promise<Report> {
  const changes = new ModelChanges(srcUrl, TABLE, ROWS, seeded(SEED), SHAPE);
  const next = seeded(SEED ^ 0x5eed);
  const report: Report = {
    kills: { SIGKILL: 0, SIGTERM: 0 },
    killedCommitting: 0,
    finished: 0,
    bursts: 0,
    failedRuns: [],
    log: [],
    ms: 0,
  };
  const span = new DeliverySpan();
  const started = Date.now();
  for (let trial = 0; trial < TRIALS; trial++) {
    if (trial > 0) await changes.mutate(trial, SCALE);
    const none = report.kills.SIGKILL + report.kills.SIGTERM === 0;
    const kill: Kill | undefined =
      trial === TRIALS - 1 && none ? { signal: 'SIGKILL', afterMs: 0 } : chooseKill(next, span.of(trial));
    // A neighbour spends the portal's budget in two runs of three: right at the job's first write, or at a
    // random moment of its writing before the kill.
    const mode = next();
    const burstAt =
      mode < 1 / 3 ? 0 : mode < 2 / 3 ? Math.floor(next() * (kill?.afterMs ?? span.of(trial))) : undefined;
    const from = hs.requests().length;
    let ended = false;
    let writing: Promise<boolean> | undefined;
    let burst: Promise<number> | undefined;
    const result = await runJob(jobEnv(), planFor(stateUrl), kill, {
      onDelivering: () => {
        writing ??= firstWrite(from, () => ended);
        if (burstAt !== undefined)
          burst = writing.then(async (wrote) => {
            if (!wrote) return 0;
            await new Promise((resolve) => setTimeout(resolve, burstAt));
            report.bursts++;
            return neighbourBurst();
          });
      },
      killFrom: async () => {
        await (writing ??= firstWrite(from, () => ended));
      },
    });
    ended = true;
    await burst;
    const landed = kill !== undefined && result.landedInDelivery;
    if (landed) report.kills[kill.signal]++;
    else if (result.signalSent) report.killedCommitting++;
    else {
      report.finished++;
      span.learn(trial, from);
      if (result.code !== 0)
        report.failedRuns.push(`trial ${trial}: exit ${result.code}: ${lastLines(result.output)}`);
    }
    const writes = jobRequests(from).filter((r) => WRITE.test(r.path)).length;
    report.log.push(
      `t${trial}:${kill ? `${kill.signal.slice(3)}@${kill.afterMs}${landed ? '' : result.signalSent ? '(committing)' : '(late)'}` : 'finish'}${burstAt === undefined ? '' : `+429@${burstAt}`}/${writes}w`,
    );
  }
  report.ms = Date.now() - started;
  return report;
}

type TextRow = Record<string, string | null>;

/** The model as text, each column as the expected HubSpot value is derived from it. */
async function modelRows(): Promise<TextRow[]> {
  return sql<TextRow>(
    srcUrl,
    `SELECT id::text AS id, email, firstname, lastname, lifetime_value::text AS lifetime_value,
            score::text AS score, to_char(date_of_birth, 'YYYY-MM-DD') AS date_of_birth,
            to_char(last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS last_seen_at,
            is_vip::text AS is_vip, lifecyclestage, array_to_json(interests)::text AS interests, hs_language
       FROM ${TABLE} ORDER BY id`,
  );
}

/** An option as HubSpot spells it: matched exactly, else case-insensitively, after trimming. */
function option(options: string[], value: string): string {
  const text = value.trim();
  return (
    options.find((o) => o === text) ?? options.find((o) => o.toLowerCase() === text.toLowerCase()) ?? text
  );
}

/**
 * The value HubSpot stores for a model value (connectors/hubspot/README.md, "Types"; the emulator's README,
 * "Records and properties"); `''` for NULL: HubSpot has no NULL apart from empty, and a NULL is sent as `""`.
 */
function expectedValue(column: string, text: string | null): string {
  if (text === null) return '';
  switch (column) {
    case 'email':
      return text.toLowerCase();
    case 'lifecyclestage':
      return text.trim() === '' ? '' : option(LIFECYCLE, text);
    case 'hs_language':
      return text.trim() === '' ? '' : option(LANGUAGES, text);
    case 'interests':
      return (JSON.parse(text) as string[])
        .map((s) => s.trim())
        .filter((s) => s !== '')
        .map((s) => option(INTERESTS, s))
        .join(';');
    default:
      // Strings as they are; numbers, dates (YYYY-MM-DD), datetimes (ISO 8601 UTC, milliseconds), booleans.
      return text;
  }
}

/** Numbers by value: decimals digit for digit, doubles as doubles (HubSpot numbers have no -0). */
function sameValue(column: string, expected: string, got: string): boolean {
  if (expected === '' || got === '') return expected === got;
  if (column === 'lifetime_value') return canonicalNumber(expected) === canonicalNumber(got);
  if (column === 'score') return Number(expected) === Number(got);
  return expected === got;
}

const SYSTEM = new Set(['hs_object_id', 'createdate', 'lastmodifieddate', 'external_id']);

interface Comparison {
  mismatches: Mismatch[];
  /** external_id values held by more than one live record, with their record ids. */
  duplicates: string[];
  /** Live records for keys the model does not hold (or with no external_id). */
  strays: string[];
  live: number;
}

function show(value: string | undefined): string {
  if (value === undefined) return '(missing)';
  const text = JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 120)}… (${value.length} chars)` : text;
}

async function compareHubSpot(): Promise<Comparison> {
  const records = hs.records('contacts');
  const byKey = new Map<string, typeof records>();
  for (const record of records) {
    const key = record.properties['external_id'] ?? '';
    byKey.set(key, [...(byKey.get(key) ?? []), record]);
  }
  const duplicates = [...byKey]
    .filter(([, list]) => list.length > 1)
    .map(([key, list]) => `${key} (records ${list.map((r) => r.id).join(', ')})`);
  const mismatches: Mismatch[] = [];
  const model = await modelRows();
  const held = new Set<string>();
  for (const row of model) {
    const key = row['id'] as string;
    held.add(key);
    const record = byKey.get(key)?.[0];
    if (!record) {
      mismatches.push({ key, column: '(record)', expected: 'present', got: '(missing)' });
      continue;
    }
    for (const column of SHAPE.columns.slice(1)) {
      const expected = expectedValue(column, row[column] ?? null);
      const got = record.properties[column] ?? '';
      if (!sameValue(column, expected, got))
        mismatches.push({ key, column, expected: show(expected), got: show(got) });
    }
    for (const extra of Object.keys(record.properties))
      if (!SYSTEM.has(extra) && !SHAPE.columns.includes(extra))
        mismatches.push({
          key,
          column: extra,
          expected: '(not mapped)',
          got: show(record.properties[extra]),
        });
  }
  const strays = [...byKey]
    .filter(([key]) => !held.has(key))
    .map(([key, list]) => `${key || '(no external_id)'} (records ${list.map((r) => r.id).join(', ')})`);
  return { mismatches, duplicates, strays, live: records.length };
}

/** Mismatches grouped by column and kind (expected → got), with a few keys each. */
function describeMismatches(mismatches: Mismatch[]): string {
  const groups = new Map<string, Mismatch[]>();
  for (const m of mismatches) {
    const kind = `${m.column}: expected ${m.expected}, got ${m.got}`;
    groups.set(kind, [...(groups.get(kind) ?? []), m]);
  }
  const shown = [...groups]
    .slice(0, 20)
    .map(
      ([kind, ms]) =>
        `  ${ms.length}× ${kind} (external_id ${ms
          .slice(0, 3)
          .map((m) => m.key)
          .join(', ')})`,
    )
    .join('\n');
  return `hubspot: ${mismatches.length} mismatches (reproduce: SYNCLINE_FAULT_SEED=${SEED} SYNCLINE_FAULT_TRIALS=${TRIALS}):\n${shown}`;
}

describe('faults: HubSpot destination', () => {
  it(
    'after killed and stopped runs under 429s, 5xx and resets, one clean run makes the live contacts equal the model, with no duplicates',
    async () => {
      const state = tempState();
      states.push(state);
      await createModel(srcUrl, TABLE, ROWS, SHAPE);
      const report = await runTrials(state.url);
      hs.setFaults({});
      const clean = await runJob(jobEnv(), planFor(state.url));
      const comparison = await compareHubSpot();
      const stats = hs.stats();
      const requests = hs.requests();
      const job = requests.filter((r) => r.path !== NEIGHBOUR_PATH);
      const job429 = job.filter((r) => r.status === 429).length;
      // Faults that hit the job's requests (a fault drawn for a request that applied nothing is no fault).
      const faults = [
        `5xx ${job.filter((r) => r.fault === 'unavailable').length}`,
        `appliedThenReset ${job.filter((r) => r.fault === 'appliedThenReset' && r.status === -1).length}`,
        `appliedThen502 ${job.filter((r) => r.fault === 'appliedThen5xx' && r.status === 502).length}`,
        `slow ${job.filter((r) => r.fault === 'slow').length}`,
      ].join(' ');
      const violations = hs.violations();
      console.log(
        `fault report hubspot: seed ${SEED}, ${TRIALS} trials in ${(report.ms / 1000).toFixed(1)} s, ` +
          `kills during delivery SIGKILL ${report.kills.SIGKILL} SIGTERM ${report.kills.SIGTERM}, ` +
          `${report.killedCommitting} while committing, ${report.finished} runs finished, ` +
          `429s to the job ${job429} (neighbour bursts ${report.bursts}), faults injected ${faults}, ` +
          `requests ${job.length}, created ${stats.created} updated ${stats.updated} archived ${stats.archived}, ` +
          `live ${comparison.live}, duplicates ${comparison.duplicates.length}, strays ${comparison.strays.length}, ` +
          `violations ${violations.length}, failed runs ${report.failedRuns.length}, ` +
          `mismatches ${comparison.mismatches.length} [${report.log.join(' ')}]`,
      );
      for (const failed of report.failedRuns) console.log(`  ${failed}`);
      expect(clean.code, `seed ${SEED}: the clean run failed: ${lastLines(clean.output)}`).toBe(0);
      expect(comparison.duplicates, `seed ${SEED}: external_ids held by several live records`).toEqual([]);
      expect(comparison.strays, `seed ${SEED}: live records for keys the model does not hold`).toEqual([]);
      expect(comparison.mismatches.length, describeMismatches(comparison.mismatches)).toBe(0);
      expect(violations, `seed ${SEED}: request bodies that broke HubSpot's contract`).toEqual([]);
      expect(
        report.kills.SIGKILL + report.kills.SIGTERM,
        `seed ${SEED}: no kill landed during delivery`,
      ).toBeGreaterThan(0);
    },
    TIMEOUT_MS,
  );
});
