// `kubectl syncline trigger` and `resync`: a run requested the way the run API requests one (the same
// ledger on the Sync, the same run IDs), optionally followed until it finishes.
import { setTimeout as sleepFor } from 'node:timers/promises';
import { FINISHED_PHASES, type RunView, type Sync } from '../crds/index.ts';
import { SynclineError } from '../core/errors.ts';
import type { ApiKube } from '../operator/api/kube.ts';
import { requestRun } from '../operator/api/request-run.ts';
import { viewRun } from '../operator/api/run-view.ts';
import { readSyncGraph, type PluginCluster } from './cluster.ts';
import { duration, render, type OutputFormat } from './format.ts';
import type { Io } from './commands.ts';

/** The exit codes of `trigger --wait` (and `resync --wait`); 1 and 2 are every command's error and usage codes. */
export const EXIT_CODES = {
  Succeeded: 0,
  Error: 1,
  Usage: 2,
  Failed: 3,
  PartiallySucceeded: 4,
  TimedOut: 5,
} as const;

export const EXIT_CODES_HELP = `Exit codes with --wait:
  0  the run succeeded (or a run that covered it did: a full resync requested meanwhile)
  1  the command failed (no run requested or followed: the message says why)
  2  invalid arguments
  3  the run failed (or the run that covered it did); its reason and message are printed
  4  the run partially succeeded: some rows were rejected (kubectl syncline debug SYNC RUN lists them)
  5  the run did not finish within --timeout; it goes on (kubectl syncline runs SYNC follows it)`;

const DEFAULT_POLL_MS = 2000;

/** What the trigger commands need of the cluster. */
export type TriggerCluster = Pick<
  PluginCluster,
  'namespace' | 'caller' | 'find' | 'get' | 'patchSyncAnnotations'
>;

export interface TriggerOptions {
  resync: boolean;
  /** Ask no confirmation of a full resync. */
  yes: boolean;
  wait: boolean;
  timeoutMs: number;
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/**
 * The API-server access requestRun needs, over the plugin's kubeconfig: the user's own credentials, so
 * RBAC decides as for kubectl. Token and access reviews are the run API server's business, not the plugin's.
 */
export function pluginApiKube(cluster: Pick<TriggerCluster, 'find' | 'patchSyncAnnotations'>): ApiKube {
  const notUsed = (what: string) => () =>
    Promise.reject(new Error(`${what} is not used by kubectl syncline`));
  return {
    getSync: (namespace, name) => cluster.find<Sync>('syncs', name, namespace),
    patchSyncAnnotations: (namespace, name, annotations, resourceVersion) =>
      cluster.patchSyncAnnotations(namespace, name, annotations, resourceVersion),
    listSyncs: notUsed('listSyncs'),
    reviewToken: notUsed('reviewToken'),
    reviewAccess: notUsed('reviewAccess'),
  };
}

/** `30m`, `90s`, `1h30m`, `500ms` (Go's duration form, as kubectl's --timeout) in milliseconds. */
export function parseDuration(text: string): number | undefined {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/.test(text)
    ? [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)]
    : [];
  const ms = parts.reduce((sum, [, n, unit]) => sum + Number(n) * (units[unit as string] ?? 0), 0);
  return ms > 0 ? ms : undefined;
}

async function confirmResync(cluster: TriggerCluster, name: string, io: Io): Promise<void> {
  const { sync, model, destination } = await readSyncGraph(cluster, name);
  const warning =
    `A full resync of ${cluster.namespace}/${name} ignores what was sent before and sends every row of Model ` +
    `"${model.metadata.name}" to Destination "${destination.metadata.name}" (mode ${sync.spec.mode}) again.`;
  if (!io.confirm)
    throw new SynclineError(
      'ConfirmationRequired',
      `${warning} Pass --yes to confirm when there is no terminal.`,
    );
  const answer = await io.confirm(`${warning}\nType the Sync's name to confirm: `);
  if (answer.trim() !== name) throw new SynclineError('NotConfirmed', 'not confirmed: nothing was changed');
}

/**
 * Requests a run of a Sync (a full resync with `resync`) and prints its ID; with `wait`, follows it until
 * it finishes or the timeout passes. Returns the exit code (EXIT_CODES).
 */
export async function trigger(
  cluster: TriggerCluster,
  name: string,
  options: TriggerOptions,
  format: OutputFormat,
  io: Io,
): Promise<number> {
  if (options.resync && !options.yes) await confirmResync(cluster, name, io);
  const namespace = cluster.namespace;
  const { run, created } = await requestRun(pluginApiKube(cluster), {
    namespace,
    name,
    fullResync: options.resync,
    trigger: 'manual',
    caller: cluster.caller,
  });
  const data = { namespace, sync: name, run, created };
  if (!options.wait) {
    io.out(render(format, data, () => requestedText(name, namespace, run, options.resync, created, false)));
    return EXIT_CODES.Succeeded;
  }
  if (format === 'text') io.out(requestedText(name, namespace, run, options.resync, created, true));
  const outcome = await follow(cluster, name, run, options, (view, paused) => {
    if (format === 'text') io.out(progressText(view, paused));
  });
  const exitCode = exitCodeOf(outcome);
  const result = {
    ...data,
    run: outcome.requested,
    ...(outcome.decisive.id !== run.id ? { coveredBy: outcome.decisive } : {}),
    timedOut: outcome.timedOut,
    exitCode,
  };
  io.out(render(format, result, () => outcomeText(name, namespace, outcome, options.timeoutMs)));
  return exitCode;
}

