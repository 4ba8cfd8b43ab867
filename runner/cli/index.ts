import { gunzipSync } from 'node:zlib';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, Option } from 'commander';
import { DiffStore } from '../diffstore/index.ts';
import { describeError, SynclineError } from '../errors.ts';
import { runCheck, runJob } from '../job.ts';
import { createLogger } from '../logger.ts';
import { describeSummary } from '../report.ts';
import { filterRequestLog } from '../requestlog.ts';
import { executeRun } from '../run.ts';
import { secretResolver } from '../secrets.ts';
import { openBlobStore } from '../storage/index.ts';
import type { RunSummary } from '../summary.ts';
import { buildRunPlan, dependencyOrder } from './plans.ts';
import { terminalProgress } from './progress.ts';
import { DEFAULT_NAMESPACE, keyOf, loadResources, loadSecretsFile } from './resources.ts';

const DEFAULT_STATE_DIR = './.syncline/state';

interface RunCommandOptions {
  file: string;
  stateDir: string;
  sync?: string;
  fullResync?: boolean;
  output: 'text' | 'json';
  secretsFile?: string;
  logLevel: string;
  memoryLimit?: string;
}

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function printSummary(summary: RunSummary, output: 'text' | 'json', dryRun: boolean): void {
  if (output === 'json') {
    out(JSON.stringify(summary));
    return;
  }
  out(describeSummary(summary));
  const ops = Object.entries(summary.operations);
  if (ops.length > 0) out(`  operations: ${ops.map(([op, n]) => `${op} ${n}`).join(', ')}`);
  if (summary.invalidKeys) {
    out(
      `  invalid primary keys left out: ${summary.invalidKeys.nullCount} null, ${summary.invalidKeys.duplicateCount} duplicated (${summary.invalidKeys.sample.join(', ')})`,
    );
  }
  for (const r of summary.rejected.slice(0, 10)) out(`  rejected ${r.operation} ${r.key}: ${r.reason}`);
  if (summary.rejected.length > 10)
    out(`  … ${summary.counts.failed - 10} more rejected (syncline debug shows them)`);
  if (dryRun) {
    for (const [op, rows] of Object.entries(summary.samples ?? {})) {
      out(`  sample ${op}:`);
      for (const row of rows) out(`    ${JSON.stringify(row)}`);
    }
  }
}

