// How a run stages the model when the snapshot lives in the warehouse: the source's hash from the first
// sync on, and a narrowed staging only where the snapshot can be compared in the source exactly.
import { describe, expect, it } from 'vitest';
import type { Manifest } from '../core/diffstore/index.ts';
import type { SourceHashFunction } from '../core/connectors.ts';
import type { Mapping, SyncMode } from '../crds/index.ts';
import { modelFingerprint, resolveShape } from './mappings.ts';
import { comparedConstants, comparedSources, hashedItems } from './snapshot-match.ts';
import { chooseStaging } from './staging.ts';

const columns = [
  { name: 'id', type: 'BIGINT' },
  { name: 'email', type: 'VARCHAR' },
  { name: 'score', type: 'INTEGER' },
];
const MAPPED: Mapping[] = [
  { to: 'id', from: 'id', valueType: 'string' },
  { to: 'email', from: 'email', valueType: 'string' },
];
const postgres = { name: 'postgres', probe: 'pg-probe' };
const shapeOf = (mappings: Mapping[] = MAPPED) =>
  resolveShape({ mappings, columns, primaryKey: 'id', comparesAllColumns: false });

/** The manifest a run of `mappings` committed, hashed by PostgreSQL. */
function committed(mappings: Mapping[] = MAPPED, changes: Partial<Manifest> = {}): Manifest {
  const shape = shapeOf(mappings);
  return {
    version: 2,
    runId: 'r1',
    snapshot: 'snapshots/r1',
    committedAt: '2024-01-01T00:00:00Z',
    primaryKey: 'id',
    columns,
    modelFingerprint: modelFingerprint(columns, 'id'),
    comparedColumns: hashedItems(shape).map((i) => i.name),
    comparedSources: comparedSources(shape),
    comparedConstants: comparedConstants(shape),
    hashFunction: 'postgres',
    hashProbe: 'pg-probe',
    rowCount: 10,
    destinationType: 'http',
    destinationIdentity: 'here',
    ...changes,
  };
}

function choose(
  previous: Manifest | undefined,
  options: { mappings?: Mapping[]; mode?: SyncMode; fullResync?: boolean; identity?: string } = {},
) {
  return chooseStaging({
    columns,
    shape: shapeOf(options.mappings),
    primaryKey: 'id',
    previous,
    fullResync: options.fullResync ?? false,
    mode: options.mode ?? 'upsert',
    destinationType: 'http',
    engineProbe: 'duck-probe',
    sourceHash: { ...postgres, keysOnly: true },
    warehouse: { destinationIdentity: options.identity ?? 'here' },
  });
}

describe('chooseStaging with the snapshot in the diff store', () => {
  const inDiffStore = (sourceHash: SourceHashFunction) =>
    chooseStaging({
      columns,
      shape: shapeOf(),
      primaryKey: 'id',
      previous: committed(),
      fullResync: false,
      mode: 'upsert',
      destinationType: 'http',
      engineProbe: 'duck-probe',
      sourceHash,
    });

  it("keeps a source's hashes and stages keys only where the source can", () => {
    const decision = inDiffStore({ ...postgres, keysOnly: true });
    expect(decision.store).toEqual(postgres);
    expect(decision.choice).toEqual({ hashes: [{ by: 'source', columns: ['id', 'email'] }], keysOnly: true });
  });

  it("keeps the engine's hashes for a source that cannot stage keys only (its hashes would only add bytes)", () => {
    const decision = inDiffStore({ name: 'snowflake', probe: 'sf-probe' });
    expect(decision.store).toEqual({ name: 'duckdb', probe: 'duck-probe' });
    expect(decision.choice.keysOnly).toBe(false);
    expect(decision.choice.hashes.map((h) => h.by)).toEqual(['engine']);
  });
});

describe('chooseStaging with a warehouse snapshot', () => {
  it('keeps the source hash on a first sync, and stages every row', () => {
    const first = choose(undefined);
    expect(first.store).toEqual(postgres);
    expect(first.choice).toEqual({ hashes: [{ by: 'source', columns: ['id', 'email'] }], keysOnly: false });
  });

  it('narrows a resync of the same shape, never keys only', () => {
    expect(choose(committed()).choice).toEqual({
      hashes: [{ by: 'source', columns: ['id', 'email'] }],
      keysOnly: false,
      narrow: { compare: 0, fresh: [] },
    });
  });

  it('narrows a field sent under a second name, staging the rows with a value in it', () => {
    const second: Mapping[] = [...MAPPED, { to: 'contact', from: 'email', valueType: 'string' }];
    const before = committed([...MAPPED, { to: 'mail', from: 'email', valueType: 'string' }]);
    const decided = choose(before, { mappings: second });
    expect(decided.choice.narrow).toEqual({ compare: 0, fresh: ['email'] });
  });

  it.each([
    ['mode all', {}, { mode: 'all' as const }],
    ['mode archive', {}, { mode: 'archive' as const }],
    ['a full resync', {}, { fullResync: true }],
    ['another destination', {}, { identity: 'elsewhere' }],
    ['another hash probe', { hashProbe: 'old' }, {}],
    ['a snapshot hashed by DuckDB', { hashFunction: 'duckdb' }, {}],
    ['another model column set', { modelFingerprint: 'other' }, {}],
    [
      'a changed column type',
      { columns: [{ name: 'id', type: 'BIGINT' }, { name: 'email', type: 'BLOB' }, columns[2]!] },
      {},
    ],
    ['pending keys not folded', { pending: { file: 'pending/r0', runId: 'r0', folded: false } }, {}],
    ['another primary key', { primaryKey: 'email' }, {}],
  ])('stages every row after %s', (_, changes: Partial<Manifest>, options) => {
    const decided = choose(committed(MAPPED, changes), options);
    expect(decided.choice.narrow).toBeUndefined();
    expect(decided.choice.keysOnly).toBe(false);
  });

  it('stages every row once when the compared columns change (every hash is written anew)', () => {
    const wider: Mapping[] = [...MAPPED, { to: 'score', from: 'score', valueType: 'number' }];
    const decided = choose(committed(), { mappings: wider });
    expect(decided.choice).toEqual({
      hashes: [
        { by: 'source', columns: ['id', 'email'] },
        { by: 'source', columns: ['id', 'email', 'score'] },
      ],
      keysOnly: false,
    });
  });

  it('stages every row when a compared constant changed', () => {
    const constant = (value: string): Mapping[] => [...MAPPED, { to: 'source', value, valueType: 'string' }];
    const decided = choose(committed(constant('a')), { mappings: constant('b') });
    expect(decided.choice.narrow).toBeUndefined();
  });
});
