// The fault suite: trial after trial the model changes (updates, reverts to earlier values, deletes,
// deletes followed by the same row again, inserts of hostile values) and a real `syncline job` delivers
// it while it is SIGKILLed or SIGTERMed at a random point of delivery — to PostgreSQL, and to an HTTP
// API that honours Idempotency-Key and throws rate limits, 5xx, resets and writes answered with a 500
// after their commit. Then, faults off, one clean run must leave each destination equal to the model,
// value for value, without one idempotency key used for two changes. Seeded: SYNCLINE_FAULT_SEED.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationSpec, SyncSpec } from '../../crds/index.ts';
import {
  startIdempotentApi,
  type FaultRates,
  type IdempotentApi,
} from '../emulators/idempotent-api/server.ts';
import { makePlan, pgSettings, tempState } from '../engine/helpers.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { compareHttp, comparePostgres, type Mismatch } from './compare.ts';
import { runJob, type JobResult, type Kill } from './job.ts';
import { COLUMNS, ModelChanges, createModel } from './model.ts';
import { seeded } from './random.ts';

const SEED = Number(process.env['SYNCLINE_FAULT_SEED'] ?? Date.now() % 1_000_000);
const TRIALS = Number(process.env['SYNCLINE_FAULT_TRIALS'] ?? 6);
/** Where the Syncs keep their snapshot: the diff store, or the warehouse (the source database). */
const SNAPSHOT = process.env['SYNCLINE_FAULT_SNAPSHOT'] === 'warehouse' ? 'warehouse' : 'diffStore';
/** Per test: a minute, plus room for each trial (a trial takes 1–7 s). */
const TIMEOUT_MS = 60_000 + TRIALS * 15_000;
/** Rows touched per kind of change per trial. */
const SCALE = 40;

const FAULTS: FaultRates = {
  rateLimited: 0.04,
  unavailable: 0.04,
  appliedThen500: 0.03,
  appliedThenReset: 0.03,
  slow: 0.02,
};

const DELIVERY = { batchSize: 25, concurrency: 3, maxRetries: 20 };

let server: PostgresServer;
let srcUrl: string;
let dstUrl: string;
let api: IdempotentApi;
const work = mkdtempSync(join(tmpdir(), 'syncline-faults-'));
const states: { remove(): void }[] = [];

beforeAll(async () => {
  console.log(
    `fault suite: seed ${SEED} (SYNCLINE_FAULT_SEED=${SEED}), ${TRIALS} trials per destination, snapshot in the ${SNAPSHOT}`,
  );
  server = await startPostgres();
  srcUrl = await server.createDatabase('src');
  dstUrl = await server.createDatabase('dst');
  api = await startIdempotentApi({ seed: SEED, faults: FAULTS, retryAfterSeconds: 0 });
});
afterAll(async () => {
  await api?.close();
  await server?.stop();
  for (const state of states) state.remove();
  rmSync(work, { recursive: true, force: true });
});

interface Target {
  name: string;
  table: string;
  /** Rows of the first load. */
  rows: number;
  /** First guesses of how long delivery lasts: the first load, and later runs. */
  spanMs: [number, number];
  destination: () => DestinationSpec;
  sync: Partial<SyncSpec>;
}

function planFor(target: Target, stateUrl: string) {
  const plan = makePlan({
    server,
    sourceDb: 'src',
    query: `SELECT ${COLUMNS.join(', ')} FROM ${target.table}`,
    destination: target.destination(),
    sync: {
      mode: 'upsert',
      deleteBehavior: 'delete',
      delivery: DELIVERY,
      safety: { maxDeleteShare: 1, allowLargeDeletes: true },
      snapshot: { location: SNAPSHOT, schema: 'syncline' },
      ...target.sync,
    },
    stateUrl,
    name: `faults-${target.name}`,
  });
  return { ...plan, runner: { ...plan.runner, checkpointSeconds: 0.3 } };
}

