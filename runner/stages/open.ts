// Opening a run: the lease (one run of a Sync at a time, on a store the runner can write), then the
// connectors, the embedded DuckDB and the model side by side, then the manifest and the download of the
// previous snapshot, which runs while the model is queried.
import { createHash } from 'node:crypto';
import { capabilityProblem } from '../../core/capabilities.ts';
import type { DestinationConnector } from '../../core/connectors.ts';
import { DiffStore } from '../../core/diffstore/index.ts';
import { RunLease } from '../../core/diffstore/lease.ts';
import { SynclineError } from '../../core/errors.ts';
import type { RunPlan } from '../../core/plan.ts';
import { openBlobStore } from '../../core/storage/index.ts';
import { destinationConnector, sourceConnector } from '../../connectors/registry.ts';
import { hashProbe } from '../diff.ts';
import { openEmbeddedDuck } from '../duck.ts';
import { resolveModel } from '../model.ts';
import { downloadState, type DownloadedState } from '../state.ts';
import { releasing, type RecordingSecrets, type RunContext, type RunDeps } from './context.ts';
import { openSnapshotStore } from './snapshots.ts';

export function openDiffStore(plan: RunPlan, secrets: RecordingSecrets): DiffStore {
  const { url, s3, gcs } = plan.diffStore;
  return new DiffStore(
    openBlobStore(url, { s3, gcs, secrets: secrets.resolve }),
    plan.namespace,
    plan.sync.name,
  );
}

function settledValue<T>(result: PromiseSettledResult<T>): T {
  if (result.status === 'rejected') throw result.reason;
  return result.value;
}

export async function openRun(
  given: RunPlan,
  deps: RunDeps,
  store: DiffStore,
  secrets: RecordingSecrets,
  resources: AsyncDisposableStack,
): Promise<RunContext> {
  const { log, signal } = deps;
  let lease: RunLease | undefined;
  if (!given.dryRun) {
    // Before anything is written or sent: one run of a Sync at a time, and a store the runner can write.
    const acquired = await RunLease.acquire(store.blob, store.syncFolder, given.runId);
    resources.defer(releasing(log, 'the run lease', () => acquired.release()));
    lease = acquired;
    lease.keepAlive();
  }
  // Independent start-up steps side by side (each takes a few to tens of milliseconds).
  const [destinationLoaded, sourceLoaded, opened, resolved] = await Promise.allSettled([
    destinationConnector(given.destination.spec.type),
    sourceConnector(given.source.spec.type),
    openEmbeddedDuck({
      tmpDir: given.runner.tmpDir,
      memoryLimit: given.runner.memoryLimit ?? given.sync.spec.runner?.memoryLimit,
    }),
    resolveModel(given, {
      secrets: secrets.resolve,
      signal,
      log,
      ...(deps.readConfigMap ? { readConfigMap: deps.readConfigMap } : {}),
    }),
  ]);
  // Closed when the run ends, whatever else failed.
  if (opened.status === 'fulfilled')
    resources.defer(releasing(log, 'the embedded DuckDB', () => opened.value.close()));
  const destination = settledValue(destinationLoaded);
  const unsupported = capabilityProblem(
    destination.capabilities,
    given.sync.spec,
    given.destination.spec.type,
    { sync: `${given.namespace}/${given.sync.name}` },
  );
  if (unsupported) throw unsupported;
  const resolvedPlan = settledValue(resolved);
  const source = settledValue(sourceLoaded);
  const duck = settledValue(opened);
  const primaryKey = resolvedPlan.model.spec.primaryKey;
  if (primaryKey === undefined) {
    throw new SynclineError(
      'PrimaryKeyMissing',
      `Model ${resolvedPlan.model.name} names no primary key: set spec.primaryKey`,
    );
  }
  const placed = await openSnapshotStore({
    plan: resolvedPlan,
    deps,
    source,
    store,
    duck,
    secrets,
    resources,
  });
  const { snapshots, stored } = placed;
  // A state lost where it had moved to is repaired by sending every row.
  const plan = placed.fullResync ? { ...resolvedPlan, fullResync: true } : resolvedPlan;
  let downloading: Promise<DownloadedState> | undefined;
  const download = () => (downloading ??= downloadState(snapshots, stored, duck.dir));
  // The diff store's snapshot downloads while the model is queried.
  if (!snapshots.takesDeltas) void download();
  // The download writes into DuckDB's folder: it ends before the folder goes.
  resources.defer(async () => {
    await downloading;
  });
  const labels = { namespace: plan.namespace, sync: plan.sync.name, runId: plan.runId };
  return {
    plan,
    spec: plan.sync.spec,
    deps,
    log,
    signal,
    labels,
    secrets,
    store,
    snapshots,
    lease,
    destination,
    source,
    duck,
    conn: duck.connection,
    primaryKey,
    connector: { secrets: secrets.resolve, log, signal, tmpDir: duck.dir },
    stored,
    ...(placed.notice ? { notice: placed.notice } : {}),
    download,
    engineProbe: await hashProbe(duck.connection),
    identity: destinationIdentity(destination, plan),
    resources,
    progress: (phase, delivery) => deps.onProgress?.({ phase, ...(delivery ? { delivery } : {}) }),
  };
}

/**
 * Where the destination's records live, as a digest: the connector's identity of the destination and
 * the Sync's target (no credential is part of it). A changed identity sends every row to the new place.
 */
function destinationIdentity(destination: DestinationConnector, plan: RunPlan): string {
  const described = destination.identity?.(plan.destination.spec, plan.sync.spec) ?? {
    type: plan.destination.spec.type,
    target: plan.sync.spec.target ?? null,
  };
  return createHash('sha256').update(JSON.stringify(described)).digest('hex').slice(0, 32);
}
