import type { V1EnvVar, V1Job, V1OwnerReference, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import type { SecretKeySelector, Source, Destination, Model, Sync } from '../crds/index.ts';
import type { CheckPlan, RunPlan, SegmentCountPlan, SnapshotDropPlan } from '../core/plan.ts';
import { SynclineError } from '../core/errors.ts';
import { secretEnvName } from '../core/secrets.ts';
import type { OperatorConfig, ResourceRequirements } from './config.ts';
import { runnerDeadline, runnerResources, runnerSettingsProblem } from './runner-policy.ts';
import type { RunStart } from './schedule.ts';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'syncline';
export const COMPONENT_LABEL = 'syncline.io/component';
export const SYNC_LABEL = 'syncline.io/sync';
export const RUN_KEY_LABEL = 'syncline.io/run-key';
export const CHECK_KIND_LABEL = 'syncline.io/check-kind';
export const CHECK_TARGET_LABEL = 'syncline.io/check-target';
export const TRIGGER_ANNOTATION = 'syncline.io/trigger';
export const SCHEDULED_AT_ANNOTATION = 'syncline.io/scheduled-at';
/** When the operator started the run (to the millisecond), for a status written after the Job exists. */
export const STARTED_AT_ANNOTATION = 'syncline.io/started-at';
export const FULL_RESYNC_ANNOTATION = 'syncline.io/full-resync';
export const CHECK_HASH_ANNOTATION = 'syncline.io/checked-hash';
/** The selector of every Job (and Pod) the operator creates. */
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;

export const RUNNER_CONTAINER = 'runner';
export const TERMINATION_LOG = '/dev/termination-log';
const MAX_NAME = 63;

function hash(text: string, length: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/** `<prefix>-<suffix>` within 63 characters; a shortened prefix gets a hash so that names stay unique. */
export function boundedName(prefix: string, suffix: string): string {
  const full = `${prefix}-${suffix}`;
  if (full.length <= MAX_NAME) return full;
  const tag = hash(prefix, 6);
  const room = MAX_NAME - suffix.length - tag.length - 2;
  const cut = prefix.slice(0, room).replace(/[-.]+$/, '');
  return `${cut}-${tag}-${suffix}`;
}

/** The Job name of one run: the same for the same Sync and run key, so a second create is a no-op. */
export function runJobName(syncName: string, runKey: string): string {
  return boundedName(syncName, runKey);
}

export function checkJobName(kind: 'Source' | 'Destination', name: string, checkKey: string): string {
  return boundedName(name, `${kind === 'Source' ? 'src' : 'dst'}-check-${checkKey}`);
}

/** Every secretKeyRef anywhere in a value, once each. */
export function collectSecretRefs(value: unknown): SecretKeySelector[] {
  const found = new Map<string, SecretKeySelector>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(walk);
      return;
    }
    if (node === null || typeof node !== 'object') return;
    for (const [key, child] of Object.entries(node)) {
      if (key === 'secretKeyRef' && isSecretRef(child)) found.set(`${child.name}\u0000${child.key}`, child);
      else walk(child);
    }
  };
  walk(value);
  return [...found.values()].sort((a, b) => secretEnvName(a).localeCompare(secretEnvName(b)));
}

function isSecretRef(value: unknown): value is SecretKeySelector {
  const v = value as Partial<SecretKeySelector> | null;
  return !!v && typeof v.name === 'string' && typeof v.key === 'string';
}

/** Credentials reach the pod only as env secretKeyRefs, under the names the runner resolves. */
export function secretEnv(refs: SecretKeySelector[]): V1EnvVar[] {
  return refs.map((ref) => ({
    name: secretEnvName(ref),
    valueFrom: { secretKeyRef: { name: ref.name, key: ref.key, optional: false } },
  }));
}

