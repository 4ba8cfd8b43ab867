// Leader election on a real coordination.k8s.io/v1 Lease with client-go's timings (15 s / 10 s / 2 s).
import { KubeConfig } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { kubeRequest } from '../../operator/runtime/kubeapi.ts';
import { LeaderElector } from '../../operator/runtime/leader.ts';
import { RuntimeMetrics } from '../../operator/runtime/metrics.ts';
import { createNamespace, deleteNamespace, eventually, testLogger } from './runtime-support.ts';

const kubeconfigPath = inject('kubeconfigPath');
const kc = new KubeConfig();
kc.loadFromFile(kubeconfigPath);
const LEASE_MS = 15_000;
const RETRY_MS = 2_000;

interface LeaseBody {
  metadata: { resourceVersion: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    leaseTransitions?: number;
    renewTime?: string;
    acquireTime?: string;
  };
}

let namespace: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  namespace = await createNamespace(kc, 'runtime-leader');
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  if (namespace) await deleteNamespace(kc, namespace);
});

async function readLease(name: string): Promise<LeaseBody | undefined> {
  const res = await kubeRequest<LeaseBody>(kc, {
    method: 'GET',
    path: `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${name}`,
  });
  return res.status === 200 ? res.body : undefined;
}

interface Candidate {
  identity: string;
  process: ChildProcess;
  events: { event: string; at: number }[];
  at(event: string): number | undefined;
}

/** Starts a candidate as a separate process, so it can be killed for real. */
function startCandidate(lease: string, identity: string): Candidate {
  const script = fileURLToPath(new URL('./runtime-leader-child.ts', import.meta.url));
  const child = spawn(process.execPath, [script, kubeconfigPath, namespace, lease, identity], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const events: { event: string; at: number }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const parsed = JSON.parse(line) as { event: string; at: number };
    events.push(parsed);
  });
  return { identity, process: child, events, at: (event) => events.find((e) => e.event === event)?.at };
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

describe('LeaderElector', () => {
  it('one of two candidates leads; on stop it releases and the other takes over well within the lease time', async () => {
    const lease = 'release-test';
    const first = startCandidate(lease, 'candidate-a');
    await eventually(() => expect(first.at('leading')).toBeDefined());
    const second = startCandidate(lease, 'candidate-b');
    await eventually(() => expect(second.at('started')).toBeDefined());
    // Give the follower a few retry periods of trying against a held lease.
    await eventually(async () => expect((await readLease(lease))?.spec.holderIdentity).toBe('candidate-a'));
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS * 2));
    expect(second.at('leading')).toBeUndefined();

    first.process.kill('SIGTERM');
    await exited(first.process);
    const released = first.at('stopped');
    expect(released).toBeDefined();
    expect(first.at('exiting')).toBeDefined();

    await eventually(() => expect(second.at('leading')).toBeDefined(), LEASE_MS * 2);
    const takeover = (second.at('leading') as number) - (released as number);
    // A released lease is free at once: the follower takes it at its next retry, not after expiry.
    expect(takeover).toBeLessThan(LEASE_MS);
    const record = await readLease(lease);
    expect(record?.spec.holderIdentity).toBe('candidate-b');
    expect(record?.spec.leaseTransitions).toBe(1);
    expect(record?.spec.leaseDurationSeconds).toBe(15);
    expect(record?.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

    second.process.kill('SIGTERM');
    await exited(second.process);
    expect((await readLease(lease))?.spec.holderIdentity).toBeUndefined();
  });

  it('when the leader dies without releasing, the other takes over only after the lease expires', async () => {
    const lease = 'kill-test';
    const first = startCandidate(lease, 'candidate-c');
    await eventually(() => expect(first.at('leading')).toBeDefined());
    const second = startCandidate(lease, 'candidate-d');
    await eventually(() => expect(second.at('started')).toBeDefined());
    // Let the follower observe the held lease and at least one renewal.
    const before = (await readLease(lease))?.spec.renewTime;
    await eventually(async () => expect((await readLease(lease))?.spec.renewTime).not.toBe(before));

    const lastRenew = Date.parse((await readLease(lease))?.spec.renewTime as string);
    first.process.kill('SIGKILL');
    const killedAt = Date.now();
    await exited(first.process);
    await eventually(() => expect(second.at('leading')).toBeDefined(), LEASE_MS * 3);
    const takeoverAt = second.at('leading') as number;

    // Never before expiry: at least a lease duration after the last renewal the follower could have seen.
    const lastRenewSeen = Math.max(lastRenew, killedAt - RETRY_MS);
    expect(takeoverAt - lastRenewSeen).toBeGreaterThanOrEqual(LEASE_MS - RETRY_MS);
    // And it does take over once the lease has expired (expiry plus a couple of retry periods).
    expect(takeoverAt - killedAt).toBeLessThan(LEASE_MS + 3 * RETRY_MS * 1.2 + 5_000);
    const record = await readLease(lease);
    expect(record?.spec.holderIdentity).toBe('candidate-d');
    expect(record?.spec.leaseTransitions).toBe(1);
    expect(first.at('stopped')).toBeUndefined();
    second.process.kill('SIGTERM');
    await exited(second.process);
  });

  it('keeps the lease while the leading work drains on stop, reports leader status, then releases', async () => {
    const lease = 'drain-test';
    const metricsA = new RuntimeMetrics({ defaultMetrics: false });
    const a = new LeaderElector({
      kubeConfig: kc,
      namespace,
      name: lease,
      identity: 'in-process-a',
      log: testLogger(),
      metrics: metricsA,
      leaseDurationMs: 4000,
      renewDeadlineMs: 3000,
      retryPeriodMs: 500,
    });
    const b = new LeaderElector({
      kubeConfig: kc,
      namespace,
      name: lease,
      identity: 'in-process-b',
      log: testLogger(),
      leaseDurationMs: 4000,
      renewDeadlineMs: 3000,
      retryPeriodMs: 500,
    });
    const order: string[] = [];
    let aSignal: AbortSignal | undefined;
    const aDone = a.run({
      onStartedLeading: async (signal) => {
        aSignal = signal;
        order.push('a leading');
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
        // Work that takes longer than the lease: the lease must stay renewed meanwhile.
        await new Promise((resolve) => setTimeout(resolve, 5000));
        order.push('a work done');
      },
      onStoppedLeading: () => order.push('a stopped'),
    });
    await eventually(() => expect(a.isLeader()).toBe(true));
    expect(await metricsA.registry.metrics()).toContain('leader_election_master_status{name="drain-test"} 1');
    const bDone = b.run({
      onStartedLeading: () => {
        order.push('b leading');
      },
      onStoppedLeading: () => order.push('b stopped'),
    });
    const stopping = a.stop();
    await eventually(() => expect(aSignal?.aborted).toBe(true));
    expect(a.isLeader()).toBe(true);
    await stopping;
    await aDone;
    expect(a.isLeader()).toBe(false);
    expect(await metricsA.registry.metrics()).toContain('leader_election_master_status{name="drain-test"} 0');
    await eventually(() => expect(b.isLeader()).toBe(true));
    expect(order).toEqual(['a leading', 'a work done', 'a stopped', 'b leading']);
    await b.stop();
    await bDone;
    expect(order.at(-1)).toBe('b stopped');
  });
});
