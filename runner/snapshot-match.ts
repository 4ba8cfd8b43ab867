// Does the previous snapshot describe this run's rows? One module answers it for every stage that asks:
// staging (may only keys and hashes be read?), the diff (which rows compare by hash, may a checksum
// prove nothing changed?), whether every row is resent, and the commit (may the snapshot stay current?).
import type { ColumnInfo } from '../core/connectors.ts';
import type { Manifest } from '../core/diffstore/index.ts';
import { modelFingerprint, type SyncShape } from './mappings.ts';

/** The hash function a snapshot without one was made with (before sources hashed). */
export const ENGINE_HASH = 'duckdb';

/** The manifest fields a commit of this run writes: what its snapshot is made of. */
export type RunShape = Omit<
  Manifest,
  'version' | 'runId' | 'snapshot' | 'committedAt' | 'rowCount' | 'pending'
>;

export function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The compared items read from a column, in order: what the row hash covers. */
export function hashedItems(shape: SyncShape): SyncShape['compared'] {
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

/** The model columns hashes over `hashed` items were made of, in order (`sources` renames). */
export function hashColumns(hashed: readonly string[], sources: Record<string, string> = {}): string[] {
  return hashed.map((name) => sources[name] ?? name);
}

/** The model columns a manifest's hashes were made of, in order. */
export function manifestHashColumns(
  manifest: Pick<Manifest, 'comparedColumns' | 'comparedSources'>,
): string[] {
  return hashColumns(manifest.comparedColumns, manifest.comparedSources);
}

/** Whether every one of `names` is still a model column, of the type it was staged with last run. */
export function columnTypesKept(
  manifest: Pick<Manifest, 'columns'>,
  columns: ColumnInfo[],
  names: string[],
): boolean {
  const now = new Map(columns.map((c) => [c.name, c.type]));
  const before = new Map(manifest.columns.map((c) => [c.name, c.type]));
  return names.every((name) => now.get(name) !== undefined && now.get(name) === before.get(name));
}

/** Whether no compared constant (static value, template text) changed since the snapshot. */
export function constantsKept(manifest: Pick<Manifest, 'comparedConstants'>, shape: SyncShape): boolean {
  const before = manifest.comparedConstants ?? {};
  return Object.entries(comparedConstants(shape)).every(([name, value]) => before[name] === value);
}

/** Whether the snapshot compared exactly this run's items, from the same columns, with the same constants. */
export function comparedKept(
  manifest: Pick<Manifest, 'comparedColumns' | 'comparedSources' | 'comparedConstants'>,
  shape: SyncShape,
): boolean {
  return (
    sameJson(
      manifest.comparedColumns,
      hashedItems(shape).map((item) => item.name),
    ) &&
    sameJson(manifest.comparedSources ?? {}, comparedSources(shape)) &&
    sameJson(manifest.comparedConstants ?? {}, comparedConstants(shape))
  );
}

/** Whether the model has the columns (names, types, order) and primary key the snapshot was made of. */
export function modelKept(
  manifest: Pick<Manifest, 'columns' | 'modelFingerprint'>,
  columns: ColumnInfo[],
  primaryKey: string,
): boolean {
  return (
    manifest.modelFingerprint === modelFingerprint(columns, primaryKey) &&
    sameJson(
      manifest.columns,
      columns.map((c) => ({ name: c.name, type: c.type })),
    )
  );
}

/** Why every row still in the model is sent again, if it is: empty when the snapshot's rows can be compared. */
export function resendReasons(
  manifest: Pick<Manifest, 'modelFingerprint' | 'destinationType' | 'destinationIdentity'>,
  run: Pick<RunShape, 'modelFingerprint' | 'destinationType' | 'destinationIdentity'>,
): ('model' | 'destinationType' | 'destination')[] {
  const reasons: ('model' | 'destinationType' | 'destination')[] = [];
  if (manifest.modelFingerprint !== run.modelFingerprint) reasons.push('model');
  if (manifest.destinationType !== run.destinationType) reasons.push('destinationType');
  // Snapshots from before destinations had an identity are taken to be of the same place.
  if (manifest.destinationIdentity !== undefined && manifest.destinationIdentity !== run.destinationIdentity)
    reasons.push('destination');
  return reasons;
}

/** Whether the snapshot already describes this run's rows exactly as the next commit would write them. */
export function snapshotDescribesRun(manifest: Manifest, run: RunShape): boolean {
  return (
    manifest.version === 2 &&
    manifest.primaryKey === run.primaryKey &&
    manifest.destinationType === run.destinationType &&
    manifest.hashProbe === run.hashProbe &&
    manifest.destinationIdentity === run.destinationIdentity &&
    (manifest.hashFunction ?? ENGINE_HASH) === run.hashFunction &&
    sameJson(manifest.comparedColumns, run.comparedColumns) &&
    sameJson(manifest.comparedConstants ?? {}, run.comparedConstants ?? {}) &&
    sameJson(manifest.comparedSources ?? {}, run.comparedSources ?? {}) &&
    sameJson(manifest.columns, run.columns)
  );
}