/** Let a run finish (1 in 6), or stop it with SIGKILL or SIGTERM up to `spanMs` into delivery. */
function chooseKill(next: () => number, spanMs: number): Kill | undefined {
  if (next() < 1 / 6) return undefined;
  return { signal: next() < 0.6 ? 'SIGKILL' : 'SIGTERM', afterMs: Math.floor(next() * spanMs) };
}

interface Report {
  trials: number;
  kills: { SIGKILL: number; SIGTERM: number };
  /** Signals that reached the job after delivery, while it committed. */
  killedCommitting: number;
  finished: number;
  failedRuns: string[];
  log: string[];
  ms: number;
}

/** How long delivery lasted in the runs that got to commit: kills are spread over that span. */
class DeliverySpan {
  private first: number;
  private later: number;
  constructor(firstMs: number, laterMs: number) {
    this.first = firstMs;
    this.later = laterMs;
  }
  of(trial: number): number {
    return trial === 0 ? this.first : this.later;
  }
  learn(trial: number, result: JobResult): void {
    if (result.deliveryMs === undefined || result.landedInDelivery) return;
    if (trial === 0) this.first = result.deliveryMs;
    else this.later = Math.min(3000, Math.max(100, result.deliveryMs));
  }
}

/** The trials: change the model, run the job, stop it somewhere in delivery. */
async function runTrials(target: Target, stateUrl: string, seed: number): Promise<Report> {
  const changes = new ModelChanges(srcUrl, target.table, target.rows, seeded(seed));
  const next = seeded(seed ^ 0x5eed);
  const report: Report = {
    trials: TRIALS,
    kills: { SIGKILL: 0, SIGTERM: 0 },
    killedCommitting: 0,
    finished: 0,
    failedRuns: [],
    log: [],
    ms: 0,
  };
  const env = { work, pgPassword: server.password };
  const span = new DeliverySpan(target.spanMs[0], target.spanMs[1]);
  const started = Date.now();
  // The first load is delivered under faults too, and may be stopped like any other run.
  for (let trial = 0; trial < TRIALS; trial++) {
    if (trial > 0) await changes.mutate(trial, SCALE);
    // The last trial makes sure at least one kill lands, should every earlier one have come too late.
    const none = report.kills.SIGKILL + report.kills.SIGTERM === 0;
    const kill: Kill | undefined =
      trial === TRIALS - 1 && none ? { signal: 'SIGKILL', afterMs: 0 } : chooseKill(next, span.of(trial));
    const result: JobResult = await runJob(env, planFor(target, stateUrl), kill);
    span.learn(trial, result);
    const landed = kill !== undefined && result.landedInDelivery;
    if (landed) report.kills[kill.signal]++;
    else if (result.signalSent) report.killedCommitting++;
    else {
      report.finished++;
      if (result.code !== 0)
        report.failedRuns.push(`trial ${trial}: exit ${result.code}: ${lastLines(result.output)}`);
    }
    report.log.push(
      `t${trial}:${kill ? `${kill.signal.slice(3)}@${kill.afterMs}${landed ? '' : result.signalSent ? '(committing)' : '(late)'}` : 'finish'}/${result.deliveryMs ?? '-'}ms`,
    );
  }
  report.ms = Date.now() - started;
  return report;
}

function lastLines(output: string): string {
  return output.trim().split('\n').slice(-3).join(' | ').slice(0, 600);
}

/** Mismatches grouped by column and kind (expected → got), with a few ids each. */
function describeMismatches(target: string, mismatches: Mismatch[]): string {
  const groups = new Map<string, Mismatch[]>();
  for (const m of mismatches) {
    const kind = `${m.column}: expected ${m.expected}, got ${m.got}`;
    groups.set(kind, [...(groups.get(kind) ?? []), m]);
  }
  const shown = [...groups]
    .slice(0, 20)
    .map(
      ([kind, ms]) =>
        `  ${ms.length}× ${kind} (ids ${ms
          .slice(0, 3)
          .map((m) => m.key)
          .join(', ')})`,
    )
    .join('\n');
  return `${target}: ${mismatches.length} mismatches (reproduce: SYNCLINE_FAULT_SEED=${SEED} SYNCLINE_FAULT_TRIALS=${TRIALS} SYNCLINE_FAULT_SNAPSHOT=${SNAPSHOT}):\n${shown}`;
}

