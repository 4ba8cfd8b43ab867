// The operator's entry: `node operator/main.ts [flags]` (each flag also reads an env var, for Helm).
import { Command, Option } from 'commander';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { pathToFileURL } from 'node:url';
import type { SecretKeySelector } from '../crds/index.ts';
import { SynclineError } from '../core/errors.ts';
import type { DiffStoreSettings } from '../core/plan.ts';
import { secretResolver } from '../core/secrets.ts';
import { defaultConfig, type OperatorConfig, type ResourceRequirements } from './config.ts';
import { checkMaximums, resourcesProblem } from './runner-policy.ts';
import { Manager } from './manager.ts';
import { SynclineMetrics } from './metrics.ts';
import { LeaderElector } from './runtime/leader.ts';
import { loadKubeAccess } from './runtime/kubeconfig.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { RuntimeMetrics } from './runtime/metrics.ts';
import { startHealthServer } from './runtime/server.ts';
import { addApiOptions, startOperatorApi, type ApiFlags } from './api/start.ts';
import { consoleRoutes } from './api/routes-console.ts';

export interface OperatorFlags extends ApiFlags {
  kubeconfig?: string;
  namespaces: string;
  diffStoreUrl: string;
  diffStoreS3Region?: string;
  diffStoreS3Endpoint?: string;
  diffStoreS3ForcePathStyle?: boolean;
  diffStoreS3AccessKeyId?: string;
  diffStoreS3SecretAccessKey?: string;
  diffStoreGcsKey?: string;
  diffStoreGcsEndpoint?: string;
  diffStorePvc?: string;
  diffStoreNamespaceSecret?: string;
  runnerImage: string;
  runnerCommand: string;
  runnerImagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  runnerResources?: string;
  runnerMaxResources?: string;
  runnerDeadlineSeconds: number;
  runnerMaxDeadlineSeconds?: number;
  runnerTtlSeconds: number;
  runnerMemoryLimit?: string;
  runnerServiceAccount?: string;
  runnerEnv?: string;
  podStartTimeoutSeconds: number;
  finalizerTimeoutSeconds: number;
  checkIntervalSeconds: number;
  checkRetrySeconds: number;
  checkDeadlineSeconds: number;
  metricsPort: number;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
  identity?: string;
  workers: number;
  resyncSeconds: number;
}

/** `secret/key` → a secretKeyRef. */
function secretRef(flag: string, text: string | undefined): { secretKeyRef: SecretKeySelector } | undefined {
  if (!text) return undefined;
  const [name, key, ...rest] = text.split('/');
  if (!name || !key || rest.length > 0) {
    throw new SynclineError(
      'InvalidFlag',
      `${flag} must be <secret-name>/<key>, e.g. syncline-store/secretAccessKey`,
    );
  }
  return { secretKeyRef: { name, key } };
}

function json<T>(flag: string, text: string | undefined): T | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new SynclineError('InvalidFlag', `${flag} must be JSON: ${String(error)}`);
  }
}

/**
 * The runner's default resources and the maximums a Sync may ask for; the defaults themselves must be
 * within the maximums, or the operator would refuse the Syncs that set nothing.
 */
function runnerLimits(
  flags: OperatorFlags,
  fallback: ResourceRequirements,
): Pick<OperatorConfig['runner'], 'resources' | 'maxResources' | 'maxActiveDeadlineSeconds'> {
  const resources = json<ResourceRequirements>('--runner-resources', flags.runnerResources) ?? fallback;
  const maxResources = json<Record<string, string>>('--runner-max-resources', flags.runnerMaxResources);
  if (maxResources !== undefined) {
    if (typeof maxResources !== 'object' || maxResources === null || Array.isArray(maxResources))
      throw new SynclineError(
        'InvalidFlag',
        '--runner-max-resources must be a JSON object, e.g. {"memory":"16Gi"}',
      );
    checkMaximums('--runner-max-resources', maxResources);
  }
  const problem = resourcesProblem(resources, maxResources ?? {}, '--runner-resources');
  if (problem) throw new SynclineError('InvalidFlag', `${problem}: lower the default or raise the maximum`);
  const maxDeadline = flags.runnerMaxDeadlineSeconds;
  if (maxDeadline !== undefined) {
    if (!Number.isInteger(maxDeadline) || maxDeadline < 30)
      throw new SynclineError(
        'InvalidFlag',
        '--runner-max-deadline-seconds must be a whole number of seconds, at least 30',
      );
    if (flags.runnerDeadlineSeconds > maxDeadline)
      throw new SynclineError(
        'InvalidFlag',
        `--runner-deadline-seconds (${flags.runnerDeadlineSeconds}) is above --runner-max-deadline-seconds (${maxDeadline})`,
      );
  }
  return {
    resources,
    ...(maxResources && Object.keys(maxResources).length > 0 ? { maxResources } : {}),
    ...(maxDeadline !== undefined ? { maxActiveDeadlineSeconds: maxDeadline } : {}),
  };
}

