// What every stage of a run reads: the plan, the connectors, the embedded DuckDB, the diff store and the
// lease, opened once by openRun (stages/open.ts) and released by the run's AsyncDisposableStack.
import type { Placed } from './snapshot-location.ts';
import type { DuckDBConnection } from '@duckdb/node-api';
import type {
  ConnectorContext,
  DestinationConnector,
  Logger,
  SourceConnector,
} from '../../core/connectors.ts';
import type { DiffStore, SnapshotStore } from '../../core/diffstore/index.ts';
import type { RunLease } from '../../core/diffstore/lease.ts';
import type { RunPlan } from '../../core/plan.ts';
import type { SecretResolver } from '../../core/secrets.ts';
import type { SyncSpec } from '../../crds/index.ts';
import type { BackoffSettings } from '../backoff.ts';
import type { DeliveryProgress } from '../deliver.ts';
import type { EmbeddedDuck } from '../duck.ts';
import type { ConfigMapReader } from '../model.ts';
import type { DownloadedState, RunState as StoredState } from '../state.ts';

export type RunPhase = 'Querying' | 'Diffing' | 'Delivering' | 'Committing';

export interface RunProgress {
  phase: RunPhase;
  delivery?: DeliveryProgress;
}

export interface RunDeps {
  secrets: SecretResolver;
  log: Logger;
  signal: AbortSignal;
  onProgress?: (progress: RunProgress) => void;
  /** Retry timing of transient delivery failures (tests shorten it). */
  backoff?: BackoffSettings;
  /** Where a dbt Model's manifest ConfigMap is read from (mounted files in a pod, YAML for the CLI). */
  readConfigMap?: ConfigMapReader;
}

export interface RunLabels {
  namespace: string;
  sync: string;
  runId: string;
}

/** The secrets a run resolved, so that every text leaving it can be cleaned of them. */
export interface RecordingSecrets {
  resolve: SecretResolver;
  resolved: Set<string>;
}

export function recordingSecrets(resolver: SecretResolver): RecordingSecrets {
  const resolved = new Set<string>();
  return {
    resolved,
    resolve: (ref) => {
      const value = resolver(ref);
      resolved.add(value);
      return value;
    },
  };
}

export interface RunContext {
  /** The plan, its dbt Model resolved to SQL. */
  plan: RunPlan;
  spec: SyncSpec;
  deps: RunDeps;
  log: Logger;
  signal: AbortSignal;
  labels: RunLabels;
  secrets: RecordingSecrets;
  /** Run summaries, request logs and the lease (and the snapshot, unless the Sync keeps it in the warehouse). */
  store: DiffStore;
  /** Where the snapshot lives: the diff store, or the warehouse (Sync.spec.snapshot). */
  snapshots: SnapshotStore;
  /** Absent for dry runs, which write nothing. */
  lease: RunLease | undefined;
  destination: DestinationConnector;
  source: SourceConnector;
  duck: EmbeddedDuck;
  conn: DuckDBConnection;
  primaryKey: string;
  /** What connectors get in every call. */
  connector: ConnectorContext & { tmpDir: string };
  /**
   * The manifest as read, and the previous snapshot (never rejects): the diff store's starts downloading
   * while the model is queried; a warehouse snapshot's is read only when the staging did not narrow it.
   */
  stored: StoredState;
  /** What placing the snapshot did that the run's ending tells: it moved, or was lost (and the run resyncs). */
  notice?: Placed['notice'];
  download: () => Promise<DownloadedState>;
  /** DuckDB's hash of fixed values: a snapshot hashed otherwise cannot be compared with. */
  engineProbe: string;
  /** Where the destination's records live, as a digest (stages/open.ts destinationIdentity). */
  identity: string;
  /** Released when the run ends, last registered first. */
  resources: AsyncDisposableStack;
  progress: (phase: RunPhase, delivery?: DeliveryProgress) => void;
}

/**
 * A clean-up step that logs its failure instead of throwing it: a run's resources are released after its
 * summary is written, and a failing release must not turn the summary into an exception.
 */
export function releasing(log: Logger, what: string, release: () => unknown): () => Promise<void> {
  return async () => {
    try {
      await release();
    } catch (error) {
      log.warn({ err: error instanceof Error ? error.message : String(error) }, `could not release ${what}`);
    }
  };
}