function line(target: string, report: Report, extra: string, mismatches: number): string {
  return (
    `fault report ${target}: seed ${SEED}, ${report.trials} trials in ${(report.ms / 1000).toFixed(1)} s, ` +
    `kills during delivery SIGKILL ${report.kills.SIGKILL} SIGTERM ${report.kills.SIGTERM}, ` +
    `${report.killedCommitting} while committing, ${report.finished} runs finished, ${extra}, mismatches ${mismatches} [${report.log.join(' ')}]`
  );
}

async function cleanRun(target: Target, stateUrl: string): Promise<void> {
  const clean = await runJob({ work, pgPassword: server.password }, planFor(target, stateUrl));
  expect(clean.code, `seed ${SEED}: the clean run failed: ${lastLines(clean.output)}`).toBe(0);
}

describe('faults: PostgreSQL destination', () => {
  const target: Target = {
    name: 'pg',
    table: 'model_pg',
    rows: 2000,
    spanMs: [1500, 300],
    destination: () => ({ type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } }),
    sync: { target: { table: 'copy_pg' }, delivery: { ...DELIVERY, batchSize: 10, concurrency: 1 } },
  };

  it(
    'after killed and stopped runs, one clean run makes the table equal the model, value for value',
    async () => {
      const state = tempState();
      states.push(state);
      await createModel(srcUrl, target.table, target.rows);
      const report = await runTrials(target, state.url, SEED);
      await cleanRun(target, state.url);
      const mismatches = await comparePostgres(srcUrl, target.table, dstUrl, 'copy_pg');
      console.log(line('postgres', report, `failed runs ${report.failedRuns.length}`, mismatches.length));
      for (const failed of report.failedRuns) console.log(`  ${failed}`);
      expect(mismatches.length, describeMismatches('postgres', mismatches)).toBe(0);
      expect(
        report.kills.SIGKILL + report.kills.SIGTERM,
        `seed ${SEED}: no kill landed during delivery`,
      ).toBeGreaterThan(0);
    },
    TIMEOUT_MS,
  );
});

describe('faults: HTTP destination with idempotency keys', () => {
  const target: Target = {
    name: 'http',
    table: 'model_http',
    rows: 1200,
    spanMs: [4000, 1000],
    destination: (): DestinationSpec => ({
      type: 'http',
      http: {
        url: `${api.url}/records/{{ row.id }}`,
        method: 'PUT',
        body: 'row',
        batchSize: 100,
        idempotencyKeyHeader: 'Idempotency-Key',
        timeoutSeconds: 10,
        operations: { delete: { method: 'DELETE' } },
      },
    }),
    sync: {},
  };

  it(
    'after killed and stopped runs under API faults, one clean run makes the records equal the model',
    async () => {
      const state = tempState();
      states.push(state);
      await createModel(srcUrl, target.table, target.rows);
      const report = await runTrials(target, state.url, SEED + 1);
      api.setFaults({});
      await cleanRun(target, state.url);
      const mismatches = await compareHttp(srcUrl, target.table, api.records());
      const stats = api.stats();
      const faults = Object.entries(stats.faults)
        .map(([kind, n]) => `${kind} ${n}`)
        .join(' ');
      console.log(
        line(
          'http',
          report,
          `faults injected ${faults}, applied ${stats.applied}, replays ${stats.replays}, violations ${stats.violations}, conflicts ${stats.conflicts}, failed runs ${report.failedRuns.length}`,
          mismatches.length,
        ),
      );
      for (const failed of report.failedRuns) console.log(`  ${failed}`);
      expect(mismatches.length, describeMismatches('http', mismatches)).toBe(0);
      expect(stats.violationDetails, `seed ${SEED}: idempotency keys used for two changes`).toEqual([]);
      expect(stats.violations).toBe(0);
      expect(
        report.kills.SIGKILL + report.kills.SIGTERM,
        `seed ${SEED}: no kill landed during delivery`,
      ).toBeGreaterThan(0);
    },
    TIMEOUT_MS,
  );
});