async function runSyncs(options: RunCommandOptions, dryRun: boolean): Promise<number> {
  const set = loadResources(options.file);
  const secrets = { ...set.secrets, ...(options.secretsFile ? loadSecretsFile(options.secretsFile) : {}) };
  let only: string[] | undefined;
  if (options.sync) {
    const wanted = options.sync.includes('/') ? options.sync : keyOf(DEFAULT_NAMESPACE, options.sync);
    only = [...set.syncs.keys()].filter(
      (k) => k === wanted || (!options.sync?.includes('/') && k.endsWith(`/${options.sync}`)),
    );
    if (only.length === 0) {
      throw new SynclineError(
        'SyncNotFound',
        `no Sync "${options.sync}" in ${options.file}; there are: ${[...set.syncs.keys()].join(', ') || 'none'}`,
      );
    }
  }
  const order = dependencyOrder(set.syncs, only);
  const log = createLogger({ fd: 2, level: options.logLevel });
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const failed = new Set<string>();
  try {
    for (const key of order) {
      const sync = set.syncs.get(key)?.object;
      const blocked = (sync?.spec.dependsOn ?? []).find((d) => failed.has(keyOf(key.split('/')[0], d.name)));
      if (blocked && !dryRun) {
        failed.add(key);
        const message = `not run: it depends on Sync ${blocked.name}, which failed`;
        if (options.output === 'json')
          out(JSON.stringify({ sync: key, result: 'Failed', reason: 'DependencyFailed', message }));
        else out(`${key.split('/')[1]}: Failed (DependencyFailed)\n  ${message}`);
        continue;
      }
      const plan = buildRunPlan(set, key, {
        stateDir: options.stateDir,
        fullResync: options.fullResync ?? false,
        dryRun,
        ...(options.memoryLimit ? { memoryLimit: options.memoryLimit } : {}),
      });
      const progress = terminalProgress(plan.sync.name);
      const summary = await executeRun(plan, {
        secrets: secretResolver(process.env, secrets),
        log,
        signal: controller.signal,
        onProgress: (p) => progress.update(p),
        readConfigMap: async (name, key) => {
          const value = set.configMaps[name]?.[key];
          if (value === undefined) {
            throw new SynclineError(
              'ConfigMapNotFound',
              `ConfigMap "${name}" key "${key}" is not among the resources in ${options.file}: add the ConfigMap manifest to the folder`,
            );
          }
          return value;
        },
      });
      progress.done();
      if (summary.result === 'Failed') failed.add(key);
      printSummary(summary, options.output, dryRun);
      if (controller.signal.aborted) break;
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return failed.size > 0 ? 1 : 0;
}

async function debugRun(
  sync: string,
  runId: string | undefined,
  options: { stateDir: string; key?: string; namespace: string; output: 'text' | 'json' },
): Promise<number> {
  const blob = openBlobStore(
    /^(s3|gs|file):\/\//.test(options.stateDir)
      ? options.stateDir
      : pathToFileURL(resolve(options.stateDir)).href,
    { secrets: secretResolver(process.env) },
  );
  const store = new DiffStore(blob, options.namespace, sync);
  const runs = await store.listRuns();
  const id = runId ?? runs[0]?.runId;
  if (!id)
    throw new SynclineError('RunNotFound', `no runs of Sync ${options.namespace}/${sync} in ${store.url}`);
  const summary = (await store.readRunSummary(id)) as RunSummary | undefined;
  if (!summary)
    throw new SynclineError(
      'RunNotFound',
      `no run ${id} of Sync ${options.namespace}/${sync}; recent runs: ${
        runs
          .slice(0, 5)
          .map((r) => r.runId)
          .join(', ') || 'none'
      }`,
    );
  const gz = await store.readRequestLog(id);
  const requests = gz ? filterRequestLog(gunzipSync(gz).toString('utf8'), options.key) : [];
  const rejected = summary.rejected.filter((r) => options.key === undefined || r.key === options.key);
  if (options.output === 'json') {
    out(JSON.stringify({ summary, rejected, requests, requestLogKept: gz !== undefined }));
    return 0;
  }
  out(`run ${id}`);
  out(describeSummary(summary));
  for (const r of rejected) out(`  rejected ${r.operation} ${r.key}: ${r.reason}`);
  if (!gz) out('  no request log kept for this run (none recorded, or older than the retention)');
  else
    out(`  ${requests.length} request(s)${options.key === undefined ? '' : ` touching key ${options.key}`}:`);
  for (const r of requests) {
    out(
      `  ${r.ts} ${r.operation} ${r.target} -> ${r.status ?? r.error ?? '?'} in ${r.latencyMs} ms (keys: ${r.keys.slice(0, 5).join(', ')}${r.keys.length > 5 ? ', …' : ''})`,
    );
    if (r.requestBody) out(`    request: ${r.requestBody}`);
    if (r.responseBody) out(`    response: ${r.responseBody}`);
    if (r.error) out(`    error: ${r.error}`);
  }
  return 0;
}

function outputOption(): Option {
  return new Option('-o, --output <format>', 'text or json (one summary object per Sync)')
    .choices(['text', 'json'])
    .default('text');
}

function addRunOptions(command: Command): Command {
  return command
    .requiredOption(
      '-f, --file <dir>',
      'folder (or file) of YAML resources: Source, Model, Destination, Sync',
    )
    .option(
      '--state-dir <dir>',
      'where snapshots and run summaries are kept (a file:// diff store)',
      DEFAULT_STATE_DIR,
    )
    .option('--sync <name>', 'run only this Sync (name or namespace/name)')
    .option('--full-resync', 'send every row again, ignoring what was sent before')
    .option('--secrets-file <file>', 'YAML: Secret name -> key -> value, or Secret manifests')
    .option('--memory-limit <size>', "DuckDB's memory limit, e.g. 1GB")
    .option('--log-level <level>', 'log level of the JSON logs on stderr', 'warn')
    .addOption(outputOption());
}

export function buildProgram(): Command {
  const program = new Command('syncline')
    .description('Reverse ETL: sync the rows of a SQL model to business tools, sending only what changed.')
    .showHelpAfterError()
    .exitOverride();
  addRunOptions(
    program.command('run').description('run every Sync in the folder once, in dependsOn order'),
  ).action(async (options: RunCommandOptions) => {
    process.exitCode = await runSyncs(options, false);
  });
  addRunOptions(
    program
      .command('plan')
      .description('dry run: what each Sync would send (counts and sample rows); nothing is delivered'),
  ).action(async (options: RunCommandOptions) => {
    process.exitCode = await runSyncs(options, true);
  });
  program
    .command('debug')
    .description('show the summary and request log of a run, optionally only the requests touching one key')
    .argument('<sync>', 'Sync name')
    .argument('[run]', 'run id (default: the latest run)')
    .option(
      '--state-dir <dir>',
      'the diff store: a folder, or a file://, s3:// or gs:// URL',
      DEFAULT_STATE_DIR,
    )
    .option('--key <key>', 'only requests and rejected rows of this primary key')
    .option('-n, --namespace <ns>', 'namespace of the Sync', DEFAULT_NAMESPACE)
    .addOption(outputOption())
    .action(
      async (
        sync: string,
        run: string | undefined,
        options: { stateDir: string; key?: string; namespace: string; output: 'text' | 'json' },
      ) => {
        process.exitCode = await debugRun(sync, run, options);
      },
    );
  program
    .command('job')
    .description('run one plan (env SYNCLINE_RUN_PLAN or --plan FILE): the runner pod entry point')
    .option('--plan <file>', 'the run plan as JSON')
    .action(async (options: { plan?: string }) => {
      process.exitCode = await runJob(options.plan ? { planFile: options.plan } : {});
    });
  program
    .command('check')
    .description('check the connection of a Source or Destination (env SYNCLINE_CHECK_PLAN or --plan FILE)')
    .option('--plan <file>', 'the check plan as JSON')
    .action(async (options: { plan?: string }) => {
      process.exitCode = await runCheck(options.plan ? { planFile: options.plan } : {});
    });
  return program;
}

/** Entry of bin/syncline.mjs. Returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (
      error instanceof Error &&
      'exitCode' in error &&
      typeof (error as { exitCode: unknown }).exitCode === 'number'
    ) {
      return (error as { exitCode: number }).exitCode; // commander already printed help or the usage error
    }
    const { reason, message } = describeError(error);
    process.stderr.write(`syncline: ${message} [${reason}]\n`);
    return 1;
  }
}