export function ownerReference(sync: Pick<Sync, 'apiVersion' | 'kind' | 'metadata'>): V1OwnerReference {
  return {
    apiVersion: sync.apiVersion,
    kind: sync.kind,
    name: sync.metadata.name,
    uid: sync.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

interface PodShape {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  owner?: V1OwnerReference;
  args: string[];
  env: V1EnvVar[];
  resources: ResourceRequirements;
  activeDeadlineSeconds: number;
  volumes?: V1Volume[];
  mounts?: V1VolumeMount[];
}

/**
 * The scratch volume on /tmp (DuckDB's database and spill files, snapshots being written): as large as
 * the container's ephemeral-storage limit, since the root file system is read-only and /tmp is all it
 * writes. The kubelet evicts a pod whose emptyDir outgrows its sizeLimit.
 */
function scratchVolume(resources: ResourceRequirements): V1Volume {
  const size = resources.limits?.['ephemeral-storage'];
  return { name: 'tmp', emptyDir: size ? { sizeLimit: size } : {} };
}

/**
 * A Job that runs the runner once: no retries (a failed run is a result, and the next run retries it),
 * no service-account token, the restricted Pod Security profile, a read-only root file system with an
 * emptyDir for DuckDB's spill files, and the termination message as the channel back to the operator.
 */
function runnerJob(config: OperatorConfig, shape: PodShape): V1Job {
  const [command, ...baseArgs] = config.runnerCommand;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: shape.name,
      namespace: shape.namespace,
      labels: shape.labels,
      annotations: shape.annotations,
      ...(shape.owner ? { ownerReferences: [shape.owner] } : {}),
    },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: shape.activeDeadlineSeconds,
      ttlSecondsAfterFinished: config.runner.ttlSecondsAfterFinished,
      template: {
        metadata: { labels: shape.labels, annotations: shape.annotations },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          ...(config.runner.serviceAccountName
            ? { serviceAccountName: config.runner.serviceAccountName }
            : {}),
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 65532,
            runAsGroup: 65532,
            fsGroup: 65532,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: RUNNER_CONTAINER,
              image: config.runnerImage,
              ...(config.imagePullPolicy ? { imagePullPolicy: config.imagePullPolicy } : {}),
              command: [command ?? 'node'],
              args: [...baseArgs, ...shape.args],
              env: shape.env,
              resources: shape.resources,
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                capabilities: { drop: ['ALL'] },
                seccompProfile: { type: 'RuntimeDefault' },
              },
              terminationMessagePath: TERMINATION_LOG,
              terminationMessagePolicy: 'FallbackToLogsOnError',
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }, ...(shape.mounts ?? [])],
            },
          ],
          volumes: [scratchVolume(shape.resources), ...(shape.volumes ?? [])],
        },
      },
    },
  };
}

function plainEnv(config: OperatorConfig, extra: Record<string, string>): V1EnvVar[] {
  const entries = {
    ...(config.runner.env ?? {}),
    TMPDIR: '/tmp',
    SYNCLINE_TERMINATION_LOG: TERMINATION_LOG,
    ...extra,
  };
  return Object.entries(entries).map(([name, value]) => ({ name, value }));
}

function diffStoreVolume(config: OperatorConfig, url: string): Pick<PodShape, 'volumes' | 'mounts'> {
  if (!config.diffStoreVolumeClaim || !url.startsWith('file://')) return {};
  return {
    volumes: [{ name: 'diffstore', persistentVolumeClaim: { claimName: config.diffStoreVolumeClaim } }],
    mounts: [{ name: 'diffstore', mountPath: new URL(url).pathname }],
  };
}

/** Where runner pods find the ConfigMaps a run needs (runner/model.ts reads `<dir>/<name>/<key>`). */
export const CONFIGMAP_DIR = '/etc/syncline/configmaps';

/** A ConfigMap a run reads (a dbt manifest), mounted read-only at `CONFIGMAP_DIR/<name>/`. */
function configMapVolumes(plan: RunPlan): Pick<PodShape, 'volumes' | 'mounts'> {
  const names = new Set<string>();
  const ref = plan.model.spec.dbt?.manifest.configMapRef;
  if (ref) names.add(ref.name);
  const volumes: V1Volume[] = [];
  const mounts: V1VolumeMount[] = [];
  for (const name of [...names].sort()) {
    // Volume names are DNS labels; ConfigMap names may be longer and contain dots.
    const volume = `configmap-${hash(name, 12)}`;
    volumes.push({ name: volume, configMap: { name } });
    mounts.push({ name: volume, mountPath: `${CONFIGMAP_DIR}/${name}`, readOnly: true });
  }
  return { volumes, mounts };
}

export interface RunJobInput {
  sync: Sync;
  plan: RunPlan;
  start: RunStart;
  config: OperatorConfig;
  /** When the run starts; recorded on the Job so that a later status write can tell. */
  startedAt?: Date;
}

export function buildRunJob({ sync, plan, start, config, startedAt }: RunJobInput): V1Job {
  const labels = {
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [COMPONENT_LABEL]: 'run',
    [SYNC_LABEL]: sync.metadata.name,
    [RUN_KEY_LABEL]: start.key,
  };
  // Validation refuses these first (a Stalled condition); this keeps a Job from ever carrying them.
  const refused = runnerSettingsProblem(config, sync);
  if (refused) throw new SynclineError(refused.reason, refused.message);
  return runnerJob(config, {
    name: plan.runId,
    namespace: plan.namespace,
    labels,
    annotations: {
      [TRIGGER_ANNOTATION]: start.trigger,
      [SCHEDULED_AT_ANNOTATION]: start.scheduledAt.toISOString(),
      [FULL_RESYNC_ANNOTATION]: String(start.fullResync),
      ...(startedAt ? { [STARTED_AT_ANNOTATION]: startedAt.toISOString() } : {}),
    },
    owner: ownerReference(sync),
    args: ['job'],
    env: [
      ...plainEnv(config, { SYNCLINE_RUN_PLAN: JSON.stringify(plan) }),
      ...secretEnv(collectSecretRefs(plan)),
    ],
    resources: runnerResources(config, sync),
    activeDeadlineSeconds: runnerDeadline(config, sync),
    ...mergeVolumes(diffStoreVolume(config, plan.diffStore.url), configMapVolumes(plan)),
  });
}

