import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openBlobStore, type BlobStore } from '../storage/index.ts';
import { RunLease } from './lease.ts';

const dirs: string[] = [];
function store(): BlobStore {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-lease-'));
  dirs.push(dir);
  return openBlobStore(`file://${dir}`, { secrets: () => '' });
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('the run lease (a real file:// store)', () => {
  it('refuses a second holder until the first releases it', async () => {
    const blob = store();
    const first = await RunLease.acquire(blob, 'ns/s/', 'run-1');
    await expect(RunLease.acquire(blob, 'ns/s/', 'run-2')).rejects.toMatchObject({
      reason: 'LeaseHeld',
      retryable: true,
    });
    await first.release();
    await expect(RunLease.acquire(blob, 'ns/s/', 'run-2')).resolves.toBeInstanceOf(RunLease);
  });

  it('takes over a lease that expired, and not one whose holder is alive', async () => {
    const blob = store();
    let now = Date.now();
    await RunLease.acquire(blob, 'ns/s/', 'run-1', { now: () => now, ttlMs: 1000 });
    now += 1500;
    await expect(RunLease.acquire(blob, 'ns/s/', 'run-2', { now: () => now })).resolves.toBeInstanceOf(
      RunLease,
    );
    // run-2's holder (this process) is alive and its lease current: a third run must wait.
    await expect(RunLease.acquire(blob, 'ns/s/', 'run-3', { now: () => now })).rejects.toMatchObject({
      reason: 'LeaseHeld',
    });
  });

  it('reports LeaseLost when another run took it, or when renewals failed past its expiry', async () => {
    const blob = store();
    let now = Date.now();
    const lease = await RunLease.acquire(blob, 'ns/s/', 'run-1', { now: () => now, ttlMs: 1000 });
    lease.check();
    now += 1500;
    expect(() => lease.check()).toThrow(/could not be renewed before it expired/);
    await RunLease.acquire(blob, 'ns/s/', 'run-2', { now: () => now });
    await expect(lease.renew()).rejects.toMatchObject({ reason: 'LeaseLost' });
    expect(() => lease.check()).toThrow(/taken by another run/);
  });
});