interface Outcome {
  /** The requested run as last seen. */
  requested: RunView;
  /** The run whose result is the answer: the requested one, or the run that covered it (Superseded). */
  decisive: RunView;
  timedOut: boolean;
}

const finished = (view: RunView) => view.phase !== 'Superseded' && FINISHED_PHASES.includes(view.phase);

/** A run as a Sync shows it, and the run that covered it when it was superseded. */
function resolve(sync: Sync, id: string): Omit<Outcome, 'timedOut'> {
  const requested = viewRun(sync, id);
  if (!requested) {
    throw new SynclineError(
      'RunNotFound',
      `Sync ${sync.metadata.namespace ?? ''}/${sync.metadata.name} no longer knows run ${id} (its history and request ledger dropped it)`,
    );
  }
  let decisive = requested;
  for (let hop = 0; hop < 5 && decisive.phase === 'Superseded' && decisive.supersededBy; hop++)
    decisive = viewRun(sync, decisive.supersededBy) ?? decisive;
  return { requested, decisive };
}

/** Reads the Sync every pollMs until the run (or the run covering it) finished, or the timeout. */
async function follow(
  cluster: TriggerCluster,
  name: string,
  run: RunView,
  options: TriggerOptions,
  report: (view: RunView, paused: boolean) => void,
): Promise<Outcome> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => sleepFor(ms).then(() => undefined));
  const deadline = now() + options.timeoutMs;
  let last: Omit<Outcome, 'timedOut'> = { requested: run, decisive: run };
  let shown = '';
  for (;;) {
    const sync = await readQuietly(cluster, name);
    if (sync) last = resolve(sync, run.id);
    const paused = sync?.spec.paused === true;
    const state = `${last.decisive.id}/${last.decisive.phase}/${paused}`;
    if (state !== shown && !finished(last.decisive)) report(last.decisive, paused);
    shown = state;
    if (finished(last.decisive)) return { ...last, timedOut: false };
    const left = deadline - now();
    if (left <= 0) return { ...last, timedOut: true };
    await sleep(Math.min(options.pollMs ?? DEFAULT_POLL_MS, left));
  }
}

/** The Sync, or undefined after an error that may pass (the API server unreachable a moment). */
async function readQuietly(cluster: TriggerCluster, name: string): Promise<Sync | undefined> {
  try {
    const sync = await cluster.find<Sync>('syncs', name);
    if (!sync)
      throw new SynclineError(
        'SyncNotFound',
        `Sync ${cluster.namespace}/${name} was deleted while its run was followed`,
      );
    return sync;
  } catch (error) {
    if (error instanceof SynclineError && error.retryable) return undefined;
    throw error;
  }
}

function exitCodeOf(outcome: Outcome): number {
  if (outcome.timedOut) return EXIT_CODES.TimedOut;
  if (outcome.decisive.phase === 'Succeeded') return EXIT_CODES.Succeeded;
  if (outcome.decisive.phase === 'PartiallySucceeded') return EXIT_CODES.PartiallySucceeded;
  return EXIT_CODES.Failed;
}

function requestedText(
  name: string,
  namespace: string,
  run: RunView,
  resync: boolean,
  created: boolean,
  waiting: boolean,
): string {
  const pending = `joined the pending ${run.fullResync && !resync ? 'full resync ' : ''}run ${run.id}`;
  const how = resync
    ? `full resync requested: ${created ? `run ${run.id}` : pending}`
    : created
      ? `run ${run.id} requested`
      : pending;
  const next = waiting
    ? 'waiting for it to finish'
    : `kubectl syncline runs ${name} -n ${namespace} follows it, or trigger with --wait`;
  return `sync.syncline.io/${name} triggered: ${how} (${next})`;
}

function progressText(view: RunView, paused: boolean): string {
  const since = view.phase === 'Running' && view.startedAt ? ` since ${view.startedAt}` : '';
  const waiting =
    view.phase === 'Pending' && paused ? ' (the Sync is paused: the run starts when it is unpaused)' : '';
  return `run ${view.id}: ${view.phase}${since}${waiting}`;
}

function resultText(view: RunView): string {
  const took = view.startedAt && view.finishedAt ? ` in ${duration(view.startedAt, view.finishedAt)}` : '';
  const c = view.counts;
  const rows = c
    ? `: queried ${c.queried}, added ${c.added}, changed ${c.changed}, removed ${c.removed}, delivered ${c.delivered}, failed ${c.failed}`
    : '';
  if (view.phase === 'Succeeded') return `${view.phase}${took}${rows}`;
  return `${view.phase}${view.reason ? ` (${view.reason})` : ''}${took}: ${view.message ?? 'no message'}`;
}

function outcomeText(name: string, namespace: string, outcome: Outcome, timeoutMs: number): string {
  const { requested, decisive } = outcome;
  if (outcome.timedOut) {
    const still =
      decisive.phase === 'Superseded' ? 'superseded by a run not seen yet' : `still ${decisive.phase}`;
    return (
      `timed out after ${humanDuration(timeoutMs)} waiting for run ${decisive.id} (${still}); it goes on: ` +
      `kubectl syncline runs ${name} -n ${namespace} follows it`
    );
  }
  const lead =
    decisive.id === requested.id
      ? `run ${requested.id}`
      : `run ${requested.id} was covered by run ${decisive.id} (a full resync requested meanwhile), which`;
  const hint =
    decisive.phase === 'PartiallySucceeded'
      ? `\n(kubectl syncline debug ${name} ${decisive.id} -n ${namespace} lists the rejected rows)`
      : '';
  return `${lead} ${resultText(decisive)}${hint}`;
}

/** 30m, 1h, 90s: a timeout as the flag takes it. */
function humanDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 100) / 10}s`;
}