export function configFromFlags(flags: OperatorFlags): OperatorConfig {
  const accessKeyId = secretRef('--diff-store-s3-access-key-id', flags.diffStoreS3AccessKeyId);
  const secretAccessKey = secretRef('--diff-store-s3-secret-access-key', flags.diffStoreS3SecretAccessKey);
  const gcsKey = secretRef('--diff-store-gcs-key', flags.diffStoreGcsKey);
  const diffStore: DiffStoreSettings = { url: flags.diffStoreUrl };
  if (flags.diffStoreUrl.startsWith('s3://')) {
    diffStore.s3 = {
      ...(flags.diffStoreS3Region ? { region: flags.diffStoreS3Region } : {}),
      ...(flags.diffStoreS3Endpoint ? { endpoint: flags.diffStoreS3Endpoint } : {}),
      ...(flags.diffStoreS3ForcePathStyle ? { forcePathStyle: true } : {}),
      ...(accessKeyId ? { accessKeyId } : {}),
      ...(secretAccessKey ? { secretAccessKey } : {}),
    };
  }
  if (flags.diffStoreUrl.startsWith('gs://')) {
    diffStore.gcs = {
      ...(flags.diffStoreGcsEndpoint ? { endpoint: flags.diffStoreGcsEndpoint } : {}),
      ...(gcsKey ? { serviceAccountKey: gcsKey } : {}),
    };
  }
  const defaults = defaultConfig();
  const runner = runnerLimits(flags, defaults.runner.resources);
  return defaultConfig({
    namespaces: flags.namespaces
      .split(',')
      .map((n) => n.trim())
      .filter(Boolean),
    runnerImage: flags.runnerImage,
    ...(flags.runnerImagePullPolicy ? { imagePullPolicy: flags.runnerImagePullPolicy } : {}),
    runnerCommand: flags.runnerCommand.split(' ').filter(Boolean),
    diffStore,
    ...(flags.diffStorePvc ? { diffStoreVolumeClaim: flags.diffStorePvc } : {}),
    ...(flags.diffStoreNamespaceSecret ? { diffStoreNamespaceSecret: flags.diffStoreNamespaceSecret } : {}),
    runner: {
      ...runner,
      activeDeadlineSeconds: flags.runnerDeadlineSeconds,
      ttlSecondsAfterFinished: flags.runnerTtlSeconds,
      ...(flags.runnerMemoryLimit ? { memoryLimit: flags.runnerMemoryLimit } : {}),
      ...(flags.runnerServiceAccount ? { serviceAccountName: flags.runnerServiceAccount } : {}),
      ...(flags.runnerEnv
        ? { env: json<Record<string, string>>('--runner-env', flags.runnerEnv) ?? {} }
        : {}),
    },
    check: {
      activeDeadlineSeconds: flags.checkDeadlineSeconds,
      recheckIntervalMs: flags.checkIntervalSeconds * 1000,
      retryIntervalMs: flags.checkRetrySeconds * 1000,
    },
    podStartTimeoutMs: flags.podStartTimeoutSeconds * 1000,
    finalizerTimeoutMs: flags.finalizerTimeoutSeconds * 1000,
  });
}

