// Sequences end to end: the operator as a process against the real API server and controller-manager, a
// Postgres model synced to an HTTP sink by two Syncs in a Sequence, requested with the annotation; the test
// agent runs the Jobs' pods. The second Sync's run starts only after the first one's finished; a step that
// fails (a Model with bad SQL) with onFailure stop ends the Sequence run Failed, naming the step, and the
// step after it never runs.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Agent } from '../agent/agent.ts';
import { startOperator, type OperatorProcess } from './operator-process.ts';
import { applyScenario, startSink, startWarehouse, type Sink, type Warehouse } from './scenario.ts';
import { condition, eventually, Kube, loadKubeConfig } from './support.ts';

let kube: Kube;
let agent: Agent;
let sink: Sink;
let warehouse: Warehouse;
let ns: string;
let operator: OperatorProcess;

interface SyncRun {
  id: string;
  trigger?: string;
  result?: string;
  startedAt?: string;
  finishedAt?: string;
}
interface StepRecord {
  sync: string;
  runId?: string;
  phase: string;
  reason?: string;
  startedAt?: string;
  finishedAt?: string;
}
interface SequenceRun {
  id: string;
  trigger?: string;
  result?: string;
  reason?: string;
  message?: string;
  startedAt: string;
  finishedAt?: string;
  steps: StepRecord[];
}

async function syncHistory(name: string): Promise<SyncRun[]> {
  return ((await kube.get('syncs', ns, name))?.status?.['history'] as SyncRun[] | undefined) ?? [];
}

async function createSequence(name: string, steps: { sync: string }[]): Promise<void> {
  await kube.create('sequences', ns, {
    kind: 'Sequence',
    metadata: { name, annotations: { 'syncline.io/run-requested-at': new Date().toISOString() } },
    spec: { steps },
  });
}

/** The Sequence's last run once it has finished, with its history. */
async function finishedRun(name: string): Promise<{ lastRun: SequenceRun; history: SequenceRun[] }> {
  return eventually(
    `a finished run of Sequence ${name}`,
    async () => {
      const status = (await kube.get('sequences', ns, name))?.status;
      const lastRun = status?.['lastRun'] as SequenceRun | undefined;
      return lastRun?.result ? { lastRun, history: status?.['history'] as SequenceRun[] } : undefined;
    },
    {
      timeoutMs: 240_000,
      describe: async () => JSON.stringify((await kube.get('sequences', ns, name))?.status ?? null, null, 1),
    },
  );
}

beforeAll(async () => {
  const kubeconfigPath = inject('kubeconfigPath');
  kube = new Kube(loadKubeConfig(kubeconfigPath));
  [warehouse, sink] = await Promise.all([startWarehouse(4), startSink()]);
  ns = await kube.namespace('sequence');
  agent = new Agent({ kubeConfig: kube.kc, namespace: ns, retryMs: 500 });
  await agent.start();
  // Syncs without a schedule: only the Sequence runs them.
  await applyScenario(kube, ns, warehouse, sink, { name: 'accounts' });
  await kube.create('syncs', ns, {
    kind: 'Sync',
    metadata: { name: 'contacts' },
    spec: { modelRef: { name: 'customers' }, destinationRef: { name: 'crm' }, mode: 'upsert' },
  });
  await kube.create('models', ns, {
    kind: 'Model',
    metadata: { name: 'broken' },
    spec: { sourceRef: { name: 'warehouse' }, query: 'SELECT id, nope FROM customers', primaryKey: 'id' },
  });
  await kube.create('syncs', ns, {
    kind: 'Sync',
    metadata: { name: 'broken' },
    spec: { modelRef: { name: 'broken' }, destinationRef: { name: 'crm' }, mode: 'upsert' },
  });
  operator = startOperator([
    ...['--kubeconfig', kubeconfigPath, '--namespaces', ns, '--metrics-port', '0', '--no-leader-elect'],
    ...['--diff-store-url', `file://${mkdtempSync(join(tmpdir(), 'syncline-e2e-sequence-'))}`],
    ...['--pod-start-timeout-seconds', '20'],
  ]);
  await operator.port();
}, 180_000);

afterAll(async () => {
  await operator?.kill();
  await agent?.stop();
  await sink?.close();
  await warehouse?.postgres.stop();
});

