// `kubectl syncline`: a kubectl plugin (the kubectl-syncline executable) for Syncline's resources.
import { Command, InvalidArgumentError, Option } from 'commander';
import { describeError } from '../core/errors.ts';
import { PluginCluster } from './cluster.ts';
import { debug, fields, plan, runs, status, terminalConfirm, type Io } from './commands.ts';
import type { OutputFormat } from './format.ts';
import { EXIT_CODES_HELP, parseDuration, trigger } from './trigger.ts';

interface CommonOptions {
  namespace?: string;
  kubeconfig?: string;
  context?: string;
  output: OutputFormat;
}

function withCommon(command: Command): Command {
  return command
    .option('-n, --namespace <namespace>', "namespace of the Sync (default: your context's namespace)")
    .option('--kubeconfig <file>', 'kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .addOption(
      new Option('-o, --output <format>', 'output format').choices(['text', 'json', 'yaml']).default('text'),
    );
}

function connect(options: CommonOptions): PluginCluster {
  return new PluginCluster({
    ...(options.namespace ? { namespace: options.namespace } : {}),
    ...(options.kubeconfig ? { kubeconfig: options.kubeconfig } : {}),
    ...(options.context ? { context: options.context } : {}),
  });
}

interface TriggerFlags {
  yes?: boolean;
  wait?: boolean;
  timeout: number;
}

const waitOption = () => new Option('--wait', 'wait until the run finishes; the exit code says how it ended');
const timeoutOption = () =>
  new Option('--timeout <duration>', 'how long --wait waits (30s, 10m, 1h30m)')
    .default(30 * 60_000, '30m')
    .argParser((value) => {
      const ms = parseDuration(value);
      if (ms === undefined) throw new InvalidArgumentError('a duration like 30s, 10m or 1h30m');
      return ms;
    });

const triggerOptions = (flags: TriggerFlags, resync: boolean) => ({
  resync,
  yes: flags.yes ?? false,
  wait: flags.wait ?? false,
  timeoutMs: flags.timeout,
});

/** The exit code an action sets (trigger --wait); 0 unless it says otherwise. */
export interface PluginOutcome {
  exitCode: number;
}

export function buildPlugin(io: Io, outcome: PluginOutcome = { exitCode: 0 }): Command {
  const program = new Command('kubectl syncline')
    .description('Syncline, from kubectl: trigger and inspect Syncs, and the fields of Destinations.')
    .showHelpAfterError('(kubectl syncline --help lists the commands)')
    .configureOutput({
      writeOut: (text) => io.out(text.trimEnd()),
      writeErr: (text) => process.stderr.write(text),
    })
    .exitOverride();

  withCommon(program.command('status'))
    .description('All Syncs at a glance: ready, last result, rows, last success, next run.')
    .option('-A, --all-namespaces', 'Syncs of every namespace')
    .action(async (options: CommonOptions & { allNamespaces?: boolean }) =>
      status(connect(options), options.allNamespaces ?? false, options.output, io),
    );

  withCommon(program.command('trigger').argument('<sync>', 'name of the Sync'))
    .description(
      'Run a Sync now, whatever its schedule, and print the run ID (the request the run API makes: ' +
        'the syncline.io/run-requested-at annotation and the run ledger); --wait follows the run to its end.',
    )
    .option(
      '--resync',
      'a full resync: send every row again, ignoring what was sent before (asks for confirmation)',
    )
    .option('-y, --yes', 'do not ask for confirmation of --resync')
    .addOption(waitOption())
    .addOption(timeoutOption())
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(async (name: string, options: CommonOptions & TriggerFlags & { resync?: boolean }) => {
      outcome.exitCode = await trigger(
        connect(options),
        name,
        triggerOptions(options, options.resync ?? false),
        options.output,
        io,
      );
    });

  withCommon(program.command('resync').argument('<sync>', 'name of the Sync'))
    .description(
      'Send every row again on the next run, ignoring what was sent before (asks for confirmation); the same as trigger --resync.',
    )
    .option('-y, --yes', 'do not ask for confirmation')
    .addOption(waitOption())
    .addOption(timeoutOption())
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(async (name: string, options: CommonOptions & TriggerFlags) => {
      outcome.exitCode = await trigger(
        connect(options),
        name,
        triggerOptions(options, true),
        options.output,
        io,
      );
    });

  withCommon(program.command('plan').argument('<sync>', 'name of the Sync'))
    .description(
      'What the next run would send: counts and sample rows. Runs the query and diff on this machine; delivers nothing.',
    )
    .option('--diff-store <url>', "the operator's diff store (default: found from the operator's Deployment)")
    .option('--sample <n>', 'sample rows per operation', (v) => Number(v), 5)
    .action(async (name: string, options: CommonOptions & { diffStore?: string; sample: number }) =>
      plan(
        connect(options),
        name,
        { ...(options.diffStore ? { diffStore: options.diffStore } : {}), sample: options.sample },
        options.output,
        io,
      ),
    );

  withCommon(program.command('runs').argument('<sync>', 'name of the Sync'))
    .description('Run history of a Sync: result, duration and row counts of each run.')
    .action(async (name: string, options: CommonOptions) => runs(connect(options), name, options.output, io));

  withCommon(
    program
      .command('debug')
      .argument('<sync>', 'name of the Sync')
      .argument('[run]', 'run id (default: the last run)'),
  )
    .description('The record of one run from the diff store: timings, rejected rows with reasons, requests.')
    .option('--diff-store <url>', "the operator's diff store (default: found from the operator's Deployment)")
    .option('--key <key>', 'only what concerns this primary key')
    .action(
      async (
        name: string,
        run: string | undefined,
        options: CommonOptions & { diffStore?: string; key?: string },
      ) =>
        debug(
          connect(options),
          name,
          run,
          {
            ...(options.diffStore ? { diffStore: options.diffStore } : {}),
            ...(options.key ? { key: options.key } : {}),
          },
          options.output,
          io,
        ),
    );
  withCommon(
    program
      .command('fields')
      .argument('<destination>', 'name of the Destination')
      .argument('<object>', 'object of the destination (e.g. contacts, Contact)'),
  )
    .description(
      "An object's fields as the Destination's connection check discovered them (name, type, required, unique, read-only, options), like kubectl explain.",
    )
    .option('--diff-store <url>', "the operator's diff store (default: found from the operator's Deployment)")
    .action(async (destination: string, object: string, options: CommonOptions & { diffStore?: string }) =>
      fields(
        connect(options),
        destination,
        object,
        options.diffStore ? { diffStore: options.diffStore } : {},
        options.output,
        io,
      ),
    );
  return program;
}

/** Runs the plugin; returns the exit code. Errors are one line (or a few) a person can act on. */
export async function main(
  argv: string[],
  io: Io = { out: (t) => process.stdout.write(`${t}\n`), confirm: terminalConfirm() },
): Promise<number> {
  const outcome: PluginOutcome = { exitCode: 0 };
  const program = buildPlugin(io, outcome);
  if (argv.length <= 2) {
    io.out(program.helpInformation().trimEnd());
    return 0;
  }
  try {
    await program.parseAsync(argv);
    return outcome.exitCode;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.help' || code === 'commander.version')
      return 0;
    if (code?.startsWith('commander.')) return 2;
    const { reason, message } = describeError(error);
    process.stderr.write(`error: ${message} (${reason})\n`);
    return 1;
  }
}
