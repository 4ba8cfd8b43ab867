// Invalid segment Models with the words the API server (CRD schema + CEL) rejects them with; part of the
// table test/fixtures/invalid-resources.ts runs against the real API server, crds/checks.ts and the CLI.

type Spec = Record<string, unknown>;

const segmentModel =
  (where: Spec, extra: Spec = {}): (() => Spec) =>
  () => ({
    sourceRef: { name: 'db' },
    segment: { parent: { name: 'people' }, where, ...extra },
  });

export const SEGMENT_INVALID_CASES: {
  name: string;
  kind: 'Model';
  spec: () => Spec;
  api: string;
  rule?: boolean;
}[] = [
  {
    name: 'segment condition with an unknown operator',
    kind: 'Model',
    spec: segmentModel({ column: 'country', startsWith: 'D' }),
    api: 'unknown field "spec.segment.where.startsWith"',
    rule: true,
  },
  {
    name: 'segment column condition without a value',
    kind: 'Model',
    spec: segmentModel({ and: [{ column: 'country' }] }),
    api: 'a column condition needs exactly one operator',
    rule: true,
  },
  {
    name: 'segment column condition with two operators',
    kind: 'Model',
    spec: segmentModel({ column: 'ltv', gt: 1, lt: 5 }),
    api: 'a column condition needs exactly one operator',
    rule: true,
  },
  {
    name: 'segment operator without its column',
    kind: 'Model',
    spec: segmentModel({ or: [{ equals: 'DE' }, { column: 'country', equals: 'FR' }] }),
    api: 'an operator needs the column it compares: add column',
    rule: true,
  },
  {
    name: 'segment between with one value',
    kind: 'Model',
    spec: segmentModel({ column: 'ltv', between: [100] }),
    api: 'should have at least 2 items',
  },
  {
    name: 'segment condition that is both and and or',
    kind: 'Model',
    spec: segmentModel({ and: [{ column: 'a', isNull: true }], or: [{ column: 'b', isNull: true }] }),
    api: 'a condition is exactly one of: and, or, column, related, inSegment',
    rule: true,
  },
  {
    name: 'segment column that is not a plain column name',
    kind: 'Model',
    spec: segmentModel({ column: 'country"; --', equals: 'DE' }),
    api: 'spec.segment.where.column in body should match',
  },
  {
    name: 'segment sum without the column it sums',
    kind: 'Model',
    spec: segmentModel({ related: { relationship: 'orders', aggregate: 'sum', gt: 500 } }),
    api: 'sum, avg, min and max need the related column they aggregate',
    rule: true,
  },
  {
    name: 'segment splits that do not add up to 100',
    kind: 'Model',
    spec: segmentModel(
      { column: 'country', equals: 'DE' },
      {
        splits: [
          { name: 'treatment', percent: 90 },
          { name: 'holdout', percent: 5 },
        ],
      },
    ),
    api: 'the percents of splits must add up to 100',
    rule: true,
  },
  {
    name: 'segment Model with a query as well',
    kind: 'Model',
    spec: () => ({ ...segmentModel({ column: 'country', equals: 'DE' })(), query: 'SELECT 1 AS id' }),
    api: 'a segment Model sets none of query, table or dbt',
    rule: true,
  },
];
