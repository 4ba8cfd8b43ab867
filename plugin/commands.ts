import { createInterface } from 'node:readline/promises';
import { gunzipSync } from 'node:zlib';
import type { Destination, RunRecord, SecretKeySelector, Sync } from '../crds/index.ts';
import { newRunId } from '../runner/cli/plans.ts';
import { DiffStore, type DestinationObjects } from '../core/diffstore/index.ts';
import { SynclineError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { runPlan, type RunPlan } from '../core/plan.ts';
import { filterRequestLog } from '../runner/requestlog.ts';
import { executeRun } from '../runner/run.ts';
import { secretEnvName, secretResolver } from '../core/secrets.ts';
import { openBlobStore } from '../core/storage/index.ts';
import type { RunSummary } from '../core/summary.ts';
import { readSyncGraph, type PluginCluster } from './cluster.ts';
import { duration, relative, render, table, type OutputFormat } from './format.ts';
import { segmentPlanModel } from './segment.ts';

export interface Io {
  out: (text: string) => void;
  /** Interactive confirmation; undefined when there is no terminal. */
  confirm?: (question: string) => Promise<string>;
}

const conditionOf = (sync: Sync, type: string) => sync.status?.conditions?.find((c) => c.type === type);

export async function status(
  cluster: PluginCluster,
  allNamespaces: boolean,
  format: OutputFormat,
  io: Io,
): Promise<void> {
  const syncs = await cluster.list<Sync>('syncs', allNamespaces ? undefined : cluster.namespace);
  const rows = syncs.map((s) => {
    const ready = conditionOf(s, 'Ready');
    const running = conditionOf(s, 'Running')?.status === 'True';
    return {
      namespace: s.metadata.namespace ?? cluster.namespace,
      name: s.metadata.name,
      mode: s.spec.mode,
      ready: ready?.status ?? 'Unknown',
      reason: s.spec.paused ? 'Paused' : (ready?.reason ?? '-'),
      running,
      lastResult: s.status?.lastRun?.result,
      lastRunAt: s.status?.lastRun?.finishedAt,
      delivered: s.status?.lastRun?.counts?.delivered,
      failed: s.status?.lastRun?.counts?.failed,
      lastSuccessfulRunAt: s.status?.lastSuccessfulRunAt,
      nextRunAt: s.status?.nextRunAt,
      message: ready?.message,
    };
  });
  io.out(
    render(format, { items: rows }, () => {
      if (rows.length === 0)
        return `No Syncs found ${allNamespaces ? 'in any namespace' : `in namespace ${cluster.namespace}`}.`;
      const header = [
        ...(allNamespaces ? ['NAMESPACE'] : []),
        'NAME',
        'MODE',
        'READY',
        'REASON',
        'LAST RESULT',
        'ROWS',
        'LAST SUCCESS',
        'NEXT RUN',
      ];
      return table(
        header,
        rows.map((r) => [
          ...(allNamespaces ? [r.namespace] : []),
          r.name,
          r.mode,
          r.ready,
          r.running ? `${r.reason} (running)` : r.reason,
          r.lastResult ?? '-',
          r.delivered === undefined ? '-' : `${r.delivered}${r.failed ? ` (+${r.failed} failed)` : ''}`,
          relative(r.lastSuccessfulRunAt),
          relative(r.nextRunAt),
        ]),
      );
    }),
  );
}

export async function runs(
  cluster: PluginCluster,
  name: string,
  format: OutputFormat,
  io: Io,
): Promise<void> {
  const sync = await cluster.get<Sync>('syncs', name);
  const active = sync.status?.activeRun;
  const history: RunRecord[] = sync.status?.history ?? (sync.status?.lastRun ? [sync.status.lastRun] : []);
  const data = { sync: name, namespace: cluster.namespace, activeRun: active, history };
  io.out(
    render(format, data, () => {
      const records = [...(active ? [{ ...active, result: 'Running' as const }] : []), ...history];
      if (records.length === 0)
        return `Sync ${name} has not run yet${sync.status?.nextRunAt ? `; next run ${relative(sync.status.nextRunAt)}` : ''}.`;
      return table(
        [
          'RUN',
          'TRIGGER',
          'RESULT',
          'STARTED',
          'DURATION',
          'QUERIED',
          'ADDED',
          'CHANGED',
          'REMOVED',
          'DELIVERED',
          'FAILED',
          'MESSAGE',
        ],
        records.map((r) => [
          r.id ?? '-',
          r.trigger ?? '-',
          r.result ?? '-',
          relative(r.startedAt),
          duration(r.startedAt, r.finishedAt),
          String(r.counts?.queried ?? '-'),
          String(r.counts?.added ?? '-'),
          String(r.counts?.changed ?? '-'),
          String(r.counts?.removed ?? '-'),
          String(r.counts?.delivered ?? '-'),
          String(r.counts?.failed ?? '-'),
          (r.message ?? '').slice(0, 80),
        ]),
      );
    }),
  );
}

/** Every secretKeyRef in an object tree. */
export function secretRefs(value: unknown): SecretKeySelector[] {
  if (!value || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap(secretRefs);
  const record = value as Record<string, unknown>;
  const own = record['secretKeyRef'] as SecretKeySelector | undefined;
  return [
    ...(own?.name && own.key ? [own] : []),
    ...Object.entries(record).flatMap(([k, v]) => (k === 'secretKeyRef' ? [] : secretRefs(v))),
  ];
}

/**
 * Secret values the plan needs: from the environment (SYNCLINE_SECRET_*), else read from the cluster.
 * A Secret the user may not read is named with how to provide it instead.
 */
async function collectSecrets(
  cluster: PluginCluster,
  refs: SecretKeySelector[],
): Promise<Record<string, Record<string, string>>> {
  const values: Record<string, Record<string, string>> = {};
  const missing: string[] = [];
  for (const ref of refs) {
    if (process.env[secretEnvName(ref)] !== undefined) continue;
    try {
      const value = await cluster.secretValue(ref);
      if (value === undefined)
        missing.push(
          `Secret "${ref.name}" key "${ref.key}" does not exist in namespace ${cluster.namespace}`,
        );
      else (values[ref.name] ??= {})[ref.key] = value;
    } catch (error) {
      if (error instanceof SynclineError && error.reason === 'Forbidden') {
        missing.push(
          `Secret "${ref.name}" key "${ref.key}": you may not read it; set ${secretEnvName(ref)} instead`,
        );
      } else throw error;
    }
  }
  if (missing.length > 0) {
    throw new SynclineError(
      'SecretsUnavailable',
      `plan runs the query and diff on this machine and needs these credentials:\n  ${missing.join('\n  ')}`,
    );
  }
  return values;
}

async function diffStoreUrl(
  cluster: Pick<PluginCluster, 'operatorDiffStoreUrl'>,
  sync: Sync | undefined,
  flag: string | undefined,
): Promise<string> {
  const url =
    flag ??
    process.env['SYNCLINE_DIFF_STORE_URL'] ??
    sync?.spec.diffStore?.url ??
    (await cluster.operatorDiffStoreUrl());
  if (!url) {
    throw new SynclineError(
      'DiffStoreUnknown',
      "cannot tell where the operator keeps snapshots (its Deployment is not visible to you): pass --diff-store s3://... (the chart's diffStore.url)",
    );
  }
  return url;
}

export async function plan(
  cluster: PluginCluster,
  name: string,
  options: { diffStore?: string; sample: number },
  format: OutputFormat,
  io: Io,
): Promise<void> {
  const graph = await readSyncGraph(cluster, name);
  const url = await diffStoreUrl(cluster, graph.sync, options.diffStore);
  const secrets = await collectSecrets(cluster, secretRefs([graph.source.spec, graph.destination.spec]));
  const named = <T>(o: { metadata: { name: string }; spec: T }) => ({ name: o.metadata.name, spec: o.spec });
  const { model, compiledSql } = await segmentPlanModel(cluster, graph);
  const runPlanInput: RunPlan = runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId: `plan-${newRunId()}`,
    namespace: cluster.namespace,
    trigger: 'manual',
    fullResync: false,
    dryRun: true,
    sync: named(graph.sync),
    model: named(model),
    source: named(graph.source),
    destination: named(graph.destination),
    diffStore: { url },
  });
  const summary = await executeRun(runPlanInput, {
    secrets: secretResolver(process.env, secrets),
    log: createLogger({ fd: 2, level: 'warn' }),
    signal: AbortSignal.timeout(30 * 60_000),
  });
  if (summary.result === 'Failed') {
    throw new SynclineError(
      summary.reason ?? 'PlanFailed',
      `the plan could not be computed: ${summary.message}`,
    );
  }
  const samples = Object.fromEntries(
    Object.entries(summary.samples ?? {}).map(([op, rows]) => [op, rows.slice(0, options.sample)]),
  );
  const data = {
    sync: name,
    namespace: cluster.namespace,
    counts: summary.counts,
    operations: summary.operations,
    samples,
    message: summary.message,
    ...(compiledSql ? { compiledSql } : {}),
  };
  io.out(
    render(format, data, () => {
      const c = summary.counts;
      const lines = [
        `Plan for ${cluster.namespace}/${name} (dry run: nothing was delivered or committed)`,
        ...(compiledSql
          ? [`  Model ${graph.model.metadata.name} is a segment; its compiled SQL:`, `    ${compiledSql}`]
          : []),
        `  queried ${c.queried}: ${c.added} added, ${c.changed} changed, ${c.removed} removed`,
        ...Object.entries(summary.operations).map(([op, n]) => `  would ${op} ${n} row(s)`),
      ];
      if (Object.keys(summary.operations).length === 0)
        lines.push('  nothing to send: the destination is up to date');
      for (const [op, rows] of Object.entries(samples)) {
        if (rows.length === 0) continue;
        lines.push(`\n${op} (first ${rows.length}):`);
        const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
        lines.push(
          table(
            columns.map((col) => col.toUpperCase()),
            rows.map((r) =>
              columns.map((col) =>
                r[col] === undefined || r[col] === null
                  ? ''
                  : typeof r[col] === 'object'
                    ? JSON.stringify(r[col])
                    : String(r[col]),
              ),
            ),
          ),
        );
      }
      return lines.join('\n');
    }),
  );
}

