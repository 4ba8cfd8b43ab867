import type { DiffStoreSettings } from '../runner/plan.ts';

export interface ResourceRequirements {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

/** Settings of one operator process (flags, env, Helm values). */
export interface OperatorConfig {
  /** Namespaces to watch; empty for all. */
  namespaces: string[];
  /** Image of the runner Jobs; the runner is the same program as the operator. */
  runnerImage: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** The runner command without its subcommand: `node /app/bin/syncline.mjs`. */
  runnerCommand: string[];
  /** Operator-wide diff store; credentials are secretKeyRefs resolved in each Sync's namespace. */
  diffStore: DiffStoreSettings;
  /** A PersistentVolumeClaim (in each Sync namespace) mounted at a file:// diff store's path. */
  diffStoreVolumeClaim?: string;
  runner: {
    resources: ResourceRequirements;
    activeDeadlineSeconds: number;
    ttlSecondsAfterFinished: number;
    memoryLimit?: string;
    serviceAccountName?: string;
    /** Extra env for every runner container (non-secret settings only). */
    env?: Record<string, string>;
  };
  check: {
    activeDeadlineSeconds: number;
    /** Check a Ready connection again after this long (Secrets may rotate). */
    recheckIntervalMs: number;
    /** Check a failed connection again after this long. */
    retryIntervalMs: number;
  };
  /** A pod stuck before its container starts (missing Secret, image pull) fails its run after this long. */
  podStartTimeoutMs: number;
  /** Longest a finalizer may wait on its clean-up before letting the deletion go through. */
  finalizerTimeoutMs: number;
}

export function defaultConfig(overrides: Partial<OperatorConfig> = {}): OperatorConfig {
  return {
    namespaces: [],
    runnerImage: 'ghcr.io/syncline/syncline:latest',
    runnerCommand: ['node', '/app/bin/syncline.mjs'],
    diffStore: { url: 'file:///var/lib/syncline/diffstore' },
    runner: {
      resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '2Gi' } },
      activeDeadlineSeconds: 3600,
      ttlSecondsAfterFinished: 86_400,
    },
    check: { activeDeadlineSeconds: 120, recheckIntervalMs: 30 * 60_000, retryIntervalMs: 60_000 },
    podStartTimeoutMs: 120_000,
    finalizerTimeoutMs: 5 * 60_000,
    ...overrides,
  };
}
