import { Command, InvalidArgumentError, Option } from 'commander';
import { MEMORY_LIMIT_MESSAGE, MEMORY_LIMIT_RE, runsAfter } from '../../crds/index.ts';
import { describeError, SynclineError } from '../../core/errors.ts';
import { runSegmentCount } from '../count-segment.ts';
import { runSnapshotDrop } from '../drop-snapshot.ts';
import { runCheck, runJob } from '../job.ts';
import { createLogger } from '../../core/logger.ts';
import { describeSummary } from '../report.ts';
import { executeRun } from '../run.ts';
import { secretResolver } from '../../core/secrets.ts';
import type { RunSummary } from '../../core/summary.ts';
import { checkCapabilities } from './capabilities.ts';
import { debugRun, type DebugOptions } from './debug.ts';
import { createOutput, type Output } from './output.ts';
import { buildRunPlan, dependencyOrder } from './plans.ts';
import { terminalProgress } from './progress.ts';
import { DEFAULT_NAMESPACE, keyOf, loadResources, loadSecretsFile, type ResourceSet } from './resources.ts';
import { removeStaleRunFolders } from './stale-runs.ts';

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

/** pino's levels: what --log-level accepts. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

let stdout: Output | undefined;
function out(text: string): void {
  stdout ??= createOutput();
  stdout.line(text);
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

/** Secrets from the folder's Secret manifests and the secrets file; errors say which one a value came from. */
function localSecrets(set: ResourceSet, secretsFile: string | undefined) {
  const fromFile = secretsFile ? loadSecretsFile(secretsFile) : {};
  const secrets = { ...set.secrets, ...fromFile };
  return secretResolver(process.env, secrets, (ref) =>
    fromFile[ref.name]?.[ref.key] !== undefined
      ? `the secrets file ${secretsFile}`
      : set.secretFiles[ref.name] && `the Secret manifest "${ref.name}" in ${set.secretFiles[ref.name]}`,
  );
}

/** A result that is not a run: a Sync skipped, or not run because a dependency failed. */
function printNotRun(key: string, output: 'text' | 'json', result: string, reason: string, message: string) {
  if (output === 'json') out(JSON.stringify({ sync: key, result, reason, message }));
  else out(`${key.split('/')[1]}: ${result} (${reason})\n  ${message}`);
}

async function runSyncs(options: RunCommandOptions, dryRun: boolean): Promise<number> {
  const set = loadResources(options.file);
  await checkCapabilities(set, options.file);
  const secrets = localSecrets(set, options.secretsFile);
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
  const log = createLogger({ name: 'syncline-runner', fd: 2, level: options.logLevel });
  const stale = removeStaleRunFolders();
  if (stale.length > 0) log.info({ folders: stale }, 'removed the temp folders of killed runs');
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const failed = new Set<string>();
  try {
    for (const key of order) {
      const sync = set.syncs.get(key)?.object;
      if (sync?.spec.paused) {
        // As in a cluster, where a paused Sync starts no run, not even a requested one.
        const message = `not run: spec.paused is true (set it to false, or remove it, to run this Sync)`;
        printNotRun(key, options.output, 'Skipped', 'SyncPaused', message);
        continue;
      }
      // As in a cluster: a failed Sync holds back the Syncs that run after it, unless onFailure is continue.
      const after = sync ? runsAfter(sync.spec) : undefined;
      const blocked =
        after?.onFailure === 'stop'
          ? after.names.find((name) => failed.has(keyOf(key.split('/')[0], name)))
          : undefined;
      if (blocked && !dryRun) {
        failed.add(key);
        const message = `not run: it depends on Sync ${blocked}, which failed`;
        printNotRun(key, options.output, 'Failed', 'DependencyFailed', message);
        continue;
      }
      const plan = buildRunPlan(set, key, {
        stateDir: options.stateDir,
        fullResync: options.fullResync ?? false,
        dryRun,
        ...(options.memoryLimit ? { memoryLimit: options.memoryLimit } : {}),
      });
      const model = set.models.get(keyOf(key.split('/')[0], plan.model.name))?.object;
      if (dryRun && options.output === 'text' && model?.spec.segment)
        out(`Model ${plan.model.name} is a segment; its compiled SQL:\n  ${plan.model.spec.query ?? ''}`);
      const progress = terminalProgress(plan.sync.name);
      const summary = await executeRun(plan, {
        secrets,
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

function outputOption(): Option {
  return new Option('-o, --output <format>', 'text or json (one summary object per Sync)')
    .choices(['text', 'json'])
    .default('text');
}

function memoryLimit(value: string): string {
  if (!MEMORY_LIMIT_RE.test(value))
    throw new InvalidArgumentError(`The memory limit ${MEMORY_LIMIT_MESSAGE}.`);
  return value;
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
    .option('--memory-limit <size>', "DuckDB's memory limit, e.g. 512MB, 1GB or 320MiB", memoryLimit)
    .addOption(
      new Option('--log-level <level>', 'log level of the JSON logs on stderr')
        .choices(LOG_LEVELS)
        .default('warn'),
    )
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
    .action(async (sync: string, run: string | undefined, options: DebugOptions) => {
      process.exitCode = await debugRun(sync, run, options, out);
    });
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
  program
    .command('drop-snapshot')
    .description(
      "drop a deleted Sync's warehouse snapshot tables (env SYNCLINE_DROP_PLAN or --plan FILE): the operator's cleanup Job",
    )
    .option('--plan <file>', 'the drop plan as JSON')
    .action(async (options: { plan?: string }) => {
      process.exitCode = await runSnapshotDrop(options.plan ? { planFile: options.plan } : {});
    });
  program
    .command('count-segment')
    .description(
      "count a segment Model's members on its Source (env SYNCLINE_COUNT_PLAN or --plan FILE): the operator's size-preview Job",
    )
    .option('--plan <file>', 'the count plan as JSON')
    .action(async (options: { plan?: string }) => {
      process.exitCode = await runSegmentCount(options.plan ? { planFile: options.plan } : {});
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