export async function debug(
  cluster: PluginCluster,
  name: string,
  runId: string | undefined,
  options: { diffStore?: string; key?: string },
  format: OutputFormat,
  io: Io,
): Promise<void> {
  const sync = await cluster.get<Sync>('syncs', name);
  const url = await diffStoreUrl(cluster, sync, options.diffStore);
  const secrets = await collectSecrets(cluster, []);
  const store = new DiffStore(
    openBlobStore(url, { secrets: secretResolver(process.env, secrets) }),
    cluster.namespace,
    name,
  );
  const id = runId ?? sync.status?.lastRun?.id ?? (await store.listRuns())[0]?.runId;
  if (!id)
    throw new SynclineError(
      'RunNotFound',
      `Sync ${cluster.namespace}/${name} has no runs yet (kubectl syncline trigger ${name} starts one)`,
    );
  const summary = (await store.readRunSummary(id)) as RunSummary | undefined;
  if (!summary) {
    const recent = (await store.listRuns()).slice(0, 5).map((r) => r.runId);
    throw new SynclineError(
      'RunNotFound',
      `no record of run ${id} in ${store.url}; recent runs: ${recent.join(', ') || 'none'}`,
    );
  }
  const gz = await store.readRequestLog(id);
  const requests = gz ? filterRequestLog(gunzipSync(gz).toString('utf8'), options.key) : [];
  const rejected = summary.rejected.filter((r) => options.key === undefined || r.key === options.key);
  const data = { run: id, summary, rejected, requests, requestLogKept: gz !== undefined };
  io.out(
    render(format, data, () => {
      const c = summary.counts;
      const t = summary.timings;
      const lines = [
        `Run ${id} of ${cluster.namespace}/${name}: ${summary.result}${summary.reason ? ` (${summary.reason})` : ''}`,
        `  ${summary.message}`,
        `  started ${summary.startedAt}, finished ${summary.finishedAt}${summary.fullResync ? ', full resync' : ''}`,
        `  rows: queried ${c.queried}, added ${c.added}, changed ${c.changed}, removed ${c.removed}, delivered ${c.delivered}, failed ${c.failed}`,
        `  phases: query ${t.queryMs ?? '-'} ms, diff ${t.diffMs ?? '-'} ms, deliver ${t.deliverMs ?? '-'} ms, commit ${t.commitMs ?? '-'} ms`,
      ];
      if (rejected.length > 0) {
        lines.push(
          `\nRejected rows (${rejected.length}${summary.rejected.length >= 100 ? ', first 100' : ''}):`,
        );
        lines.push(
          table(
            ['KEY', 'OPERATION', 'REASON'],
            rejected.map((r) => [r.key, r.operation, r.reason]),
          ),
        );
      }
      if (!gz) lines.push('\nNo request log kept for this run (none recorded, or older than the retention).');
      else {
        lines.push(
          `\nRequests (${requests.length}${options.key === undefined ? '' : ` touching key ${options.key}`}):`,
        );
        for (const r of requests) {
          lines.push(
            `  ${r.ts} ${r.operation} ${r.target} -> ${r.status ?? r.error ?? '?'} in ${r.latencyMs} ms (keys: ${r.keys.slice(0, 5).join(', ')}${r.keys.length > 5 ? ', …' : ''})`,
          );
          if (r.responseBody) lines.push(`    response: ${r.responseBody}`);
        }
      }
      return lines.join('\n');
    }),
  );
}

