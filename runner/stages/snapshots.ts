// Where a run reads and commits its Sync's snapshot: the diff store, or — when the Sync asks for it
// (spec.snapshot.location: warehouse) — tables of a schema Syncline owns in the Source's own database,
// opened through the source connector (SourceConnector.warehouseSnapshot).
import type { SourceConnector } from '../../core/connectors.ts';
import type { DiffStore, SnapshotStore } from '../../core/diffstore/index.ts';
import { SynclineError } from '../../core/errors.ts';
import type { RunPlan } from '../../core/plan.ts';
import type { EmbeddedDuck } from '../duck.ts';
import { releasing, type RecordingSecrets, type RunDeps } from './context.ts';

/** The schema of the warehouse snapshot when the Sync names none. */
export const DEFAULT_SNAPSHOT_SCHEMA = 'syncline';

export async function openSnapshotStore(input: {
  plan: RunPlan;
  deps: RunDeps;
  source: SourceConnector;
  store: DiffStore;
  duck: EmbeddedDuck;
  secrets: RecordingSecrets;
  resources: AsyncDisposableStack;
}): Promise<SnapshotStore> {
  const { plan, source, deps } = input;
  const wanted = plan.sync.spec.snapshot;
  if (wanted?.location !== 'warehouse') return input.store;
  if (!source.warehouseSnapshot) {
    throw new SynclineError(
      'WarehouseSnapshotUnsupported',
      `Sync ${plan.namespace}/${plan.sync.name} keeps its snapshot in the warehouse (spec.snapshot.location: warehouse), ` +
        `but its Source ${plan.source.name} is of type ${plan.source.spec.type}, which cannot keep one (postgres Sources can); ` +
        'set spec.snapshot.location: diffStore',
    );
  }
  const opened = await source.warehouseSnapshot({
    secrets: input.secrets.resolve,
    log: deps.log,
    signal: deps.signal,
    tmpDir: input.duck.dir,
    source: plan.source.spec,
    namespace: plan.namespace,
    sync: plan.sync.name,
    schema: wanted.schema ?? DEFAULT_SNAPSHOT_SCHEMA,
    duck: input.duck.connection,
    readOnly: plan.dryRun,
  });
  input.resources.defer(releasing(deps.log, 'the warehouse snapshot', () => opened.close()));
  return opened;
}
