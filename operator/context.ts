import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { Destination, DestinationType, Model, Source, Sync } from '../crds/index.ts';
import type { DestinationCapabilities } from '../core/connectors.ts';
import type { DestinationObjects } from '../core/diffstore/index.ts';
import type { DestinationRuns } from './destination-runs.ts';
import type { SecretResolver } from '../core/secrets.ts';
import type { ClusterAccess } from './cluster.ts';
import type { OperatorConfig } from './config.ts';
import type { EventSink } from './events.ts';
import type { SynclineMetrics } from './metrics.ts';
import type { Logger } from '../core/logger.ts';

/** Reads from the informers' caches. */
export interface Store {
  source(namespace: string, name: string): Source | undefined;
  model(namespace: string, name: string): Model | undefined;
  destination(namespace: string, name: string): Destination | undefined;
  sync(namespace: string, name: string): Sync | undefined;
  /** The Syncs of a namespace whose destinationRef names this Destination (an index, not a scan). */
  syncsOfDestination(namespace: string, destination: string): Sync[];
  /** Jobs the operator created in a namespace, matching every given label. */
  jobs(namespace: string, labels: Record<string, string>): V1Job[];
  /** Whether the informer saw this Job deleted recently (so a cache miss needs no API call). */
  jobDeleted(namespace: string, jobName: string): boolean;
  /** Pods of one Job. */
  podsOfJob(namespace: string, jobName: string): V1Pod[];
}

export interface ReconcileContext {
  store: Store;
  cluster: ClusterAccess;
  events: EventSink;
  metrics: SynclineMetrics;
  config: OperatorConfig;
  log: Logger;
  now: () => Date;
  /** What a destination type supports, from its connector (connectors/registry.ts). */
  capabilities: (type: DestinationType) => Promise<DestinationCapabilities>;
  /**
   * What a Destination's last connection check discovered of its objects and fields (read from the diff
   * store once per check: operator/destination-objects.ts); undefined when nothing was.
   */
  destinationObjects: (destination: Destination) => Promise<DestinationObjects | undefined>;
  /** Runs per Destination this process started and Syncs waiting for one to end (operator/destination-runs.ts). */
  runs: DestinationRuns;
  /** Resolves the operator's own diff-store credentials (for snapshot clean-up on deletion). */
  secrets: SecretResolver;
}
