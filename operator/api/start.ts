import { Option, type Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../core/logger.ts';
import type { KubeAccess } from '../runtime/kubeconfig.ts';
import { KubeApiClient } from './kube.ts';
import { describeWebhooks, parseWebhookFlags } from './webhooks/config.ts';
import { webhookRoutes } from './webhooks/routes.ts';
import { startApiServer, type ApiDeps, type ListeningApi } from './server.ts';

export interface ApiFlags {
  /** false with --no-api. */
  api: boolean;
  apiPort: number;
  apiHost: string;
  apiTlsCertFile?: string;
  apiTlsKeyFile?: string;
  apiAudiences?: string;
  apiRateLimit: number;
  /** The built console to serve at /console/ (default operator/console/dist). */
  consoleDir?: string;
  /** `name=type` of each webhook receiver (repeatable, or a comma list in SYNCLINE_WEBHOOKS). */
  webhook?: string[];
}

/** The run API's flags, each with its environment variable, on the operator's command. */
export function addApiOptions(command: Command): Command {
  const num = (v: string) => Number(v);
  const opt = (flags: string, description: string, env: string, fallback?: string | number | boolean) => {
    const o = new Option(flags, description).env(env);
    if (fallback !== undefined) o.default(fallback);
    return o;
  };
  return command
    .addOption(new Option('--no-api', 'serve no run API, webhooks or console').env('SYNCLINE_API_DISABLED'))
    .addOption(
      opt(
        '--api-port <port>',
        'port of the run API, webhooks and console (0: any free port)',
        'SYNCLINE_API_PORT',
        8443,
      ).argParser(num),
    )
    .addOption(opt('--api-host <host>', 'address the run API listens on', 'SYNCLINE_API_HOST', '0.0.0.0'))
    .addOption(
      opt(
        '--api-tls-cert-file <path>',
        'TLS certificate of the run API (PEM; read again every minute)',
        'SYNCLINE_API_TLS_CERT_FILE',
      ),
    )
    .addOption(opt('--api-tls-key-file <path>', 'TLS key of the run API (PEM)', 'SYNCLINE_API_TLS_KEY_FILE'))
    .addOption(
      opt(
        '--api-audiences <list>',
        "comma-separated audiences a bearer token must be for (default: the API server's)",
        'SYNCLINE_API_AUDIENCES',
      ),
    )
    .addOption(
      opt('--api-rate-limit <n>', 'requests per caller per minute', 'SYNCLINE_API_RATE_LIMIT', 120).argParser(
        num,
      ),
    )
    .addOption(
      opt(
        '--console-dir <path>',
        'the built console (npm run build:console) served at /console/',
        'SYNCLINE_CONSOLE_DIR',
      ),
    )
    .addOption(
      new Option(
        '--webhook <name=type>',
        'a webhook receiver, POST /webhooks/v1/<name> (type dbtCloud or fivetran; repeatable); its secret in SYNCLINE_WEBHOOK_SECRET_<NAME>',
      )
        .env('SYNCLINE_WEBHOOKS')
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
    );
}

export interface OperatorApiInput {
  flags: ApiFlags;
  kubeConfig: KubeAccess;
  namespaces: string[];
  log: Logger;
  plugins?: ((app: FastifyInstance, deps: ApiDeps) => Promise<void> | void)[];
}

/** Starts the run API beside the controllers: on every replica, leader or not (it writes through the API server). */
export async function startOperatorApi(input: OperatorApiInput): Promise<ListeningApi | undefined> {
  const { flags } = input;
  if (!flags.api) return undefined;
  if (!!flags.apiTlsCertFile !== !!flags.apiTlsKeyFile)
    throw new Error(
      '--api-tls-cert-file and --api-tls-key-file go together: give both, or neither for plain HTTP',
    );
  // A bad flag or a missing secret stops the operator here, before it serves anything.
  const webhooks = parseWebhookFlags(flags.webhook ?? [], process.env);
  const audiences = (flags.apiAudiences ?? '')
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  const api = await startApiServer({
    kube: new KubeApiClient(input.kubeConfig, input.namespaces),
    log: input.log.child({ component: 'api' }),
    auth: { audiences },
    rateLimitPerMinute: flags.apiRateLimit,
    port: flags.apiPort,
    host: flags.apiHost,
    ...(flags.apiTlsCertFile && flags.apiTlsKeyFile
      ? { tls: { certFile: flags.apiTlsCertFile, keyFile: flags.apiTlsKeyFile } }
      : {}),
    plugins: [webhookRoutes(webhooks), ...(input.plugins ?? [])],
  });
  input.log.info(
    { port: api.port, tls: !!flags.apiTlsCertFile, webhooks: describeWebhooks(webhooks) },
    'run API listening',
  );
  return api;
}
