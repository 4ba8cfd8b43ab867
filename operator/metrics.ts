import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { RUN_RESULTS, type RunRecord } from '../crds/index.ts';
import type { RunSummary } from '../core/summary.ts';

/** Syncline's own metrics, registered beside the controller runtime's. */
export class SynclineMetrics {
  readonly runsTotal: Counter<'namespace' | 'sync' | 'result'>;
  readonly rowsTotal: Counter<'namespace' | 'sync' | 'operation' | 'outcome'>;
  readonly lastSuccess: Gauge<'namespace' | 'sync'>;
  readonly runDuration: Histogram<'namespace' | 'sync' | 'result'>;
  readonly skippedRuns: Counter<'namespace' | 'sync'>;
  readonly activeRuns: Gauge<'namespace' | 'sync'>;
  readonly scheduleLateness: Histogram;
  readonly leader: Gauge;
  readonly apiRequests: Counter<'verb'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.runsTotal = new Counter({
      name: 'syncline_sync_runs_total',
      help: 'Finished runs per Sync, by result (Succeeded, PartiallySucceeded, Failed)',
      labelNames: ['namespace', 'sync', 'result'],
      registers,
    });
    this.rowsTotal = new Counter({
      name: 'syncline_sync_rows_total',
      help:
        'Row operations per Sync: planned, delivered and failed by operation (insert, update, upsert, delete, ' +
        'clear, archive), and the outcomes summed over operations (operation="all": delivered, failed, skipped)',
      labelNames: ['namespace', 'sync', 'operation', 'outcome'],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: 'syncline_sync_last_success_timestamp_seconds',
      help: 'When the last successful run of the Sync finished (Unix seconds)',
      labelNames: ['namespace', 'sync'],
      registers,
    });
    this.runDuration = new Histogram({
      name: 'syncline_sync_run_duration_seconds',
      help: 'Duration of finished runs, from Job creation to completion',
      labelNames: ['namespace', 'sync', 'result'],
      buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
      registers,
    });
    this.skippedRuns = new Counter({
      name: 'syncline_skipped_runs_total',
      help: 'Scheduled runs skipped because a run of the Sync was still active',
      labelNames: ['namespace', 'sync'],
      registers,
    });
    this.activeRuns = new Gauge({
      name: 'syncline_sync_active_runs',
      help: 'Runs in progress (0 or 1 per Sync)',
      labelNames: ['namespace', 'sync'],
      registers,
    });
    this.scheduleLateness = new Histogram({
      name: 'syncline_schedule_lateness_seconds',
      help: 'How long after its scheduled time a scheduled run was started',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    });
    this.apiRequests = new Counter({
      name: 'syncline_operator_api_requests_total',
      help: 'Requests the reconcilers made to the Kubernetes API (writes and cache misses; informers not included)',
      labelNames: ['verb'],
      registers,
    });
    this.leader = new Gauge({
      name: 'syncline_operator_leader',
      help: '1 while this operator replica is the leader and reconciles, 0 while it stands by',
      registers,
    });
  }

  private readonly seen = new Set<string>();

  /**
   * Called on every reconcile of a Sync; acts once per Sync and process. The run counters exist at 0 from the
   * start, so `increase()` sees a Sync's first failure, and the last-success gauge is restored from status after
   * an operator restart, so the staleness alerts keep working.
   */
  syncSeen(namespace: string, sync: string, lastSuccessfulRunAt: string | undefined): void {
    const key = `${namespace}/${sync}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    for (const result of RUN_RESULTS) this.runsTotal.inc({ namespace, sync, result }, 0);
    const last = lastSuccessfulRunAt ? Date.parse(lastSuccessfulRunAt) : Number.NaN;
    if (Number.isFinite(last)) this.lastSuccess.set({ namespace, sync }, last / 1000);
  }

  runFinished(namespace: string, sync: string, record: RunRecord, summary: RunSummary | undefined): void {
    const result = record.result ?? 'Failed';
    this.runsTotal.inc({ namespace, sync, result });
    if (record.startedAt && record.finishedAt) {
      const seconds = (new Date(record.finishedAt).getTime() - new Date(record.startedAt).getTime()) / 1000;
      if (Number.isFinite(seconds) && seconds >= 0)
        this.runDuration.observe({ namespace, sync, result }, seconds);
    }
    if (result !== 'Failed' && record.finishedAt) {
      this.lastSuccess.set({ namespace, sync }, new Date(record.finishedAt).getTime() / 1000);
    }
    if (summary) {
      for (const [operation, count] of Object.entries(summary.operations)) {
        if (count > 0) this.rowsTotal.inc({ namespace, sync, operation, outcome: 'planned' }, count);
      }
      for (const [operation, outcome] of Object.entries(summary.outcomes ?? {})) {
        if (outcome.delivered > 0)
          this.rowsTotal.inc({ namespace, sync, operation, outcome: 'delivered' }, outcome.delivered);
        if (outcome.failed > 0)
          this.rowsTotal.inc({ namespace, sync, operation, outcome: 'failed' }, outcome.failed);
      }
      const { delivered, failed, skipped } = summary.counts;
      if (delivered > 0)
        this.rowsTotal.inc({ namespace, sync, operation: 'all', outcome: 'delivered' }, delivered);
      if (failed > 0) this.rowsTotal.inc({ namespace, sync, operation: 'all', outcome: 'failed' }, failed);
      if (skipped > 0) this.rowsTotal.inc({ namespace, sync, operation: 'all', outcome: 'skipped' }, skipped);
    }
  }

  /** Drops the per-Sync gauges of a deleted Sync (counters keep their totals, as Prometheus expects). */
  forget(namespace: string, sync: string): void {
    this.seen.delete(`${namespace}/${sync}`);
    this.lastSuccess.remove({ namespace, sync });
    this.activeRuns.remove({ namespace, sync });
  }
}