function mergeVolumes(
  ...parts: Pick<PodShape, 'volumes' | 'mounts'>[]
): Pick<PodShape, 'volumes' | 'mounts'> {
  return {
    volumes: parts.flatMap((p) => p.volumes ?? []),
    mounts: parts.flatMap((p) => p.mounts ?? []),
  };
}

/** A connection check connects and reads a little: small, and bounded on disk too. */
export const CHECK_RESOURCES: ResourceRequirements = {
  requests: { cpu: '50m', memory: '128Mi', 'ephemeral-storage': '64Mi' },
  limits: { memory: '512Mi', 'ephemeral-storage': '1Gi' },
};

export interface CheckJobInput {
  target: Source | Destination;
  plan: CheckPlan;
  name: string;
  checkHash: string;
  config: OperatorConfig;
}

export function buildCheckJob({ target, plan, name, checkHash, config }: CheckJobInput): V1Job {
  const labels = {
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [COMPONENT_LABEL]: 'check',
    [CHECK_KIND_LABEL]: target.kind.toLowerCase(),
    [CHECK_TARGET_LABEL]: target.metadata.name,
  };
  return runnerJob(config, {
    name,
    namespace: plan.namespace,
    labels,
    annotations: { [CHECK_HASH_ANNOTATION]: checkHash },
    owner: {
      apiVersion: target.apiVersion,
      kind: target.kind,
      name: target.metadata.name,
      uid: target.metadata.uid ?? '',
      controller: true,
      blockOwnerDeletion: true,
    },
    args: ['check'],
    env: [
      ...plainEnv(config, { SYNCLINE_CHECK_PLAN: JSON.stringify(plan) }),
      ...secretEnv(collectSecretRefs(plan)),
    ],
    resources: CHECK_RESOURCES,
    activeDeadlineSeconds: config.check.activeDeadlineSeconds,
    ...(plan.diffStore ? diffStoreVolume(config, plan.diffStore.url) : {}),
  });
}

/**
 * A hash of what a connection check depends on: the spec (credentials are referenced, never inlined) and,
 * for a Destination whose Syncs target objects, those objects (a Sync targeting a new one brings a check
 * that discovers its fields). Without objects the hash is the spec's alone, as it always was.
 */
export function checkHashOf(target: Source | Destination, objects: readonly string[] = []): string {
  const spec = JSON.stringify(target.spec);
  return hash(objects.length > 0 ? `${spec}|objects:${objects.join(',')}` : spec, 16);
}

/** The Job that drops a deleted Sync's warehouse snapshot: one per Sync (its uid), so a second create is a no-op. */
export function snapshotDropJobName(sync: Sync): string {
  return boundedName(sync.metadata.name, `drop-${hash(sync.metadata.uid ?? sync.metadata.name, 8)}`);
}

/**
 * `syncline drop-snapshot` for a Sync being deleted: owned by the Sync (the garbage collector removes it
 * once the finalizer lets the Sync go), with only the Source's secrets, sized like a connection check.
 */
export function buildSnapshotDropJob(sync: Sync, plan: SnapshotDropPlan, config: OperatorConfig): V1Job {
  const labels = {
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [COMPONENT_LABEL]: 'drop-snapshot',
    [SYNC_LABEL]: sync.metadata.name,
  };
  return runnerJob(config, {
    name: snapshotDropJobName(sync),
    namespace: plan.namespace,
    labels,
    annotations: {},
    owner: {
      apiVersion: sync.apiVersion,
      kind: sync.kind,
      name: sync.metadata.name,
      uid: sync.metadata.uid ?? '',
    },
    args: ['drop-snapshot'],
    env: [
      ...plainEnv(config, { SYNCLINE_DROP_PLAN: JSON.stringify(plan) }),
      ...secretEnv(collectSecretRefs(plan)),
    ],
    resources: CHECK_RESOURCES,
    activeDeadlineSeconds: config.check.activeDeadlineSeconds,
  });
}

export const MODEL_LABEL = 'syncline.io/model';

/** The Job counting one definition of a segment: the same name for the same compiled SQL. */
export function segmentCountJobName(model: Model, definitionHash: string): string {
  return boundedName(model.metadata.name, `count-${definitionHash.slice(0, 10)}`);
}

/** `syncline count-segment` for a segment Model whose definition changed: owned by the Model. */
export function buildSegmentCountJob(model: Model, plan: SegmentCountPlan, config: OperatorConfig): V1Job {
  const labels = {
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [COMPONENT_LABEL]: 'count-segment',
    [MODEL_LABEL]: model.metadata.name,
  };
  return runnerJob(config, {
    name: segmentCountJobName(model, plan.definitionHash),
    namespace: plan.namespace,
    labels,
    annotations: {},
    owner: {
      apiVersion: model.apiVersion,
      kind: model.kind,
      name: model.metadata.name,
      uid: model.metadata.uid ?? '',
      controller: true,
      blockOwnerDeletion: true,
    },
    args: ['count-segment'],
    env: [
      ...plainEnv(config, { SYNCLINE_COUNT_PLAN: JSON.stringify(plan) }),
      ...secretEnv(collectSecretRefs(plan)),
    ],
    resources: CHECK_RESOURCES,
    activeDeadlineSeconds: config.check.activeDeadlineSeconds,
  });
}
