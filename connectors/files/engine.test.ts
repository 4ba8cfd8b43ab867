// The acceptance run's case, end to end through the engine: a .csv.gz replaced by one cut off (an upload
// in progress) must fail the run and delete nothing, not read as a model that lost 40% of its rows.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.ts';
import { runPlan } from '../../core/plan.ts';
import { executeRun } from '../../runner/run.ts';
import { secretResolver } from '../../core/secrets.ts';

const dir = mkdtempSync(join(tmpdir(), 'syncline-files-engine-'));
const data = join(dir, 'data');
const out = join(dir, 'out');
mkdirSync(data);
let runs = 0;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function plan() {
  runs += 1;
  return runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId: `files-run-${runs}`,
    namespace: 'test',
    fullResync: false,
    dryRun: false,
    sync: {
      name: 'files-sync',
      spec: {
        modelRef: { name: 'model' },
        destinationRef: { name: 'dest' },
        mode: 'upsert',
        deleteBehavior: 'delete',
        mappings: [
          { to: 'id', from: 'id' },
          { to: 'name', from: 'name' },
        ],
      },
    },
    model: {
      name: 'model',
      spec: { sourceRef: { name: 'src' }, table: 'customers.csv.gz', primaryKey: 'id' },
    },
    source: { name: 'src', spec: { type: 'files', files: { url: data } } },
    destination: { name: 'dest', spec: { type: 'files', files: { url: out, format: 'jsonl' } } },
    diffStore: { url: pathToFileURL(join(dir, 'state')).href },
    runner: { tmpDir: join(dir, 'tmp') },
  });
}

function run() {
  return executeRun(plan(), {
    secrets: secretResolver({}, {}),
    log: silentLogger(),
    signal: new AbortController().signal,
    backoff: { baseMs: 5, capMs: 50 },
  });
}

const csv = 'id,name\n' + Array.from({ length: 20_000 }, (_, i) => `${i + 1},customer ${i + 1}\n`).join('');
const whole = gzipSync(csv);

describe('files source in a run', () => {
  it('fails a run whose .csv.gz is cut off, delivering nothing, and goes on once the file is whole', async () => {
    writeFileSync(join(data, 'customers.csv.gz'), whole);
    const first = await run();
    expect(first.result).toBe('Succeeded');
    expect(first.counts.delivered).toBe(20_000);
    const filesAfterFirst = readdirSync(out, { recursive: true }).length;

    // 60% of the bytes: ~40% of the rows would read as removed, under the 50% safety rail.
    writeFileSync(join(data, 'customers.csv.gz'), whole.subarray(0, Math.floor(whole.length * 0.6)));
    const cut = await run();
    expect(cut.result).toBe('Failed');
    expect(cut.reason).toBe('SourceFileUnreadable');
    expect(cut.message).toContain(`${data}/customers.csv.gz is cut off or corrupt`);
    expect(cut.counts).toMatchObject({ removed: 0, delivered: 0 });
    expect(readdirSync(out, { recursive: true })).toHaveLength(filesAfterFirst);

    writeFileSync(join(data, 'customers.csv.gz'), whole);
    const again = await run();
    expect(again.result).toBe('Succeeded');
    expect(again.counts).toMatchObject({ added: 0, changed: 0, removed: 0, delivered: 0 });
  });
});
