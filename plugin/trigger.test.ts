import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunRecord, Sync } from '../crds/index.ts';
import type { PatchOutcome } from '../operator/api/kube.ts';
import { pendingRequest, readLedger } from '../operator/api/ledger.ts';
import { RESYNC_REQUESTED_ANNOTATION, RUN_REQUESTED_ANNOTATION } from '../operator/schedule.ts';
import { main } from './main.ts';
import { EXIT_CODES, parseDuration, trigger, type TriggerCluster, type TriggerOptions } from './trigger.ts';

const COUNTS = { queried: 3, added: 1, changed: 1, removed: 0, delivered: 2, failed: 0, skipped: 0 };

const contacts = (): Sync =>
  ({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Sync',
    metadata: { name: 'contacts', namespace: 'team-a', resourceVersion: '1', annotations: {} },
    spec: { modelRef: { name: 'customers' }, destinationRef: { name: 'crm' }, mode: 'upsert' },
    status: {},
  }) as unknown as Sync;

/** What the operator does between two reads of the Sync. */
type OperatorStep = (sync: Sync) => void;

/** The operator starts the pending request (a full resync also handles a pending run request). */
const start: OperatorStep = (sync) => {
  const pending = pendingRequest(sync);
  if (!pending) throw new Error('no pending request to start');
  const status = (sync.status ??= {} as NonNullable<Sync['status']>);
  const annotations = sync.metadata.annotations ?? {};
  if (pending.resync) {
    status.handledResyncRequest = pending.value;
    status.handledRunRequest = annotations[RUN_REQUESTED_ANNOTATION];
  } else status.handledRunRequest = pending.value;
  status.activeRun = {
    id: pending.id,
    trigger: pending.resync ? 'resync' : 'manual',
    fullResync: pending.resync,
    startedAt: new Date(Date.now() + 1000).toISOString(),
  };
};

const finish =
  (result: RunRecord['result'], extra: Partial<RunRecord> = {}): OperatorStep =>
  (sync) => {
    const status = sync.status as NonNullable<Sync['status']>;
    const record = {
      ...status.activeRun,
      result,
      finishedAt: new Date(Date.parse(status.activeRun?.startedAt ?? '') + 12_500).toISOString(),
      counts: COUNTS,
      ...extra,
    } as RunRecord;
    delete status.activeRun;
    status.lastRun = record;
    status.history = [record, ...(status.history ?? [])];
  };

/** Someone else requests a full resync while the plugin's run request is pending. */
const resyncRequested: OperatorStep = (sync) => {
  (sync.metadata.annotations ??= {})[RESYNC_REQUESTED_ANNOTATION] = 'someone-else';
};

/** A cluster of one Sync, with an operator that takes one step per read after the request. */
class FakeCluster implements TriggerCluster {
  readonly namespace = 'team-a';
  readonly caller = 'alice@example';
  sync = contacts();
  reads = 0;
  patches: Record<string, string | null>[] = [];
  conflicts = 0;
  private readonly steps: OperatorStep[];

  constructor(steps: OperatorStep[] = [], options: { conflicts?: number } = {}) {
    this.steps = [...steps];
    this.conflicts = options.conflicts ?? 0;
  }

  async find<T>(_plural: string, name: string): Promise<T | undefined> {
    if (name !== 'contacts') return undefined;
    this.reads++;
    if (this.patches.length > 0) this.steps.shift()?.(this.sync);
    return structuredClone(this.sync) as T;
  }

  async get<T>(plural: string, name: string): Promise<T> {
    if (plural === 'syncs') return (await this.find<T>(plural, name)) as T;
    return { metadata: { name }, spec: { sourceRef: { name: 'warehouse' } } } as T;
  }

