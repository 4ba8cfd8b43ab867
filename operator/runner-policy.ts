// What an administrator allows a Sync's runner: the most resources and the longest deadline a Sync may
// ask for, and where in the diff store it may keep its state (its namespace's prefix, and no further).
import { sep } from 'node:path';
import type { Sync } from '../crds/index.ts';
import { SynclineError } from '../core/errors.ts';
import type { DiffStoreSettings } from '../core/plan.ts';
import { parseStorageUrl, type StorageLocation } from '../core/storage/url.ts';
import type { OperatorConfig, ResourceRequirements } from './config.ts';

// ---- Kubernetes quantities ----

/** `<number><suffix>` as the API server accepts it (k8s.io/apimachinery resource.Quantity). */
const QUANTITY = /^([+-]?)(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;
const BINARY: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL: Record<string, number> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/** An exact value: numerator / denominator, both positive powers-of-ten-or-two scaled BigInts. */
interface Exact {
  num: bigint;
  den: bigint;
}

/** The exact value of a quantity such as `500m`, `1.5Gi` or `1e3`; undefined when it is not one. */
export function parseQuantity(text: string): Exact | undefined {
  const match = QUANTITY.exec(text.trim());
  if (!match) return undefined;
  const [, sign = '', digits = '', suffix = ''] = match;
  const [whole = '', fraction = ''] = digits.split('.');
  let num = BigInt(`${whole || '0'}${fraction}`) * (sign === '-' ? -1n : 1n);
  let den = 10n ** BigInt(fraction.length);
  let exponent = 0;
  if (suffix in BINARY) num *= 1024n ** BigInt(BINARY[suffix] ?? 0);
  else if (suffix in DECIMAL) exponent = DECIMAL[suffix] ?? 0;
  else if (suffix) exponent = Number(suffix.slice(1));
  if (Math.abs(exponent) > 64) return undefined;
  if (exponent >= 0) num *= 10n ** BigInt(exponent);
  else den *= 10n ** BigInt(-exponent);
  return { num, den };
}

/** -1, 0 or 1 as a < b, a = b, a > b. */
function compare(a: Exact, b: Exact): number {
  const left = a.num * b.den;
  const right = b.num * a.den;
  return left < right ? -1 : left > right ? 1 : 0;
}

// ---- resources and deadline ----

export type Maximums = Record<string, string>;

/** Checks that every maximum is a quantity; throws InvalidFlag naming the bad one. */
export function checkMaximums(flag: string, maximums: Maximums): void {
  for (const [name, value] of Object.entries(maximums)) {
    if (typeof value !== 'string' || !parseQuantity(value)) {
      throw new SynclineError(
        'InvalidFlag',
        `${flag}: "${name}" is ${JSON.stringify(value)}, not a Kubernetes quantity (e.g. "4", "500m", "16Gi")`,
      );
    }
  }
}

/**
 * The first request or limit of `resources` that is not a quantity or exceeds its maximum, as a
 * sentence naming the field, the value and the maximum; undefined when all are within.
 */
export function resourcesProblem(
  resources: ResourceRequirements,
  maximums: Maximums,
  field: string,
): string | undefined {
  for (const kind of ['requests', 'limits'] as const) {
    for (const [name, value] of Object.entries(resources[kind] ?? {})) {
      const quantity = parseQuantity(value);
      if (!quantity) return `${field}.${kind}.${name} is "${value}", which is not a Kubernetes quantity`;
      const max = maximums[name];
      const maxQuantity = max === undefined ? undefined : parseQuantity(max);
      if (max !== undefined && maxQuantity && compare(quantity, maxQuantity) > 0) {
        return `${field}.${kind}.${name} is ${value}, above the maximum of ${max} that the operator allows (--runner-max-resources)`;
      }
    }
  }
  return undefined;
}

/**
 * The resources of a runner container: the Sync's own, or the operator's default. A resource with a
 * maximum and no limit gets the maximum as its limit, so that leaving the limit out cannot exceed it.
 */
export function runnerResources(config: OperatorConfig, sync: Sync | undefined): ResourceRequirements {
  const chosen = sync?.spec.runner?.resources ?? config.runner.resources;
  const maximums = config.runner.maxResources ?? {};
  const limits: Record<string, string> = { ...maximums, ...(chosen.limits ?? {}) };
  return {
    ...(chosen.requests ? { requests: { ...chosen.requests } } : {}),
    ...(Object.keys(limits).length > 0 ? { limits } : {}),
  };
}

/** The run's activeDeadlineSeconds: the Sync's, or the operator's default. */
export function runnerDeadline(config: OperatorConfig, sync: Sync): number {
  return sync.spec.runner?.activeDeadlineSeconds ?? config.runner.activeDeadlineSeconds;
}

/** Why the operator refuses a Sync's runner settings (resources, deadline), or undefined. */
export function runnerSettingsProblem(
  config: Pick<OperatorConfig, 'runner'>,
  sync: Sync,
): { reason: string; message: string } | undefined {
  const resources = sync.spec.runner?.resources;
  const problem =
    resources && resourcesProblem(resources, config.runner.maxResources ?? {}, 'spec.runner.resources');
  if (problem) {
    const reason = problem.includes('not a Kubernetes quantity')
      ? 'InvalidRunnerResources'
      : 'RunnerResourcesAboveMaximum';
    return { reason, message: `${problem}: lower it, or ask an administrator to raise the maximum` };
  }
  const deadline = sync.spec.runner?.activeDeadlineSeconds;
  const maxDeadline = config.runner.maxActiveDeadlineSeconds;
  if (deadline !== undefined && maxDeadline !== undefined && deadline > maxDeadline) {
    return {
      reason: 'RunnerDeadlineAboveMaximum',
      message:
        `spec.runner.activeDeadlineSeconds is ${deadline}, above the maximum of ${maxDeadline} s that the ` +
        'operator allows (--runner-max-deadline-seconds): lower it, or ask an administrator to raise the maximum',
    };
  }
  return undefined;
}

// ---- the diff store: one prefix per namespace ----

function within(location: StorageLocation, base: StorageLocation, namespace: string): boolean {
  if (location.scheme === 'file' || base.scheme === 'file') {
    if (location.scheme !== 'file' || base.scheme !== 'file') return false;
    const root = base.root === sep ? `${sep}${namespace}` : `${base.root}${sep}${namespace}`;
    return location.root === root || location.root.startsWith(`${root}${sep}`);
  }
  if (location.scheme !== base.scheme || location.bucket !== base.bucket) return false;
  const prefix = base.prefix ? `${base.prefix}/${namespace}` : namespace;
  return location.prefix === prefix || location.prefix.startsWith(`${prefix}/`);
}

/**
 * The diff-store URL of a Sync. Every Sync keeps its state under `<store>/<namespace>/<sync>/`; a
 * Sync's `spec.diffStore.url` may move it, but only within its namespace's prefix (`<store>/<namespace>`),
 * which is what per-namespace credentials and IAM policies are scoped to. Anything else (another bucket,
 * another namespace's prefix, a path that climbs out with `..`) is refused with DiffStoreOutsideNamespace.
 */
export function syncDiffStoreUrl(config: Pick<OperatorConfig, 'diffStore'>, sync: Sync): string {
  const override = sync.spec.diffStore?.url;
  if (!override) return config.diffStore.url;
  const namespace = sync.metadata.namespace ?? 'default';
  const base = parseStorageUrl(config.diffStore.url);
  const allowed = `${base.url}/${namespace}`;
  let location: StorageLocation;
  try {
    location = parseStorageUrl(override);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new SynclineError('InvalidDiffStoreUrl', `spec.diffStore.url: ${message}`);
  }
  if (!within(location, base, namespace)) {
    throw new SynclineError(
      'DiffStoreOutsideNamespace',
      `spec.diffStore.url "${override}" is outside this namespace's part of the diff store: use ${allowed} ` +
        'or a folder under it, or remove spec.diffStore to use the default',
    );
  }
  return location.url;
}

/** Key names of the per-namespace diff-store Secret (`--diff-store-namespace-secret`). */
export const NAMESPACE_SECRET_KEYS = {
  s3AccessKeyId: 'accessKeyId',
  s3SecretAccessKey: 'secretAccessKey',
  gcsServiceAccountKey: 'serviceAccountKey',
} as const;

/**
 * The diff-store settings a runner pod gets: the Sync's URL and, with `--diff-store-namespace-secret`,
 * credentials from that Secret in the Sync's own namespace instead of the operator-wide ones, so that a
 * namespace's runners hold only a credential scoped to its prefix.
 */
export function runnerDiffStore(config: OperatorConfig, sync: Sync): DiffStoreSettings {
  return runnerDiffStoreAt(config, syncDiffStoreUrl(config, sync));
}

/**
 * The diff-store settings of a connection check in a namespace: the operator's store URL (the check writes
 * under `<namespace>/_destinations/`), with the namespace's own credential as for its runs.
 */
export function checkDiffStore(config: OperatorConfig): DiffStoreSettings {
  return runnerDiffStoreAt(config, config.diffStore.url);
}

function runnerDiffStoreAt(config: OperatorConfig, url: string): DiffStoreSettings {
  const secret = config.diffStoreNamespaceSecret;
  const { s3, gcs } = config.diffStore;
  if (!secret) return { ...config.diffStore, url };
  const ref = (key: string) => ({ secretKeyRef: { name: secret, key } });
  const settings: DiffStoreSettings = { url };
  if (url.startsWith('s3://')) {
    const { accessKeyId: _id, secretAccessKey: _key, ...endpoint } = s3 ?? {};
    settings.s3 = {
      ...endpoint,
      accessKeyId: ref(NAMESPACE_SECRET_KEYS.s3AccessKeyId),
      secretAccessKey: ref(NAMESPACE_SECRET_KEYS.s3SecretAccessKey),
    };
  }
  if (url.startsWith('gs://')) {
    const { serviceAccountKey: _key, ...endpoint } = gcs ?? {};
    settings.gcs = { ...endpoint, serviceAccountKey: ref(NAMESPACE_SECRET_KEYS.gcsServiceAccountKey) };
  }
  return settings;
}
