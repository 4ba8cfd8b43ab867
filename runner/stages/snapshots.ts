// Where a run reads and commits its Sync's snapshot: the diff store, or — when the Sync or its Source asks
// for it (spec.snapshot.location: warehouse) — tables of a schema Syncline owns in the Source's own
// database, opened through the source connector (SourceConnector.warehouseSnapshot). A Sync that switched
// has its state moved first (snapshot-location.ts).
import type { SourceConnector, WarehouseSnapshot } from '../../core/connectors.ts';
import type { DiffStore } from '../../core/diffstore/index.ts';
import { isSynclineError, SynclineError } from '../../core/errors.ts';
import { reasonKind } from '../../core/reasons.ts';
import type { RunPlan } from '../../core/plan.ts';
import { resolveSnapshot, type SnapshotPlacement } from '../../core/settings.ts';
import type { EmbeddedDuck } from '../duck.ts';
import { releasing, type RecordingSecrets, type RunDeps } from './context.ts';
import { placeSnapshot, type Place, type Placed } from './snapshot-location.ts';

export { DEFAULT_SNAPSHOT_SCHEMA } from '../../crds/index.ts';

interface OpenInput {
  plan: RunPlan;
  deps: RunDeps;
  source: SourceConnector;
  store: DiffStore;
  duck: EmbeddedDuck;
  secrets: RecordingSecrets;
  resources: AsyncDisposableStack;
}

/** The store the run reads and commits its snapshot in, with the state it read there. */
export async function openSnapshotStore(input: OpenInput): Promise<Placed> {
  const { plan } = input;
  const placement = resolveSnapshot(plan.sync.spec, plan.source.spec);
  const warehouse: Place = {
    location: 'warehouse',
    open: () => probeWarehouse(input, placement),
    release: async (store) => {
      const dropped = await (store as WarehouseSnapshot).dropAll();
      input.deps.log.info(
        { tables: dropped, at: store.url },
        'dropped the warehouse snapshot it moved away from',
      );
    },
  };
  const common = {
    runId: plan.runId,
    dir: input.duck.dir,
    dryRun: plan.dryRun,
    fullResync: plan.fullResync,
    log: input.deps.log,
  };
  if (placement.location !== 'warehouse') {
    return placeSnapshot({ ...common, home: input.store, homeLocation: 'diffStore', away: warehouse });
  }
  const home = await openWarehouse(input, placement, plan.dryRun);
  const diffStore: Place = { location: 'diffStore', open: () => Promise.resolve(input.store) };
  const elsewhere = {
    read: () => input.store.readElsewhere(),
    mark: (url: string) => input.store.markElsewhere(url),
  };
  return placeSnapshot({ ...common, home, homeLocation: 'warehouse', away: diffStore, elsewhere });
}

async function openWarehouse(
  input: OpenInput,
  placement: SnapshotPlacement,
  readOnly: boolean,
): Promise<WarehouseSnapshot> {
  const { plan, source, deps } = input;
  if (!source.warehouseSnapshot) {
    throw new SynclineError(
      'WarehouseSnapshotUnsupported',
      `Sync ${plan.namespace}/${plan.sync.name} keeps its snapshot in the warehouse (spec.snapshot.location: warehouse, of the Sync or its Source), ` +
        `but its Source ${plan.source.name} is of type ${plan.source.spec.type}, which cannot keep one (postgres, snowflake and bigquery Sources can); ` +
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
    schema: placement.schema,
    duck: input.duck.connection,
    readOnly,
  });
  input.resources.defer(releasing(deps.log, 'the warehouse snapshot', () => opened.close()));
  return opened;
}

/**
 * A Sync kept in the diff store without a state there may have kept it in the warehouse before: look
 * (creating nothing). A source without warehouse snapshots, or a user who may not read the schema, has
 * none to move; a transient failure fails the run, so that no state is taken for lost.
 */
async function probeWarehouse(
  input: OpenInput,
  placement: SnapshotPlacement,
): Promise<WarehouseSnapshot | undefined> {
  if (!input.source.warehouseSnapshot) return undefined;
  try {
    return await openWarehouse(input, placement, true);
  } catch (error) {
    if (!isSynclineError(error) || reasonKind(error.reason) === 'transient') throw error;
    input.deps.log.debug(
      { reason: error.reason, err: error.message },
      'no warehouse snapshot to move into the diff store',
    );
    return undefined;
  }
}