  async patchSyncAnnotations(
    _namespace: string,
    _name: string,
    annotations: Record<string, string | null>,
    resourceVersion: string,
  ): Promise<PatchOutcome> {
    if (this.conflicts > 0 || resourceVersion !== this.sync.metadata.resourceVersion) {
      this.conflicts--;
      this.sync.metadata.resourceVersion = String(Number(this.sync.metadata.resourceVersion) + 1);
      return 'conflict';
    }
    this.patches.push(annotations);
    const merged = { ...this.sync.metadata.annotations, ...annotations };
    this.sync.metadata.annotations = Object.fromEntries(
      Object.entries(merged).filter((e): e is [string, string] => e[1] !== null),
    );
    this.sync.metadata.resourceVersion = String(Number(this.sync.metadata.resourceVersion) + 1);
    return 'patched';
  }
}

/** A clock that moves only when the command sleeps. */
function fakeTime(): Pick<TriggerOptions, 'now' | 'sleep'> & { sleeps: number[] } {
  let now = Date.parse('2026-01-01T12:00:00Z');
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  };
}

async function run(
  cluster: FakeCluster,
  options: Partial<TriggerOptions> = {},
  format: 'text' | 'json' = 'text',
): Promise<{ code: number; out: string; sleeps: number[] }> {
  const lines: string[] = [];
  const time = fakeTime();
  const code = await trigger(
    cluster,
    'contacts',
    { resync: false, yes: false, wait: false, timeoutMs: 30 * 60_000, ...time, ...options },
    format,
    { out: (t) => lines.push(t) },
  );
  return { code, out: lines.join('\n'), sleeps: time.sleeps };
}

