import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { runSummary } from '../core/summary.ts';
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

  it('counts rows planned, delivered and failed by operation, and their sums as operation="all"', async () => {
    const registry = new Registry();
    const metrics = new SynclineMetrics(registry);
    const summary = runSummary.parse({
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'RunSummary',
      runId: 'r1',
      namespace: 'team',
      sync: 'orders',
      mode: 'upsert',
      startedAt: '2026-11-24T10:00:00Z',
      finishedAt: '2026-11-24T10:00:05Z',
      result: 'PartiallySucceeded',
      message: '',
      counts: { queried: 10, added: 2, changed: 5, removed: 1, delivered: 7, failed: 1, skipped: 2 },
      operations: { upsert: 7, delete: 1 },
      outcomes: { upsert: { delivered: 6, failed: 1 }, delete: { delivered: 1, failed: 0 } },
      timings: {},
    });
    metrics.runFinished('team', 'orders', { id: 'r1', result: 'PartiallySucceeded' }, summary);
    const text = await registry.metrics();
    const rows = (operation: string, outcome: string) =>
      `syncline_sync_rows_total{namespace="team",sync="orders",operation="${operation}",outcome="${outcome}"}`;
    for (const [series, value] of [
      [rows('upsert', 'planned'), 7],
      [rows('delete', 'planned'), 1],
      [rows('upsert', 'delivered'), 6],
      [rows('upsert', 'failed'), 1],
      [rows('delete', 'delivered'), 1],
      [rows('all', 'delivered'), 7],
      [rows('all', 'failed'), 1],
      [rows('all', 'skipped'), 2],
    ] as const) {
      expect(text).toContain(`${series} ${value}\n`);
    }
    expect(text).not.toContain(rows('delete', 'failed'));
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