const OPTIONS_SHOWN = 8;

/**
 * `kubectl syncline fields DESTINATION OBJECT`, from what the Destination's last connection check
 * discovered (undefined when nothing was): the object's fields as data and as a `kubectl explain`-like
 * text. Throws a message a person can act on when the Destination was not checked or has no such object.
 */
export function fieldsView(
  destination: Destination,
  discovered: DestinationObjects | undefined,
  objectName: string,
): { data: object; text: string } {
  const name = destination.metadata.name;
  const namespace = destination.metadata.namespace ?? 'default';
  if (!destination.status?.lastCheckedAt) {
    throw new SynclineError(
      'DestinationNotReady',
      `Destination ${namespace}/${name} has not been checked yet, so its fields are not known: wait for its ` +
        `connection check (kubectl get destination ${name} -n ${namespace})`,
    );
  }
  if (!discovered) {
    throw new SynclineError(
      'DestinationNotReady',
      `no fields were discovered for Destination ${namespace}/${name} (type ${destination.spec.type}): its ` +
        'connector does not discover fields, or no Sync targets an object of it yet (spec.target.object)',
    );
  }
  const object = discovered.objects.find((o) => o.name === objectName);
  if (!object) {
    const found = discovered.objects.map((o) => o.name);
    const asked = discovered.requested.includes(objectName);
    throw new SynclineError(
      'UnknownObject',
      asked
        ? `Destination ${namespace}/${name} has no object "${objectName}" (checked ${discovered.discoveredAt}); objects found: ${found.join(', ') || 'none'}`
        : `the fields of object "${objectName}" of Destination ${namespace}/${name} have not been discovered: ` +
            `only the objects its Syncs target are (${found.join(', ') || 'none'}); a Sync with target.object ${objectName} brings a check that discovers them`,
    );
  }
  const data = {
    destination: name,
    namespace,
    type: destination.spec.type,
    object: object.name,
    ...(object.label ? { label: object.label } : {}),
    discoveredAt: discovered.discoveredAt,
    fields: object.fields,
  };
  const yes = (v: boolean | undefined) => (v ? 'yes' : '');
  const options = (o: string[] | undefined) =>
    !o?.length
      ? ''
      : o.length > OPTIONS_SHOWN
        ? `${o.slice(0, OPTIONS_SHOWN).join(', ')}, … (${o.length})`
        : o.join(', ');
  const text = [
    `DESTINATION: ${namespace}/${name} (${destination.spec.type})`,
    `OBJECT:      ${object.name}${object.label && object.label !== object.name ? ` (${object.label})` : ''}`,
    `DISCOVERED:  ${discovered.discoveredAt}`,
    '',
    `FIELDS (${object.fields.length}):`,
    table(
      ['NAME', 'TYPE', 'REQUIRED', 'UNIQUE', 'READ-ONLY', 'OPTIONS'],
      [...object.fields]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((f) => [f.name, f.type, yes(f.required), yes(f.unique), yes(f.readOnly), options(f.options)]),
    ),
  ].join('\n');
  return { data, text };
}

export async function fields(
  cluster: Pick<PluginCluster, 'get' | 'operatorDiffStoreUrl' | 'namespace'>,
  destinationName: string,
  objectName: string,
  options: { diffStore?: string },
  format: OutputFormat,
  io: Io,
): Promise<void> {
  const destination = await cluster.get<Destination>('destinations', destinationName);
  let discovered: DestinationObjects | undefined;
  if (destination.status?.lastCheckedAt) {
    const url = await diffStoreUrl(cluster, undefined, options.diffStore);
    discovered = await DiffStore.readDestinationObjects(
      openBlobStore(url, { secrets: secretResolver(process.env) }),
      destination.metadata.namespace ?? cluster.namespace,
      destinationName,
    );
  }
  const view = fieldsView(destination, discovered, objectName);
  io.out(render(format, view.data, () => view.text));
}

/** A readline prompt on the terminal, or undefined when stdin is not one. */
export function terminalConfirm(): Io['confirm'] {
  if (!process.stdin.isTTY) return undefined;
  return async (question) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      return await rl.question(question);
    } finally {
      rl.close();
    }
  };
}
