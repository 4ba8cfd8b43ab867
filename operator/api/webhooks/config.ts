import { WEBHOOK_NAME_RE, WEBHOOK_TYPES, type WebhookType } from '../../../crds/index.ts';
import { SynclineError } from '../../../core/errors.ts';

/** One webhook the operator receives deliveries on: `POST /webhooks/v1/<name>`, signed with its secret. */
export interface WebhookConfig {
  name: string;
  type: WebhookType;
  /** The signing secret (the HMAC key). Never logged: log describeWebhooks() instead. */
  secret: string;
}

export const WEBHOOK_SECRET_ENV_PREFIX = 'SYNCLINE_WEBHOOK_SECRET_';

/** The environment variable holding a webhook's secret: SYNCLINE_WEBHOOK_SECRET_DBT_PROD for dbt-prod. */
export function webhookSecretEnv(name: string): string {
  return `${WEBHOOK_SECRET_ENV_PREFIX}${name.toUpperCase().replaceAll('-', '_')}`;
}

const invalidFlag = (message: string) => new SynclineError('InvalidFlag', message);

/**
 * The webhooks of `--webhook NAME=TYPE` (repeatable; an item may also be a comma-separated list, as the
 * SYNCLINE_WEBHOOKS variable holds them), each with its secret from SYNCLINE_WEBHOOK_SECRET_<NAME>.
 * Throws InvalidFlag for a malformed item, WebhookSecretMissing for a webhook without its secret.
 */
export function parseWebhookFlags(
  flags: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): WebhookConfig[] {
  const items = flags
    .flatMap((flag) => flag.split(','))
    .map((item) => item.trim())
    .filter(Boolean);
  const webhooks: WebhookConfig[] = [];
  for (const item of items) {
    const { name, type } = parseItem(item);
    if (webhooks.some((w) => w.name === name))
      throw invalidFlag(`--webhook ${name} is given twice: give each webhook a name of its own`);
    webhooks.push({ name, type, secret: secretOf(name, env) });
  }
  return webhooks;
}

function parseItem(item: string): { name: string; type: WebhookType } {
  const match = /^([^=]*)=(.*)$/.exec(item);
  if (!match)
    throw invalidFlag(
      `--webhook "${item}" is not NAME=TYPE: give e.g. --webhook dbt-prod=dbtCloud or --webhook fivetran=fivetran`,
    );
  const [, name = '', type = ''] = match;
  if (name.length > 63 || !WEBHOOK_NAME_RE.test(name))
    throw invalidFlag(
      `--webhook ${item}: the name "${name}" must be a DNS label (lowercase letters, digits and -, at most 63 characters): it is the last part of the webhook's URL`,
    );
  const known = WEBHOOK_TYPES.find((t) => t === type);
  if (!known) {
    const close = WEBHOOK_TYPES.find((t) => t.toLowerCase() === type.toLowerCase());
    throw invalidFlag(
      `--webhook ${item}: the type "${type}" is not one of ${WEBHOOK_TYPES.join(', ')}${close ? ` (did you mean ${close}?)` : ''}`,
    );
  }
  return { name, type: known };
}

/** A webhook's secret from its variable; one trailing newline (a Secret made from a file) is not part of it. */
function secretOf(name: string, env: Readonly<Record<string, string | undefined>>): string {
  const variable = webhookSecretEnv(name);
  const secret = (env[variable] ?? '').replace(/\r?\n$/, '');
  if (!secret)
    throw new SynclineError(
      'WebhookSecretMissing',
      `webhook ${name} has no secret: set the environment variable ${variable} to its signing secret (the chart fills it from api.webhooks[].secretRef)`,
    );
  return secret;
}

/** The webhooks without their secrets, for logs. */
export function describeWebhooks(webhooks: readonly WebhookConfig[]): { name: string; type: WebhookType }[] {
  return webhooks.map(({ name, type }) => ({ name, type }));
}
