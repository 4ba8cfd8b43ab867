// Benchmark of the operator: N Syncs (default 1,000) with 1-minute intervals against a real API server.
// Reports the time until all are reconciled, schedule lateness (p50/p99), the operator's RSS and the API
// requests per second it makes.
//
//   npm run bench:operator            (BENCH_SYNCS=1000 BENCH_MINUTES=3 BENCH_WORKERS=32)
//
// BENCH_OPERATOR_NODE_OPTIONS sets NODE_OPTIONS of the operator process only. It defaults to what the Helm
// chart's Deployment sets (values.yaml nodeOptions: --max-semi-space-size=4, which bounds the young
// generation's share of RSS), so the figures are those of the operator as shipped; set it to '' to compare.
//
// The control plane is real (etcd + kube-apiserver from test/stack). No controller-manager runs: the Jobs
// the operator creates are deleted by this script a moment after they appear, which the operator records
// as a finished run (JobDeleted), so every Sync comes due again each minute and lateness is measured on
// every slot, not only the first. The Source and Destination are marked checked (their status written
// here, as a finished connection check would) so that no check Jobs are needed.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkHashOf } from '../operator/jobs.ts';
import { Informer } from '../operator/runtime/informer.ts';
import { createLogger } from '../core/logger.ts';
import { startOperator } from '../test/e2e/operator-process.ts';
import { Kube } from '../test/e2e/support.ts';
import { startKube } from '../test/stack/kube.ts';
import type { Destination, Source } from '../crds/index.ts';

const SYNCS = Number(process.env['BENCH_SYNCS'] ?? 1000);
const MINUTES = Number(process.env['BENCH_MINUTES'] ?? 3);
const WORKERS = Number(process.env['BENCH_WORKERS'] ?? 32);
const OPERATOR_NODE_OPTIONS = process.env['BENCH_OPERATOR_NODE_OPTIONS'] ?? '--max-semi-space-size=4';

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

