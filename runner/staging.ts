// How the source stages the model for this run: which row hashes it stores beside the rows, and whether
// only keys and hashes need to leave the source. Decided once the model's columns are known, before any
// row is read.
import type {
  ColumnInfo,
  HashRequest,
  NarrowRequest,
  SourceHashFunction,
  StagedHash,
  StagingChoice,
} from '../core/connectors.ts';
import type { SyncMode } from '../crds/index.ts';
import type { Manifest } from '../core/diffstore/index.ts';
import { SNAPSHOT_HASH, type SyncShape } from './mappings.ts';
import {
  columnTypesKept,
  comparedKept,
  constantsKept,
  ENGINE_HASH,
  hashedItems,
  manifestHashColumns,
  modelKept,
  sameJson,
} from './snapshot-match.ts';

/** A row hash function as a manifest records it: its name and the hash of fixed sample values. */
export interface HashFunction {
  name: string;
  probe: string;
}

/** The function that made a snapshot's hashes (snapshots from before sources hashed say none). */
export function hashFunctionOf(manifest: Manifest): string {
  return manifest.hashFunction ?? ENGINE_HASH;
}

/** Who computes hashes of `fn`, in this run: the engine, the source, or nobody (another function). */
export function hashBy(
  fn: string,
  sourceHash: SourceHashFunction | undefined,
): HashRequest['by'] | undefined {
  if (fn === ENGINE_HASH) return 'engine';
  return sourceHash?.name === fn ? 'source' : undefined;
}

/** The staged hash of `columns` made by `by`, if the source stored one. */
export function stagedHashOf(
  hashes: StagedHash[] | undefined,
  by: HashRequest['by'],
  columns: string[],
): StagedHash | undefined {
  const wanted = JSON.stringify(columns);
  return hashes?.find((h) => h.by === by && JSON.stringify(h.columns) === wanted);
}

/** What a narrowed staging needs besides the hash to compare with (filled in by the query stage). */
export type NarrowPlan = Pick<NarrowRequest, 'compare' | 'fresh'>;

export interface StagingDecision {
  /** `narrow` without the run's file and snapshot version, which the query stage adds. */
  choice: Omit<StagingChoice, 'narrow'> & { narrow?: NarrowPlan };
  /** The function the next snapshot's hashes are made with. */
  store: HashFunction;
}

/** Modes that deliver only what changed: a run where nothing did needs no row out of the source. */
const CHANGE_MODES: readonly SyncMode[] = ['upsert', 'update', 'insert'];

/**
 * The staging of one run:
 * - the hash the next snapshot keeps, over the compared columns: DuckDB's on a first sync (the source
 *   spends nothing on the run that moves the most rows), the source's own afterwards when it can stage
 *   keys only (else its hashes would only add bytes to every row);
 * - the hash to compare with the previous snapshot, over the columns it compared, by the function that
 *   made it, when that differs (a changed mapping, a snapshot moving to the source's hashes);
 * - keys only, when the previous snapshot was made by the source's function over the same columns, with
 *   the same model columns and constants, in a mode that sends only changes: the rows whose hash
 *   differs are fetched after the diff;
 * - with a warehouse snapshot (`warehouse`, kept by the source itself): always the source's hash, also on
 *   a first sync, so that later runs can compare in the source; never keys only, but narrowed (only the
 *   rows that may differ leave the source) when the snapshot can be compared there (see narrowPlan).
 */
