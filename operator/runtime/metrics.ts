import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, exponentialBuckets } from 'prom-client';

/** What a work queue reports at scrape time about the keys its workers hold right now. */
export interface InFlightProvider {
  /** Seconds each in-flight key has been processed so far. */
  inFlightSeconds(): number[];
}

/**
 * The controller runtime's Prometheus metrics, named as controller-runtime and client-go name them so
 * existing dashboards and alerts work unchanged. Syncline's own metrics register on the same `registry`.
 */
export class RuntimeMetrics {
  readonly registry: Registry;

  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileErrorsTotal: Counter<'controller'>;
  readonly reconcileTimeSeconds: Histogram<'controller'>;
  readonly maxConcurrentReconciles: Gauge<'controller'>;
  readonly activeWorkers: Gauge<'controller'>;

  readonly workqueueDepth: Gauge<'name'>;
  readonly workqueueAddsTotal: Counter<'name'>;
  readonly workqueueQueueDurationSeconds: Histogram<'name'>;
  readonly workqueueWorkDurationSeconds: Histogram<'name'>;
  readonly workqueueRetriesTotal: Counter<'name'>;
  readonly workqueueUnfinishedWorkSeconds: Gauge<'name'>;
  readonly workqueueLongestRunningProcessorSeconds: Gauge<'name'>;

  readonly leaderElectionMasterStatus: Gauge<'name'>;

  /** Not in controller-runtime: how often an informer had to list again or reopen its watch, and why. */
  readonly informerRelistsTotal: Counter<'resource' | 'reason'>;
  readonly informerWatchRestartsTotal: Counter<'resource' | 'reason'>;

  private readonly queues = new Map<string, InFlightProvider>();

  constructor(options: { registry?: Registry; defaultMetrics?: boolean } = {}) {
    this.registry = options.registry ?? new Registry();
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    this.reconcileTotal = new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.reconcileErrorsTotal = new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
    });
    this.reconcileTimeSeconds = new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames: ['controller'],
      buckets: [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
        1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
      ],
      registers,
    });
    this.maxConcurrentReconciles = new Gauge({
      name: 'controller_runtime_max_concurrent_reconciles',
      help: 'Maximum number of concurrent reconciles per controller',
      labelNames: ['controller'],
      registers,
    });
    this.activeWorkers = new Gauge({
      name: 'controller_runtime_active_workers',
      help: 'Number of currently used workers per controller',
      labelNames: ['controller'],
      registers,
    });

    this.workqueueDepth = new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of workqueue',
      labelNames: ['name'],
      registers,
    });
    this.workqueueAddsTotal = new Counter({
      name: 'workqueue_adds_total',
      help: 'Total number of adds handled by workqueue',
      labelNames: ['name'],
      registers,
    });
    const durationBuckets = exponentialBuckets(10e-9, 10, 12);
    this.workqueueQueueDurationSeconds = new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested',
      labelNames: ['name'],
      buckets: durationBuckets,
      registers,
    });
    this.workqueueWorkDurationSeconds = new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes',
      labelNames: ['name'],
      buckets: durationBuckets,
      registers,
    });
    this.workqueueRetriesTotal = new Counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by workqueue',
      labelNames: ['name'],
      registers,
    });
    const queues = this.queues;
    this.workqueueUnfinishedWorkSeconds = new Gauge({
      name: 'workqueue_unfinished_work_seconds',
      help:
        "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. " +
        'Large values indicate stuck threads.',
      labelNames: ['name'],
      registers,
      collect() {
        for (const [name, queue] of queues) {
          this.set(
            { name },
            queue.inFlightSeconds().reduce((sum, seconds) => sum + seconds, 0),
          );
        }
      },
    });
    this.workqueueLongestRunningProcessorSeconds = new Gauge({
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How many seconds has the longest running processor for workqueue been running.',
      labelNames: ['name'],
      registers,
      collect() {
        for (const [name, queue] of queues) {
          this.set({ name }, Math.max(0, ...queue.inFlightSeconds()));
        }
      },
    });

    this.leaderElectionMasterStatus = new Gauge({
      name: 'leader_election_master_status',
      help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master.',
      labelNames: ['name'],
      registers,
    });

    this.informerRelistsTotal = new Counter({
      name: 'syncline_informer_relists_total',
      help: 'Full lists an informer made, by resource and reason (initial, expired, error)',
      labelNames: ['resource', 'reason'],
      registers,
    });
    this.informerWatchRestartsTotal = new Counter({
      name: 'syncline_informer_watch_restarts_total',
      help: 'Watches an informer reopened, by resource and reason (closed, error, silent, expired)',
      labelNames: ['resource', 'reason'],
      registers,
    });
  }

  /** Lets the two in-flight gauges read a queue's state at scrape time. */
  registerQueue(name: string, queue: InFlightProvider): void {
    this.queues.set(name, queue);
  }
}
