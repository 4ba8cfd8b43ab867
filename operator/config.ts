import type { DiffStoreSettings } from '../core/plan.ts';

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
  /**
   * A Secret of this name in each Sync's namespace holds that namespace's own diff-store credentials
   * (keys accessKeyId + secretAccessKey, or serviceAccountKey): runner pods get those instead of the
   * operator-wide ones in `diffStore`, which only the operator itself then uses.
   */
  diffStoreNamespaceSecret?: string;
  runner: {
    resources: ResourceRequirements;
    activeDeadlineSeconds: number;
    ttlSecondsAfterFinished: number;
    memoryLimit?: string;
    serviceAccountName?: string;
    /** The most a Sync's runner.resources may request or limit, per resource (cpu, memory, ephemeral-storage). */
    maxResources?: Record<string, string>;
    /** The longest activeDeadlineSeconds a Sync may set. */
    maxActiveDeadlineSeconds?: number;
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
      resources: {
        requests: { cpu: '250m', memory: '512Mi', 'ephemeral-storage': '1Gi' },
        limits: { memory: '2Gi', 'ephemeral-storage': '10Gi' },
      },
      activeDeadlineSeconds: 3600,
      ttlSecondsAfterFinished: 86_400,
    },
    check: { activeDeadlineSeconds: 120, recheckIntervalMs: 30 * 60_000, retryIntervalMs: 60_000 },
    podStartTimeoutMs: 120_000,
    finalizerTimeoutMs: 5 * 60_000,
    ...overrides,
  };
}