export function chooseStaging(input: {
  columns: ColumnInfo[];
  /** Undefined when the mappings do not fit the model (the run reports that right after staging). */
  shape: SyncShape | undefined;
  primaryKey: string;
  previous: Manifest | undefined;
  fullResync: boolean;
  mode: SyncMode;
  destinationType: string;
  engineProbe: string;
  sourceHash: SourceHashFunction | undefined;
  /** The snapshot is kept by the source (a warehouse snapshot); then `destinationIdentity` is this run's. */
  warehouse?: { destinationIdentity: string } | undefined;
}): StagingDecision {
  const { columns, shape, primaryKey, sourceHash } = input;
  const engine: HashFunction = { name: ENGINE_HASH, probe: input.engineProbe };
  const m = input.previous;
  const current = shape ? hashedItems(shape).map((item) => item.column ?? item.name) : [];
  // Nothing to hash (no compared column): the engine's "hash" of nothing is NULL, made anywhere.
  const store: HashFunction =
    sourceHash && (input.warehouse || (m && sourceHash.keysOnly === true)) && current.length > 0
      ? { name: sourceHash.name, probe: sourceHash.probe }
      : engine;
  if (!shape || current.length === 0 || columns.some((c) => c.name === SNAPSHOT_HASH)) {
    return { choice: { hashes: [], keysOnly: false }, store };
  }
  const storeRequest: HashRequest = { by: store === engine ? 'engine' : 'source', columns: current };

  let compare: HashRequest | undefined;
  if (m && m.version === 2 && m.primaryKey === primaryKey && !input.fullResync) {
    const previousColumns = manifestHashColumns(m);
    const by = hashBy(hashFunctionOf(m), sourceHash);
    const probe = by === 'engine' ? input.engineProbe : sourceHash?.probe;
    if (
      by !== undefined &&
      m.hashProbe === probe &&
      previousColumns.length > 0 &&
      columnTypesKept(m, columns, previousColumns)
    ) {
      compare = { by, columns: previousColumns };
    }
    if (input.warehouse) {
      const hashes = compare && !sameJson(compare, storeRequest) ? [compare, storeRequest] : [storeRequest];
      const narrow = narrowPlan({
        ...input,
        previous: m,
        shape,
        compare,
        current,
        warehouse: input.warehouse,
      });
      return { choice: { hashes, keysOnly: false, ...(narrow ? { narrow } : {}) }, store };
    }
    const keysOnly =
      compare?.by === 'source' &&
      storeRequest.by === 'source' &&
      sameJson(compare.columns, current) &&
      CHANGE_MODES.includes(input.mode) &&
      m.destinationType === input.destinationType &&
      modelKept(m, columns, primaryKey) &&
      comparedKept(m, shape);
    if (keysOnly) return { choice: { hashes: [storeRequest], keysOnly: true }, store };
  }
  const hashes = compare && !sameJson(compare, storeRequest) ? [compare, storeRequest] : [storeRequest];
  return { choice: { hashes, keysOnly: false }, store };
}

/**
 * Whether a warehouse snapshot can be compared with the model inside the source, so that only the rows
 * that may differ need to leave it: the source made its hashes (same function and probe, same column
 * types: `compare`) over the columns this run compares (else every row's hash must be written anew),
 * and nothing makes every row differ — same primary key, model columns, compared constants,
 * destination, a mode that sends only changes, no pending keys left unfolded. A compared item new to
 * the snapshot over those same columns (a field renamed, a column sent to a second field) is `fresh`: a
 * row with a value in it is staged.
 */
function narrowPlan(input: {
  columns: ColumnInfo[];
  shape: SyncShape;
  primaryKey: string;
  previous: Manifest;
  mode: SyncMode;
  destinationType: string;
  compare: HashRequest | undefined;
  /** The columns this run's hash covers. */
  current: string[];
  warehouse: { destinationIdentity: string };
}): NarrowPlan | undefined {
  const m = input.previous;
  const identity = m.destinationIdentity;
  const narrowable =
    input.compare?.by === 'source' &&
    sameJson(input.compare.columns, input.current) &&
    CHANGE_MODES.includes(input.mode) &&
    m.destinationType === input.destinationType &&
    (identity === undefined || identity === input.warehouse.destinationIdentity) &&
    modelKept(m, input.columns, input.primaryKey) &&
    constantsKept(m, input.shape) &&
    m.pending?.folded !== false;
  if (!narrowable) return undefined;
  const fresh = hashedItems(input.shape).filter((item) => !m.comparedColumns.includes(item.name));
  return { compare: 0, fresh: [...new Set(fresh.map((item) => item.column ?? item.name))] };
}