/** User + system CPU time of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function main(): Promise<void> {
  const log = (line: string) => console.log(`[bench] ${line}`);
  log(`starting a control plane (etcd + kube-apiserver)`);
  const stack = await startKube({ controllerManager: false });
  const kube = new Kube(stack.kubeConfig());
  try {
    const ns = await kube.namespace('bench');
    await kube.secret(ns, 'pg', { password: 'unused' });
    const checked = async (plural: 'sources' | 'destinations', object: Source | Destination) => {
      await kube.create(plural, ns, object as unknown as Record<string, unknown>);
      const stored = (await kube.get(plural, ns, object.metadata.name)) as unknown as Source | Destination;
      const now = new Date().toISOString();
      await kube.must(
        'PATCH',
        `${kube.path(plural, ns, object.metadata.name)}/status`,
        {
          status: {
            observedGeneration: 1,
            checkedHash: checkHashOf(stored),
            lastCheckedAt: now,
            conditions: [
              {
                type: 'Ready',
                status: 'True',
                observedGeneration: 1,
                lastTransitionTime: now,
                reason: 'ConnectionSucceeded',
                message: 'checked by the benchmark',
              },
            ],
          },
        },
        'application/merge-patch+json',
      );
    };
    await checked('sources', {
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'Source',
      metadata: { name: 'warehouse' },
      spec: {
        type: 'postgres',
        postgres: {
          host: '127.0.0.1',
          port: 5432,
          database: 'app',
          user: 'u',
          password: { secretKeyRef: { name: 'pg', key: 'password' } },
        },
      },
    } as unknown as Source);
    await checked('destinations', {
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'Destination',
      metadata: { name: 'crm' },
      spec: { type: 'http', http: { url: 'http://127.0.0.1:9/contacts' } },
    } as unknown as Destination);
    await kube.create('models', ns, {
      kind: 'Model',
      metadata: { name: 'customers' },
      spec: { sourceRef: { name: 'warehouse' }, table: 'customers', primaryKey: 'id' },
    });

    log(`creating ${SYNCS} Syncs with a 1m interval`);
    const createStart = Date.now();
    const names = Array.from({ length: SYNCS }, (_, i) => `sync-${String(i).padStart(4, '0')}`);
    for (let i = 0; i < names.length; i += 50) {
      await Promise.all(
        names.slice(i, i + 50).map((name) =>
          kube.create('syncs', ns, {
            kind: 'Sync',
            metadata: { name },
            spec: {
              modelRef: { name: 'customers' },
              destinationRef: { name: 'crm' },
              mode: 'upsert',
              schedule: { interval: '1m' },
            },
          }),
        ),
      );
    }
    log(`created in ${((Date.now() - createStart) / 1000).toFixed(1)} s`);

    // Stand-in for runs: delete each Job shortly after it appears.
    const jobs = new Informer<{ metadata?: { name?: string; namespace?: string } }>({
      kubeConfig: kube.kc,
      group: 'batch',
      version: 'v1',
      plural: 'jobs',
      namespace: ns,
      labelSelector: 'app.kubernetes.io/managed-by=syncline',
      log: createLogger({ level: 'warn' }),
    });
    let jobsSeen = 0;
    let stopping = false;
    jobs.onAdd((job) => {
      jobsSeen++;
      setTimeout(() => {
        if (stopping) return;
        kube
          .request('DELETE', `/apis/batch/v1/namespaces/${ns}/jobs/${job.metadata?.name}`, {
            propagationPolicy: 'Background',
          })
          .catch((error: unknown) => log(`deleting a Job failed: ${String(error)}`));
      }, 1000);
    });
    await jobs.start();

    const operator = startOperator(
      [
        '--kubeconfig',
        stack.kubeconfigPath,
        '--namespaces',
        ns,
        '--metrics-port',
        '0',
        '--no-leader-elect',
        '--workers',
        String(WORKERS),
        '--diff-store-url',
        `file://${mkdtempSync(join(tmpdir(), 'syncline-bench-store-'))}`,
      ],
      {
        SYNCLINE_LOG_LEVEL: 'info',
        ...(OPERATOR_NODE_OPTIONS ? { NODE_OPTIONS: OPERATOR_NODE_OPTIONS } : {}),
      },
    );
    const started = Date.now();
    const pid = operator.child.pid!;
    let maxRss = 0;
    const rssTimer = setInterval(() => (maxRss = Math.max(maxRss, rssMb(pid))), 500);

    // Time until every Sync is reconciled: observedGeneration set and a Ready condition.
    let reconciledMs = NaN;
    for (;;) {
      const list = await kube.must<{
        items: {
          metadata: { generation: number };
          status?: { observedGeneration?: number; conditions?: { type: string }[] };
        }[];
      }>('GET', kube.path('syncs', ns));
      const done = list.items.filter(
        (s) =>
          s.status?.observedGeneration === s.metadata.generation &&
          s.status.conditions?.some((c) => c.type === 'Ready'),
      ).length;
      if (done === SYNCS) {
        reconciledMs = Date.now() - started;
        break;
      }
      if (Date.now() - started > 300_000)
        throw new Error(`only ${done} of ${SYNCS} reconciled after 5 minutes`);
      await sleep(200);
    }
    const rssAtReconciled = rssMb(pid);
    log(
      `all ${SYNCS} Syncs reconciled ${(reconciledMs / 1000).toFixed(2)} s after the operator process started`,
    );

    log(`measuring schedule lateness for ${MINUTES} minutes`);
    await sleep(MINUTES * 60_000);
    const seconds = (Date.now() - started) / 1000;
    clearInterval(rssTimer);

    const runs = operator.logs.filter((l) => l['msg'] === 'run started' && l['trigger'] === 'schedule');
    // The first run of each Sync was due at its creation, before the operator started: a missed run,
    // started once. Lateness of the schedule proper is measured on the slots that came due while it ran.
    const steady = runs
      .filter((l) => Date.parse(String(l['scheduledAt'])) >= started + 1000)
      .map((l) => Number(l['latenessMs']));
    const startup = runs
      .filter((l) => Date.parse(String(l['scheduledAt'])) < started + 1000)
      .map((l) => Number(l['latenessMs']));
    const metricsText = await operator.metrics();
    const skipped = metricsText
      .split('\n')
      .filter((l) => l.startsWith('syncline_skipped_runs_total{'))
      .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    const operatorRequests = metricsText
      .split('\n')
      .filter((l) => l.startsWith('syncline_operator_api_requests_total{'))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    const informerRestarts = metricsText
      .split('\n')
      .filter(
        (l) =>
          l.startsWith('syncline_informer_relists_total{') ||
          l.startsWith('syncline_informer_watch_restarts_total{'),
      )
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    const cpu = cpuSeconds(pid);
    const sum = (prefix: string) =>
      metricsText
        .split('\n')
        .filter((l) => l.startsWith(prefix))
        .reduce((total, l) => total + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    const reconciles = sum('controller_runtime_reconcile_total{controller="sync"');
    const reconcileErrors = sum('controller_runtime_reconcile_errors_total{controller="sync"');
    const errorSample = operator.logs
      .filter((l) => l['level'] === 'error')
      .slice(0, 3)
      .map((l) => l['err'] ?? l['msg']);
    await operator.stop();
    stopping = true;
    jobs.stop();

    const result = {
      syncs: SYNCS,
      workers: WORKERS,
      ...(OPERATOR_NODE_OPTIONS ? { operatorNodeOptions: OPERATOR_NODE_OPTIONS } : {}),
      reconciledAllSeconds: +(reconciledMs / 1000).toFixed(2),
      scheduledRunsMeasured: steady.length,
      latenessP50Seconds: +(percentile(steady, 50) / 1000).toFixed(3),
      latenessP99Seconds: +(percentile(steady, 99) / 1000).toFixed(3),
      latenessMaxSeconds: +(Math.max(...steady) / 1000).toFixed(3),
      startupMissedRuns: startup.length,
      startupMissedRunsP99Seconds: +(percentile(startup, 99) / 1000).toFixed(3),
      skippedRuns: skipped,
      jobsCreated: jobsSeen,
      syncReconciles: reconciles,
      syncReconcileErrors: reconcileErrors,
      errorSample,
      operatorCpuSeconds: +cpu.toFixed(1),
      rssAtReconciledMb: +rssAtReconciled.toFixed(1),
      rssMaxMb: +maxRss.toFixed(1),
      apiRequests: operatorRequests,
      apiRequestsPerSecond: +(operatorRequests / seconds).toFixed(1),
      informerListsAndWatchRestarts: informerRestarts,
      durationSeconds: +seconds.toFixed(0),
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await stack.stop();
  }
}

await main();
