// Where a run keeps its snapshot: a Sync asking for a warehouse snapshot whose Source cannot keep one fails
// at open, naming the Source and the setting, and sends nothing; without the setting nothing changes.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.ts';
import { runPlan } from '../../core/plan.ts';
import { secretResolver } from '../../core/secrets.ts';
import type { SyncSpec } from '../../crds/index.ts';
import { executeRun } from '../run.ts';

const dir = mkdtempSync(join(tmpdir(), 'syncline-snapshots-'));
const data = join(dir, 'data');
const out = join(dir, 'out');
mkdirSync(data);
writeFileSync(join(data, 'people.csv'), 'id,name\n1,Ada\n2,Grace\n');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let runs = 0;

function run(snapshot: SyncSpec['snapshot']) {
  runs += 1;
  const plan = runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId: `snapshots-${runs}`,
    namespace: 'test',
    sync: {
      name: `sync-${runs}`,
      spec: {
        modelRef: { name: 'model' },
        destinationRef: { name: 'dest' },
        mode: 'upsert',
        ...(snapshot ? { snapshot } : {}),
      },
    },
    model: { name: 'model', spec: { sourceRef: { name: 'src' }, table: 'people.csv', primaryKey: 'id' } },
    source: { name: 'src', spec: { type: 'files', files: { url: data } } },
    destination: { name: 'dest', spec: { type: 'files', files: { url: out, format: 'jsonl' } } },
    diffStore: { url: pathToFileURL(join(dir, 'state')).href },
    runner: { tmpDir: join(dir, 'tmp') },
  });
  return executeRun(plan, {
    secrets: secretResolver({}, {}),
    log: silentLogger(),
    signal: new AbortController().signal,
  });
}

describe('spec.snapshot', () => {
  it('fails at open, sending nothing, when the Source cannot keep a warehouse snapshot', async () => {
    const summary = await run({ location: 'warehouse', schema: 'syncline' });
    expect(summary.result).toBe('Failed');
    expect(summary.reason).toBe('WarehouseSnapshotUnsupported');
    expect(summary.stage).toBe('open');
    expect(summary.message).toMatch(/Source src is of type files.*spec\.snapshot\.location: diffStore/);
    expect(readdirSync(dir)).not.toContain('out');
  });

  it('keeps the snapshot in the diff store by default and with location diffStore', async () => {
    for (const snapshot of [undefined, { location: 'diffStore' as const, schema: 'syncline' }]) {
      const summary = await run(snapshot);
      expect(summary.result, summary.message).toBe('Succeeded');
      expect(summary.counts).toMatchObject({ added: 2, delivered: 2 });
      expect(summary.snapshot).toMatch(/^snapshots\//);
    }
  });
});