export function operatorCommand(): Command {
  const num = (v: string) => Number(v);
  const opt = (flags: string, description: string, env: string, fallback?: string | number | boolean) => {
    const o = new Option(flags, description).env(env);
    if (fallback !== undefined) o.default(fallback);
    return o;
  };
  const command = new Command('operator')
    .description(
      'Run the Syncline operator: reconcile Sources, Models, Destinations and Syncs; run Syncs as Jobs.',
    )
    .addOption(
      opt('--kubeconfig <path>', 'kubeconfig (default: in-cluster, then ~/.kube/config)', 'KUBECONFIG'),
    )
    .addOption(
      opt(
        '--namespaces <list>',
        'comma-separated namespaces to watch; empty for all',
        'SYNCLINE_WATCH_NAMESPACES',
        '',
      ),
    )
    .addOption(
      opt(
        '--diff-store-url <url>',
        's3://, gs:// or file:// URL of the diff store',
        'SYNCLINE_DIFF_STORE_URL',
        'file:///var/lib/syncline/diffstore',
      ),
    )
    .addOption(opt('--diff-store-s3-region <region>', 'S3 region', 'SYNCLINE_DIFF_STORE_S3_REGION'))
    .addOption(
      opt('--diff-store-s3-endpoint <url>', 'S3-compatible endpoint', 'SYNCLINE_DIFF_STORE_S3_ENDPOINT'),
    )
    .addOption(
      opt(
        '--diff-store-s3-force-path-style',
        'path-style S3 addressing',
        'SYNCLINE_DIFF_STORE_S3_FORCE_PATH_STYLE',
      ),
    )
    .addOption(
      opt(
        '--diff-store-s3-access-key-id <secret/key>',
        'Secret key holding the access key ID',
        'SYNCLINE_DIFF_STORE_S3_ACCESS_KEY_ID_REF',
      ),
    )
    .addOption(
      opt(
        '--diff-store-s3-secret-access-key <secret/key>',
        'Secret key holding the secret access key',
        'SYNCLINE_DIFF_STORE_S3_SECRET_ACCESS_KEY_REF',
      ),
    )
    .addOption(
      opt(
        '--diff-store-gcs-key <secret/key>',
        'Secret key holding a GCS service-account key',
        'SYNCLINE_DIFF_STORE_GCS_KEY_REF',
      ),
    )
    .addOption(
      opt('--diff-store-gcs-endpoint <url>', 'GCS endpoint (emulators)', 'SYNCLINE_DIFF_STORE_GCS_ENDPOINT'),
    )
    .addOption(
      opt(
        '--diff-store-pvc <claim>',
        'PVC mounted at a file:// diff store in runner pods',
        'SYNCLINE_DIFF_STORE_PVC',
      ),
    )
    .addOption(
      opt(
        '--diff-store-namespace-secret <name>',
        "a Secret of this name in each Sync's namespace holds that namespace's own diff-store credentials " +
          '(keys accessKeyId and secretAccessKey, or serviceAccountKey), given to its runner pods instead of ' +
          "the operator's",
        'SYNCLINE_DIFF_STORE_NAMESPACE_SECRET',
      ),
    )
    .addOption(
      opt(
        '--runner-image <image>',
        'image of runner Jobs',
        'SYNCLINE_RUNNER_IMAGE',
        'ghcr.io/syncline/syncline:latest',
      ),
    )
    .addOption(
      opt(
        '--runner-command <cmd>',
        'runner command before its subcommand',
        'SYNCLINE_RUNNER_COMMAND',
        'node /app/bin/syncline.mjs',
      ),
    )
    .addOption(
      opt(
        '--runner-image-pull-policy <policy>',
        'Always, IfNotPresent or Never',
        'SYNCLINE_RUNNER_IMAGE_PULL_POLICY',
      ),
    )
    .addOption(
      opt(
        '--runner-resources <json>',
        'default resources of runner containers, as JSON',
        'SYNCLINE_RUNNER_RESOURCES',
      ),
    )
    .addOption(
      opt(
        '--runner-max-resources <json>',
        "the most a Sync's spec.runner.resources may request or limit, e.g. " +
          '{"cpu":"4","memory":"16Gi","ephemeral-storage":"50Gi"}; a resource with a maximum and no limit gets the maximum as its limit',
        'SYNCLINE_RUNNER_MAX_RESOURCES',
      ),
    )
    .addOption(
      opt(
        '--runner-max-deadline-seconds <s>',
        'the longest spec.runner.activeDeadlineSeconds a Sync may set',
        'SYNCLINE_RUNNER_MAX_DEADLINE_SECONDS',
      ).argParser(num),
    )
    .addOption(
      opt(
        '--runner-deadline-seconds <s>',
        'default activeDeadlineSeconds of a run',
        'SYNCLINE_RUNNER_DEADLINE_SECONDS',
        3600,
      ).argParser(num),
    )
    .addOption(
      opt(
        '--runner-ttl-seconds <s>',
        'ttlSecondsAfterFinished of runner Jobs',
        'SYNCLINE_RUNNER_TTL_SECONDS',
        86_400,
      ).argParser(num),
    )
    .addOption(
      opt(
        '--runner-memory-limit <size>',
        'default DuckDB memory limit, e.g. 1GB',
        'SYNCLINE_RUNNER_MEMORY_LIMIT',
      ),
    )
    .addOption(
      opt(
        '--runner-service-account <name>',
        'service account of runner pods (no token is mounted)',
        'SYNCLINE_RUNNER_SERVICE_ACCOUNT',
      ),
    )
    .addOption(
      opt('--runner-env <json>', 'extra non-secret env of runner containers, as JSON', 'SYNCLINE_RUNNER_ENV'),
    )
    .addOption(
      opt(
        '--pod-start-timeout-seconds <s>',
        'fail a run whose pod cannot start for this long',
        'SYNCLINE_POD_START_TIMEOUT_SECONDS',
        120,
      ).argParser(num),
    )
    .addOption(
      opt(
        '--finalizer-timeout-seconds <s>',
        'longest a snapshot clean-up may hold up deletion',
        'SYNCLINE_FINALIZER_TIMEOUT_SECONDS',
        300,
      ).argParser(num),
    )
    .addOption(
      opt(
        '--check-interval-seconds <s>',
        'check Ready connections again after this long',
        'SYNCLINE_CHECK_INTERVAL_SECONDS',
        1800,
      ).argParser(num),
    )
    .addOption(
      opt(
        '--check-retry-seconds <s>',
        'check failed connections again after this long',
        'SYNCLINE_CHECK_RETRY_SECONDS',
        60,
      ).argParser(num),
    )
    .addOption(
      opt(
        '--check-deadline-seconds <s>',
        'activeDeadlineSeconds of check Jobs',
        'SYNCLINE_CHECK_DEADLINE_SECONDS',
        120,
      ).argParser(num),
    )
    .addOption(
      opt(
        '--metrics-port <port>',
        '/metrics, /healthz and /readyz port (0: any free port)',
        'SYNCLINE_METRICS_PORT',
        8080,
      ).argParser(num),
    )
    .addOption(opt('--leader-elect', 'elect a leader through a Lease', 'SYNCLINE_LEADER_ELECT', true))
    .addOption(new Option('--no-leader-elect', 'run without leader election (one replica only)'))
    .addOption(
      opt(
        '--lease-namespace <ns>',
        'namespace of the leader Lease',
        'SYNCLINE_LEASE_NAMESPACE',
        'syncline-system',
      ),
    )
    .addOption(
      opt('--lease-name <name>', 'name of the leader Lease', 'SYNCLINE_LEASE_NAME', 'syncline-operator'),
    )
    .addOption(
      opt('--lease-duration-seconds <s>', 'lease duration', 'SYNCLINE_LEASE_DURATION_SECONDS', 15).argParser(
        num,
      ),
    )
    .addOption(
      opt('--renew-deadline-seconds <s>', 'renew deadline', 'SYNCLINE_RENEW_DEADLINE_SECONDS', 10).argParser(
        num,
      ),
    )
    .addOption(
      opt('--retry-period-seconds <s>', 'retry period', 'SYNCLINE_RETRY_PERIOD_SECONDS', 2).argParser(num),
    )
    .addOption(
      opt('--identity <id>', 'leader-election identity (default: host name + random suffix)', 'POD_NAME'),
    )
    .addOption(opt('--workers <n>', 'concurrent reconciles per kind', 'SYNCLINE_WORKERS', 4).argParser(num))
    .addOption(
      opt(
        '--resync-seconds <s>',
        'reconcile every object at least this often',
        'SYNCLINE_RESYNC_SECONDS',
        600,
      ).argParser(num),
    );
  return addApiOptions(command);
}

