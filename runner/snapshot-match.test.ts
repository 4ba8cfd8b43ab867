import { describe, expect, it } from 'vitest';
import type { Manifest } from '../core/diffstore/index.ts';
import type { Mapping } from '../crds/index.ts';
import { modelFingerprint, resolveShape } from './mappings.ts';
import {
  columnTypesKept,
  comparedKept,
  constantsKept,
  hashedItems,
  manifestHashColumns,
  modelKept,
  resendReasons,
  snapshotDescribesRun,
  type RunShape,
} from './snapshot-match.ts';

const columns = [
  { name: 'id', type: 'BIGINT' },
  { name: 'email', type: 'VARCHAR' },
  { name: 'score', type: 'INTEGER' },
];
const shapeOf = (
  mappings: Mapping[] = [
    { to: 'id', from: 'id', valueType: 'string' as const },
    { to: 'mail', from: 'email', valueType: 'string' as const },
  ],
) => resolveShape({ mappings, columns, primaryKey: 'id', comparesAllColumns: false });

function runShape(shape = shapeOf()): RunShape {
  const items = hashedItems(shape);
  return {
    primaryKey: 'id',
    destinationType: 'http',
    comparedColumns: items.map((i) => i.name),
    comparedSources: Object.fromEntries(
      items.filter((i) => i.column !== i.name).map((i) => [i.name, i.column as string]),
    ),
    comparedConstants: {},
    hashProbe: 'probe',
    hashFunction: 'duckdb',
    destinationIdentity: 'here',
    columns,
    modelFingerprint: modelFingerprint(columns, 'id'),
  };
}

function manifestOf(run: RunShape, changes: Partial<Manifest> = {}): Manifest {
  return {
    version: 2,
    runId: 'r1',
    snapshot: 's',
    committedAt: 'now',
    rowCount: 1,
    ...run,
    ...changes,
  } as Manifest;
}

describe('snapshot match', () => {
  it('a snapshot of the same run shape describes the run', () => {
    const run = runShape();
    const m = manifestOf(run);
    expect(snapshotDescribesRun(m, run)).toBe(true);
    expect(resendReasons(m, run)).toEqual([]);
    expect(modelKept(m, columns, 'id')).toBe(true);
    expect(comparedKept(m, shapeOf())).toBe(true);
    expect(constantsKept(m, shapeOf())).toBe(true);
  });

  it('names why every row is sent again: the model, the destination type, the place', () => {
    const run = runShape();
    expect(resendReasons(manifestOf(run, { modelFingerprint: 'other' }), run)).toEqual(['model']);
    expect(resendReasons(manifestOf(run, { destinationType: 'postgres' }), run)).toEqual(['destinationType']);
    expect(resendReasons(manifestOf(run, { destinationIdentity: 'elsewhere' }), run)).toEqual([
      'destination',
    ]);
    // Snapshots from before destinations had an identity.
    expect(resendReasons(manifestOf(run, { destinationIdentity: undefined }), run)).toEqual([]);
  });

  it('a changed hash function, probe, column type or mapping means the snapshot no longer describes the run', () => {
    const run = runShape();
    for (const change of [
      { hashFunction: 'postgres' },
      { hashProbe: 'other' },
      { columns: [...columns.slice(0, 2), { name: 'score', type: 'BIGINT' }] },
      { comparedColumns: ['id'] },
      { version: 1 as const },
    ]) {
      expect(snapshotDescribesRun(manifestOf(run, change), run), JSON.stringify(change)).toBe(false);
    }
    const renamed = shapeOf([
      { to: 'id', from: 'id', valueType: 'string' },
      { to: 'mail', from: 'score', valueType: 'string' },
    ]);
    expect(comparedKept(manifestOf(run), renamed)).toBe(false);
  });

  it('compares column types by name, and maps compared items back to their columns', () => {
    const run = runShape();
    const m = manifestOf(run);
    expect(manifestHashColumns(m)).toEqual(
      m.comparedColumns.map((name) => m.comparedSources?.[name] ?? name),
    );
    expect(columnTypesKept(m, columns, ['id', 'email'])).toBe(true);
    expect(columnTypesKept(m, [{ name: 'id', type: 'VARCHAR' }, columns[1]!], ['id'])).toBe(false);
    expect(columnTypesKept(m, columns.slice(0, 1), ['email'])).toBe(false);
  });

  it('a changed static value is a changed constant', () => {
    const withValue = shapeOf([
      { to: 'id', from: 'id', valueType: 'string' },
      { to: 'tier', value: 'gold', valueType: 'string' },
    ]);
    const m = manifestOf(runShape(withValue), { comparedConstants: { '__syncline_value:tier': '"silver"' } });
    expect(constantsKept(m, withValue)).toBe(false);
  });
});