describe('kubectl syncline trigger', () => {
  it('requests the run through the run ledger and prints its ID', async () => {
    const cluster = new FakeCluster();
    const { code, out } = await run(cluster);
    expect(code).toBe(0);
    expect(cluster.patches).toHaveLength(1);
    const pending = pendingRequest(cluster.sync);
    expect(pending?.resync).toBe(false);
    expect(pending?.value).toMatch(/^manual-[0-9a-f]{24}$/);
    expect(pending?.id).toMatch(/^contacts-m-[0-9a-f]{10}$/);
    expect(out).toBe(
      `sync.syncline.io/contacts triggered: run ${pending?.id} requested ` +
        '(kubectl syncline runs contacts -n team-a follows it, or trigger with --wait)',
    );
    expect(readLedger(cluster.sync)).toEqual([
      expect.objectContaining({ id: pending?.id, trigger: 'manual', by: 'alice@example' }),
    ]);
  });

  it('prints the run as JSON, and retries the write when the Sync changed meanwhile', async () => {
    const cluster = new FakeCluster([], { conflicts: 2 });
    const { code, out } = await run(cluster, {}, 'json');
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({
      namespace: 'team-a',
      sync: 'contacts',
      created: true,
      run: { id: pendingRequest(cluster.sync)?.id, phase: 'Pending', trigger: 'manual' },
    });
    expect(cluster.reads).toBe(3);
  });

  it('joins a request that is still pending instead of making a second one', async () => {
    const cluster = new FakeCluster();
    await run(cluster);
    const first = pendingRequest(cluster.sync)?.id;
    const { out } = await run(cluster);
    expect(out).toContain(`joined the pending run ${first}`);
    expect(pendingRequest(cluster.sync)?.id).toBe(first);
  });

  it('--wait follows the run every 2 s and exits 0 when it succeeded', async () => {
    const cluster = new FakeCluster([() => undefined, start, () => undefined, finish('Succeeded')]);
    const { code, out, sleeps } = await run(cluster, { wait: true });
    expect(code).toBe(EXIT_CODES.Succeeded);
    const id = cluster.sync.status?.lastRun?.id as string;
    expect(out.split('\n')).toEqual([
      `sync.syncline.io/contacts triggered: run ${id} requested (waiting for it to finish)`,
      `run ${id}: Pending`,
      expect.stringMatching(new RegExp(`^run ${id}: Running since 2`)),
      `run ${id} Succeeded in 12.5s: queried 3, added 1, changed 1, removed 0, delivered 2, failed 0`,
    ]);
    expect(sleeps).toEqual([2000, 2000, 2000]);
  });

  it('--wait exits 3 with the reason and message when the run failed', async () => {
    const message = 'cannot connect to warehouse:5432: connection refused';
    const cluster = new FakeCluster([start, finish('Failed', { reason: 'SourceUnreachable', message })]);
    const { code, out } = await run(cluster, { wait: true });
    expect(code).toBe(EXIT_CODES.Failed);
    expect(out).toContain(`Failed (SourceUnreachable) in 12.5s: ${message}`);
  });

  it('--wait exits 4, not 3, when rows were rejected, and says how to see them', async () => {
    const cluster = new FakeCluster([
      start,
      finish('PartiallySucceeded', { reason: 'RowsRejected', message: '1 of 3 rows rejected' }),
    ]);
    const { code, out } = await run(cluster, { wait: true }, 'json');
    expect(code).toBe(EXIT_CODES.PartiallySucceeded);
    expect(EXIT_CODES.PartiallySucceeded).not.toBe(EXIT_CODES.Failed);
    expect(JSON.parse(out)).toMatchObject({
      run: { phase: 'PartiallySucceeded', reason: 'RowsRejected', message: '1 of 3 rows rejected' },
      timedOut: false,
      exitCode: 4,
    });
  });

  it('--wait follows the full resync that covered the request, and fails with it', async () => {
    const cluster = new FakeCluster([
      resyncRequested,
      start,
      finish('Failed', { reason: 'SafetyRailTripped', message: 'would remove 90% of the rows' }),
    ]);
    const { code, out } = await run(cluster, { wait: true });
    expect(code).toBe(EXIT_CODES.Failed);
    const resyncRun = cluster.sync.status?.lastRun?.id as string;
    expect(resyncRun).toMatch(/^contacts-r-/);
    expect(out).toMatch(
      new RegExp(
        `run contacts-m-\\w+ was covered by run ${resyncRun} \\(a full resync requested meanwhile\\), which Failed \\(SafetyRailTripped\\) in 12\\.5s: would remove 90% of the rows$`,
      ),
    );
  });

  it('--wait gives up after --timeout with exit 5, the run going on', async () => {
    const cluster = new FakeCluster([]);
    (cluster.sync.spec as { paused?: boolean }).paused = true;
    const { code, out, sleeps } = await run(cluster, { wait: true, timeoutMs: 5000 });
    expect(code).toBe(EXIT_CODES.TimedOut);
    expect(sleeps).toEqual([2000, 2000, 1000]);
    expect(out).toMatch(/: Pending \(the Sync is paused: the run starts when it is unpaused\)\n/);
    expect(out.split('\n').at(-1)).toMatch(
      /^timed out after 5s waiting for run contacts-m-\w+ \(still Pending\); it goes on: kubectl syncline runs contacts -n team-a follows it$/,
    );
  });

  it('--wait goes on through an API server that is unreachable a moment', async () => {
    const cluster = new FakeCluster([start, finish('Succeeded')]);
    const find = cluster.find.bind(cluster);
    let calls = 0;
    cluster.find = async <T>(plural: string, name: string) => {
      if (++calls === 2) {
        const { SynclineError } = await import('../core/errors.ts');
        throw new SynclineError('KubeApiUnreachable', 'connection reset', { retryable: true });
      }
      return find<T>(plural, name);
    };
    const { code } = await run(cluster, { wait: true });
    expect(code).toBe(0);
  });

  it('--resync requests a full resync, after confirmation', async () => {
    const refused = new FakeCluster();
    await expect(run(refused, { resync: true })).rejects.toThrow(/Pass --yes to confirm/);
    expect(refused.patches).toEqual([]);

    const cluster = new FakeCluster([start, finish('Succeeded', { fullResync: true })]);
    const { code, out } = await run(cluster, { resync: true, yes: true, wait: true });
    expect(code).toBe(0);
    expect(Object.keys(cluster.patches[0] ?? {})).toContain(RESYNC_REQUESTED_ANNOTATION);
    expect(Object.keys(cluster.patches[0] ?? {})).not.toContain(RUN_REQUESTED_ANNOTATION);
    expect(out).toMatch(
      /^sync.syncline.io\/contacts triggered: full resync requested: run contacts-r-\w+ \(/,
    );
    expect(cluster.sync.status?.lastRun?.fullResync).toBe(true);
  });

  it('reads --timeout as kubectl does', () => {
    expect(parseDuration('30m')).toBe(1_800_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('30')).toBeUndefined();
    expect(parseDuration('0s')).toBeUndefined();
    expect(parseDuration('m')).toBeUndefined();
  });
});

describe('kubectl syncline trigger, as a command against an API server', () => {
  let server: Server | undefined;
  let dir: string | undefined;
  afterEach(() => {
    server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** An API server with one Sync: a conflict on the first patch; the run has finished by the next read. */
  async function apiServer(result: RunRecord['result']): Promise<{ kubeconfig: string; patches: unknown[] }> {
    const sync = contacts();
    const patches: unknown[] = [];
    let conflicted = false;
    server = createServer((req, res) => {
      void body(req).then((text) => {
        const send = (status: number, value: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(value));
        };
        if (req.url !== '/apis/syncline.io/v1alpha1/namespaces/team-a/syncs/contacts')
          return send(404, { kind: 'Status', reason: 'NotFound', message: 'not found' });
        if (req.method === 'GET') {
          if (pendingRequest(sync)) {
            start(sync);
            finish(result, { reason: 'RowsRejected', message: '1 of 3 rows rejected' })(sync);
          }
          return send(200, sync);
        }
        const patch = JSON.parse(text) as { metadata: { resourceVersion: string; annotations: object } };
        patches.push(req.headers['content-type'], patch);
        if (!conflicted || patch.metadata.resourceVersion !== sync.metadata.resourceVersion) {
          conflicted = true;
          sync.metadata.resourceVersion = String(Number(sync.metadata.resourceVersion) + 1);
          return send(409, { kind: 'Status', reason: 'Conflict', message: 'the object has been modified' });
        }
        Object.assign((sync.metadata.annotations ??= {}), patch.metadata.annotations);
        return send(200, sync);
      });
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    dir = mkdtempSync(join(tmpdir(), 'syncline-plugin-trigger-'));
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'fake', cluster: { server: `http://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } },
        ],
        users: [{ name: 'bob', user: { token: 'secret-token' } }],
        contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'bob', namespace: 'team-a' } }],
        'current-context': 'fake',
      }),
    );
    return { kubeconfig, patches };
  }

  it('exits with the code of how the run ended', async () => {
    const { kubeconfig, patches } = await apiServer('PartiallySucceeded');
    const lines: string[] = [];
    const code = await main(
      ['node', 'kubectl-syncline', 'trigger', 'contacts', '--wait', '--kubeconfig', kubeconfig],
      {
        out: (t) => lines.push(t),
      },
    );
    expect(lines.join('\n')).toContain('PartiallySucceeded (RowsRejected)');
    expect(code).toBe(4);
    expect(patches[0]).toBe('application/merge-patch+json');
    const written = patches[3] as { metadata: { annotations: Record<string, string> } };
    expect(JSON.parse(written.metadata.annotations['syncline.io/run-requests'] ?? '[]')).toEqual([
      expect.objectContaining({ by: 'bob', trigger: 'manual' }),
    ]);
  });

  it('resync --yes requests a full resync and exits 0 without --wait', async () => {
    const { kubeconfig, patches } = await apiServer('Succeeded');
    const lines: string[] = [];
    const code = await main(
      ['node', 'kubectl-syncline', 'resync', 'contacts', '--yes', '--kubeconfig', kubeconfig],
      {
        out: (t) => lines.push(t),
      },
    );
    expect(code).toBe(0);
    expect(lines.join('\n')).toMatch(
      /^sync.syncline.io\/contacts triggered: full resync requested: run contacts-r-/,
    );
    const written = patches[3] as { metadata: { annotations: Record<string, string> } };
    expect(written.metadata.annotations[RESYNC_REQUESTED_ANNOTATION]).toMatch(/^manual-/);
  });
});

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}