describe('a Sequence run by the operator', () => {
  it('runs its Syncs one after the other, the second after the first finished, and keeps the run in history', async () => {
    await createSequence('load', [{ sync: 'accounts' }, { sync: 'contacts' }]);
    const { lastRun, history } = await finishedRun('load');
    expect(lastRun).toMatchObject({ trigger: 'manual', result: 'Succeeded' });
    expect(lastRun.steps.map((s) => `${s.sync}:${s.phase}`)).toEqual([
      'accounts:Succeeded',
      'contacts:Succeeded',
    ]);
    expect(history.map((r) => r.id)).toEqual([lastRun.id]);

    // Each step's run is the Sync's own run, triggered by the sequence; the second started after the first ended.
    const [accounts] = await syncHistory('accounts');
    const [contacts] = await syncHistory('contacts');
    expect(accounts).toMatchObject({ id: lastRun.steps[0]?.runId, trigger: 'sequence', result: 'Succeeded' });
    expect(contacts).toMatchObject({ id: lastRun.steps[1]?.runId, trigger: 'sequence', result: 'Succeeded' });
    expect(Date.parse(contacts!.startedAt!)).toBeGreaterThan(Date.parse(accounts!.finishedAt!));
    const jobs = await kube.jobs(ns, 'syncline.io/sync=contacts');
    expect(jobs.map((j) => j.metadata.name)).toEqual([contacts!.id]);
    expect(Date.parse(jobs[0]!.metadata.creationTimestamp!)).toBeGreaterThanOrEqual(
      Math.floor(Date.parse(accounts!.finishedAt!) / 1000) * 1000,
    );
    expect(new Set(sink.received.map((r) => r['email'])).size).toBe(4);

    const sequence = await kube.get('sequences', ns, 'load');
    expect(condition(sequence, 'Ready')).toMatchObject({ status: 'True', reason: 'Succeeded' });
    expect(condition(sequence, 'Running')).toMatchObject({ status: 'False', reason: 'Idle' });
    expect(sequence?.status).toMatchObject({ phase: 'Succeeded', order: 'accounts, contacts' });
    const events = (await kube.events(ns)).filter((e) => e.involvedObject.name === 'load');
    expect(events.map((e) => e.reason).sort()).toEqual(['RunStarted', 'RunSucceeded']);
    expect(events.every((e) => e.involvedObject.kind === 'Sequence')).toBe(true);
  }, 300_000);

  it('ends Failed, naming the step, when a step with onFailure stop fails, and does not run the next', async () => {
    const contactsBefore = (await syncHistory('contacts')).length;
    await createSequence('load-broken', [{ sync: 'accounts' }, { sync: 'broken' }, { sync: 'contacts' }]);
    const { lastRun } = await finishedRun('load-broken');
    expect(lastRun.result).toBe('Failed');
    expect(lastRun.steps.map((s) => `${s.sync}:${s.phase}`)).toEqual([
      'accounts:Succeeded',
      'broken:Failed',
      'contacts:Skipped',
    ]);
    const [broken] = await syncHistory('broken');
    expect(broken).toMatchObject({ id: lastRun.steps[1]?.runId, result: 'Failed', trigger: 'sequence' });
    expect(lastRun.reason).toBe(lastRun.steps[1]?.reason);
    expect(lastRun.reason).toBeTruthy();
    expect(lastRun.message).toContain('step 2 of 3 (broken) failed: ');
    expect(lastRun.message).toContain('nope');
    expect(lastRun.message).toContain('the 1 step(s) after it did not run');
    // contacts was never asked: no new run, no request on it.
    expect(await syncHistory('contacts')).toHaveLength(contactsBefore);
    const contacts = await kube.get('syncs', ns, 'contacts');
    expect(contacts?.metadata.annotations?.['syncline.io/run-requests']).not.toContain('load-broken');

    const sequence = await kube.get('sequences', ns, 'load-broken');
    expect(condition(sequence, 'Ready')).toMatchObject({ status: 'False', reason: lastRun.reason });
    expect(condition(sequence, 'Ready')?.message).toContain('step 2 of 3 (broken) failed');
    const event = await eventually('the failed run Event', async () =>
      (await kube.events(ns)).find((e) => e.involvedObject.name === 'load-broken' && e.type === 'Warning'),
    );
    expect(event.reason).toBe(lastRun.reason);
  }, 300_000);
});
