import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { SynclineMetrics } from './metrics.ts';

describe('Syncline metrics', () => {
  it('a Sync seen for the first time has its run counters at 0 and its last success restored from status', async () => {
    const registry = new Registry();
    const metrics = new SynclineMetrics(registry);
    metrics.syncSeen('team', 'orders', '2026-11-24T10:00:00Z');
    metrics.syncSeen('team', 'fresh', undefined);
    const text = await registry.metrics();
    for (const result of ['Succeeded', 'PartiallySucceeded', 'Failed']) {
      expect(text).toContain(`syncline_sync_runs_total{namespace="team",sync="orders",result="${result}"} 0`);
      expect(text).toContain(`syncline_sync_runs_total{namespace="team",sync="fresh",result="${result}"} 0`);
    }
    expect(text).toContain(
      `syncline_sync_last_success_timestamp_seconds{namespace="team",sync="orders"} ${Date.parse('2026-11-24T10:00:00Z') / 1000}`,
    );
    expect(text).not.toContain('syncline_sync_last_success_timestamp_seconds{namespace="team",sync="fresh"}');
  });

  it('acts once per Sync: a later status does not move the gauge a finished run set', async () => {
    const registry = new Registry();
    const metrics = new SynclineMetrics(registry);
    metrics.syncSeen('team', 'orders', undefined);
    metrics.runFinished('team', 'orders', { id: 'r1', result: 'Failed' }, undefined);
    metrics.syncSeen('team', 'orders', '2020-01-01T00:00:00Z');
    const text = await registry.metrics();
    expect(text).toContain('syncline_sync_runs_total{namespace="team",sync="orders",result="Failed"} 1');
    expect(text).not.toContain(
      'syncline_sync_last_success_timestamp_seconds{namespace="team",sync="orders"}',
    );
  });
});
