// How the source stages the model for this run: which row hashes it stores beside the rows, and whether
// only keys and hashes need to leave the source. Decided once the model's columns are known, before any
// row is read.
import type {
  ColumnInfo,
  HashRequest,
  SourceHashFunction,
  StagedHash,
  StagingPlan,
} from '../core/connectors.ts';
import type { SyncMode } from '../crds/index.ts';
import type { Manifest } from '../core/diffstore/index.ts';
import { modelFingerprint, SNAPSHOT_HASH, type ComparedItem, type SyncShape } from './mappings.ts';

/** The name of DuckDB's hash() as a snapshot's hash function. */
export const ENGINE_HASH = 'duckdb';

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

/** The compared items read from a column, in order: what the row hash covers. */
export function hashedItems(shape: SyncShape): ComparedItem[] {
  return shape.compared.filter((item) => item.column !== undefined);
}

/** The model column of each hashed item whose name is not the column's, for the manifest. */
export function comparedSources(shape: SyncShape): Record<string, string> {
  return Object.fromEntries(
    hashedItems(shape).flatMap((item) =>
      item.column === undefined || item.column === item.name ? [] : [[item.name, item.column]],
    ),
  );
}

/** The compared constants (static values and template texts) by item name. */
export function comparedConstants(shape: SyncShape): Record<string, string> {
  return Object.fromEntries(
    shape.compared.flatMap((item) => (item.constant === undefined ? [] : [[item.name, item.constant]])),
  );
}

/** The model columns a manifest's hashes were made of, in order. */
export function manifestHashColumns(
  manifest: Pick<Manifest, 'comparedColumns' | 'comparedSources'>,
): string[] {
  return manifest.comparedColumns.map((name) => manifest.comparedSources?.[name] ?? name);
}

export interface StagingDecision {
  plan: StagingPlan;
  /** The function the next snapshot's hashes are made with. */
  store: HashFunction;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Modes that deliver only what changed: a run where nothing did needs no row out of the source. */
const CHANGE_MODES: readonly SyncMode[] = ['upsert', 'update', 'insert'];

/**
 * The staging of one run:
 * - the hash the next snapshot keeps, over the compared columns: DuckDB's on a first sync (the source
 *   spends nothing on the run that moves the most rows), the source's own afterwards when it has one;
 * - the hash to compare with the previous snapshot, over the columns it compared, by the function that
 *   made it, when that differs (a changed mapping, a snapshot moving to the source's hashes);
 * - keys only, when the previous snapshot was made by the source's function over the same columns, with
 *   the same model columns and constants, in a mode that sends only changes: the rows whose hash
 *   differs are fetched after the diff.
 */
export function planStaging(input: {
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
}): StagingDecision {
  const { columns, shape, primaryKey, sourceHash } = input;
  const engine: HashFunction = { name: ENGINE_HASH, probe: input.engineProbe };
  const m = input.previous;
  const current = shape ? hashedItems(shape).map((item) => item.column ?? item.name) : [];
  // Nothing to hash (no compared column): the engine's "hash" of nothing is NULL, made anywhere.
  const store: HashFunction =
    sourceHash && m && current.length > 0 ? { name: sourceHash.name, probe: sourceHash.probe } : engine;
  if (!shape || current.length === 0 || columns.some((c) => c.name === SNAPSHOT_HASH)) {
    return { plan: { hashes: [], keysOnly: false }, store };
  }
  const storeRequest: HashRequest = { by: store === engine ? 'engine' : 'source', columns: current };

  let compare: HashRequest | undefined;
  if (m && m.version === 2 && m.primaryKey === primaryKey && !input.fullResync) {
    const previousColumns = manifestHashColumns(m);
    const types = new Map(columns.map((c) => [c.name, c.type]));
    const before = new Map(m.columns.map((c) => [c.name, c.type]));
    const by = hashBy(hashFunctionOf(m), sourceHash);
    const probe = by === 'engine' ? input.engineProbe : sourceHash?.probe;
    if (
      by !== undefined &&
      m.hashProbe === probe &&
      previousColumns.length > 0 &&
      previousColumns.every((c) => types.has(c) && types.get(c) === before.get(c))
    ) {
      compare = { by, columns: previousColumns };
    }
    const keysOnly =
      compare?.by === 'source' &&
      storeRequest.by === 'source' &&
      same(compare.columns, current) &&
      CHANGE_MODES.includes(input.mode) &&
      m.destinationType === input.destinationType &&
      m.modelFingerprint === modelFingerprint(columns, primaryKey) &&
      same(
        m.columns,
        columns.map((c) => ({ name: c.name, type: c.type })),
      ) &&
      same(
        m.comparedColumns,
        hashedItems(shape).map((item) => item.name),
      ) &&
      same(m.comparedSources ?? {}, comparedSources(shape)) &&
      same(m.comparedConstants ?? {}, comparedConstants(shape));
    if (keysOnly) return { plan: { hashes: [storeRequest], keysOnly: true }, store };
  }
  const hashes = compare && !same(compare, storeRequest) ? [compare, storeRequest] : [storeRequest];
  return { plan: { hashes, keysOnly: false }, store };
}