/**
 * Runs the operator until SIGTERM/SIGINT: health server first, then (as leader, or at once without
 * leader election) the controllers. On a signal: stop taking work, let reconciles in flight finish,
 * release the lease, exit 0. Losing the lease stops the controllers and campaigns again, in-process.
 */
export async function runOperator(
  flags: OperatorFlags,
  log: Logger = createLogger({ name: 'syncline-operator' }),
): Promise<void> {
  const config = configFromFlags(flags);
  const kubeConfig = await loadKubeAccess(flags.kubeconfig);
  const identity = flags.identity
    ? `${flags.identity}_${randomBytes(3).toString('hex')}`
    : `${hostname()}_${randomBytes(4).toString('hex')}`;
  const runtimeMetrics = new RuntimeMetrics();
  const metrics = new SynclineMetrics(runtimeMetrics.registry);
  const secrets = secretResolver(process.env);
  let manager: Manager | undefined;
  let leading = false;
  let stopping = false;

  const health = await startHealthServer({
    port: flags.metricsPort,
    registry: runtimeMetrics.registry,
    isHealthy: () => true,
    isReady: () => !leading || (manager?.hasSynced() ?? false),
  });
  log.info(
    { port: health.port, identity, namespaces: config.namespaces, leaderElect: flags.leaderElect },
    'operator started',
  );
  const api = await startOperatorApi({
    flags,
    kubeConfig,
    namespaces: config.namespaces,
    log,
    plugins: [consoleRoutes({ config, secrets, ...(flags.consoleDir ? { distDir: flags.consoleDir } : {}) })],
  });

  const newManager = () =>
    new Manager({
      kubeConfig,
      config,
      log,
      runtimeMetrics,
      metrics,
      identity,
      secrets,
      workers: flags.workers,
      resyncPeriodMs: flags.resyncSeconds * 1000,
    });

  const lead = async (signal: AbortSignal) => {
    leading = true;
    metrics.leader.set(1);
    manager = newManager();
    try {
      await manager.start();
      log.info('leading: reconciling');
      if (!signal.aborted)
        await new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => resolve(), { once: true }),
        );
    } finally {
      await manager.stop();
      metrics.leader.set(0);
      leading = false;
    }
  };

  const shutdown = new AbortController();
  let elector: LeaderElector | undefined;
  const onSignal = (name: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: name }, 'shutting down');
    shutdown.abort();
    void elector?.stop();
  };
  // `on`, not `once`: libraries that use signal-exit re-raise a signal when no other listener is left,
  // which would kill the process in the middle of its graceful shutdown.
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  if (!flags.leaderElect) {
    await lead(shutdown.signal);
  } else {
    while (!stopping) {
      elector = new LeaderElector({
        kubeConfig,
        namespace: flags.leaseNamespace,
        name: flags.leaseName,
        identity,
        leaseDurationMs: flags.leaseDurationSeconds * 1000,
        renewDeadlineMs: flags.renewDeadlineSeconds * 1000,
        retryPeriodMs: flags.retryPeriodSeconds * 1000,
        log,
        metrics: runtimeMetrics,
      });
      await elector.run({
        onStartedLeading: (signal) => lead(signal),
        onStoppedLeading: () => log.info('stopped leading'),
      });
      if (!stopping) log.warn('lost the lease; campaigning again');
    }
  }
  await api?.close();
  await health.close();
  log.info({ apiRequests: manager?.cluster.requests }, 'operator stopped');
}

async function main(): Promise<void> {
  const command = operatorCommand();
  command.parse(process.argv);
  const log = createLogger({ name: 'syncline-operator' });
  try {
    await runOperator(command.opts<OperatorFlags>(), log);
    process.exit(0);
  } catch (error) {
    log.error({ err: error instanceof Error ? error.message : String(error) }, 'operator failed');
    process.exit(1);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) void main();
