// The people, orders and events every dialect of the audiences tests is seeded with, and the Models over
// them. Dates are relative to now (days back), never near a 7- or 30-day boundary, so "in the last N days"
// selects the same rows whenever the tests run and in whatever time zone the server is.
import type { ModelSpec } from '../../crds/index.ts';
import type { SegmentDialect } from '../../core/segments/index.ts';
import { modelSpec } from '../../crds/index.ts';

export type Cell = string | number | boolean | null | { daysAgo: number; date?: true };

export interface Table {
  name: string;
  columns: { name: string; type: 'int' | 'text' | 'bool' | 'timestamp' | 'date' }[];
  rows: Cell[][];
}

const ago = (daysAgo: number) => ({ daysAgo });
const dayAgo = (daysAgo: number) => ({ daysAgo, date: true as const });

/** Names that would break out of a naively quoted literal, in every dialect's way of quoting. */
export const HOSTILE_NAMES: Record<number, string> = {
  4: "O'Brien",
  5: 'back\\slash',
  6: "x'; DROP TABLE people; --",
  7: 'Zoë 😀 /* c */ \u2028',
  8: `"dq" \\' \\\\ %_ \n' OR '1'='1`,
};

export const PEOPLE: Table = {
  name: 'people',
  columns: [
    { name: 'id', type: 'int' },
    { name: 'name', type: 'text' },
    { name: 'country', type: 'text' },
    { name: 'ltv', type: 'int' },
    { name: 'unsub', type: 'bool' },
    { name: 'signed_up', type: 'timestamp' },
    { name: 'last_seen', type: 'date' },
  ],
  rows: [
    [1, 'Ada', 'DE', 900, false, ago(2), dayAgo(1)],
    [2, 'Bo', 'DE', 100, true, ago(20), dayAgo(10)],
    [3, 'Cy', 'FR', 600, false, ago(60), dayAgo(3)],
    [4, HOSTILE_NAMES[4] ?? '', 'US', null, false, null, null],
    [5, HOSTILE_NAMES[5] ?? '', 'DE', 500, false, ago(5), null],
    [6, HOSTILE_NAMES[6] ?? '', 'FR', 50, false, ago(100), null],
    [7, HOSTILE_NAMES[7] ?? '', null, 0, false, ago(1), null],
    [8, HOSTILE_NAMES[8] ?? '', 'US', 1500, true, ago(400), null],
  ],
};

export const ORDERS: Table = {
  name: 'orders',
  columns: [
    { name: 'id', type: 'int' },
    { name: 'person_id', type: 'int' },
    { name: 'total', type: 'int' },
    { name: 'at', type: 'timestamp' },
  ],
  rows: [
    [101, 1, 300, ago(3)],
    [102, 1, 400, ago(10)],
    [103, 1, 50, ago(40)],
    [104, 2, 20, ago(1)],
    [105, 3, 600, ago(5)],
    [106, 3, 1, ago(6)],
    [107, 5, 500, ago(100)],
    [108, 8, 1000, ago(2)],
    [109, 8, 1000, ago(3)],
    [110, 8, 1, ago(4)],
  ],
};

export const EVENTS: Table = {
  name: 'events',
  columns: [
    { name: 'id', type: 'int' },
    { name: 'person_id', type: 'int' },
    { name: 'name', type: 'text' },
    { name: 'at', type: 'timestamp' },
  ],
  rows: [
    [201, 1, 'viewed_pricing', ago(2)],
    [202, 2, 'viewed_pricing', ago(10)],
    [203, 3, 'signup', ago(1)],
    [204, 6, 'viewed_pricing', ago(3)],
    [205, 7, 'viewed_pricing', ago(45)],
  ],
};

export const TABLES = [PEOPLE, ORDERS, EVENTS];

/** `YYYY-MM-DD HH:MM:SS` (UTC) or `YYYY-MM-DD` of a relative cell, fixed when the module loads. */
const NOW = Date.now();
export function timeText(cell: { daysAgo: number; date?: true }): string {
  const iso = new Date(NOW - cell.daysAgo * 86_400_000).toISOString();
  return cell.date ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
}

/** The parent and related Models, on one Source; `table` names how each dialect spells the table. */
export function baseModels(table: (name: string) => string): Record<string, ModelSpec> {
  const sourceRef = { name: 'warehouse' };
  return {
    people: modelSpec.parse({
      sourceRef,
      table: table('people'),
      primaryKey: 'id',
      filterable: [
        { name: 'name', type: 'string' },
        { name: 'country', type: 'string' },
        { name: 'ltv', type: 'number' },
        { name: 'unsub', type: 'boolean' },
        { name: 'signed_up', type: 'timestamp' },
        { name: 'last_seen', type: 'date' },
      ],
      relationships: [
        { name: 'orders', modelRef: { name: 'orders' }, column: 'id', relatedColumn: 'person_id' },
        { name: 'events', modelRef: { name: 'events' }, column: 'id', relatedColumn: 'person_id' },
      ],
    }),
    orders: modelSpec.parse({
      sourceRef,
      table: table('orders'),
      primaryKey: 'id',
      filterable: [
        { name: 'total', type: 'number' },
        { name: 'at', type: 'timestamp' },
      ],
    }),
    events: modelSpec.parse({
      sourceRef,
      table: table('events'),
      primaryKey: 'id',
      filterable: [
        { name: 'name', type: 'string' },
        { name: 'at', type: 'timestamp' },
      ],
    }),
  };
}

type Where = Record<string, unknown>;
const seg = (where: Where) => ({ where });

/** Each operator and aggregate, with the people it selects from the rows above. */
export const CASES: { name: string; segment: { where: Where }; members: number[] }[] = [
  { name: 'equals', segment: seg({ column: 'country', equals: 'DE' }), members: [1, 2, 5] },
  {
    name: 'notEquals (null is not a match)',
    segment: seg({ column: 'country', notEquals: 'DE' }),
    members: [3, 4, 6, 8],
  },
  {
    name: 'not: true of equals (null is)',
    segment: seg({ not: true, column: 'country', equals: 'DE' }),
    members: [3, 4, 6, 7, 8],
  },
  { name: 'in', segment: seg({ column: 'country', in: ['FR', 'US'] }), members: [3, 4, 6, 8] },
  { name: 'notIn', segment: seg({ column: 'country', notIn: ['DE'] }), members: [3, 4, 6, 8] },
  { name: 'contains a quote', segment: seg({ column: 'name', contains: "'" }), members: [4, 6, 8] },
  { name: 'contains a backslash', segment: seg({ column: 'name', contains: '\\' }), members: [5, 8] },
  {
    name: 'contains LIKE wildcards, literally',
    segment: seg({ column: 'name', contains: '%_' }),
    members: [8],
  },
  { name: 'between', segment: seg({ column: 'ltv', between: [100, 600] }), members: [2, 3, 5] },
  { name: 'gt', segment: seg({ column: 'ltv', gt: 500 }), members: [1, 3, 8] },
  { name: 'gte', segment: seg({ column: 'ltv', gte: 500 }), members: [1, 3, 5, 8] },
  { name: 'lt', segment: seg({ column: 'ltv', lt: 100 }), members: [6, 7] },
  { name: 'lte', segment: seg({ column: 'ltv', lte: 100 }), members: [2, 6, 7] },
  { name: 'isNull', segment: seg({ column: 'ltv', isNull: true }), members: [4] },
  { name: 'isNotNull', segment: seg({ column: 'country', isNotNull: true }), members: [1, 2, 3, 4, 5, 6, 8] },
  { name: 'isTrue', segment: seg({ column: 'unsub', isTrue: true }), members: [2, 8] },
  { name: 'isFalse', segment: seg({ column: 'unsub', isFalse: true }), members: [1, 3, 4, 5, 6, 7] },
  { name: 'gt with a decimal as text', segment: seg({ column: 'ltv', gt: '499.5' }), members: [1, 3, 5, 8] },
  {
    name: 'inLast days (timestamp)',
    segment: seg({ column: 'signed_up', inLast: { amount: 7, unit: 'days' } }),
    members: [1, 5, 7],
  },
  {
    name: 'inLast weeks (timestamp)',
    segment: seg({ column: 'signed_up', inLast: { amount: 5, unit: 'weeks' } }),
    members: [1, 2, 5, 7],
  },
  {
    name: 'inLast hours (timestamp)',
    segment: seg({ column: 'signed_up', inLast: { amount: 72, unit: 'hours' } }),
    members: [1, 7],
  },
  {
    name: 'inLast days (date)',
    segment: seg({ column: 'last_seen', inLast: { amount: 7, unit: 'days' } }),
    members: [1, 3],
  },
  { name: 'related exists', segment: seg({ related: { relationship: 'orders' } }), members: [1, 2, 3, 5, 8] },
  {
    name: 'related count gte',
    segment: seg({ related: { relationship: 'orders', gte: 2 } }),
    members: [1, 3, 8],
  },
  {
    name: 'related count equals 0',
    segment: seg({ related: { relationship: 'orders', equals: 0 } }),
    members: [4, 6, 7],
  },
  {
    name: 'related count with a relative-date where',
    segment: seg({
      related: {
        relationship: 'orders',
        gte: 2,
        where: [{ column: 'at', inLast: { amount: 7, unit: 'days' } }],
      },
    }),
    members: [3, 8],
  },
  {
    name: 'related sum',
    segment: seg({ related: { relationship: 'orders', aggregate: 'sum', column: 'total', gt: 700 } }),
    members: [1, 8],
  },
  {
    name: 'related avg',
    segment: seg({ related: { relationship: 'orders', aggregate: 'avg', column: 'total', gte: 300 } }),
    members: [3, 5, 8],
  },
  {
    name: 'related min',
    segment: seg({ related: { relationship: 'orders', aggregate: 'min', column: 'total', lte: 1 } }),
    members: [3, 8],
  },
  {
    name: 'related max between',
    segment: seg({
      related: { relationship: 'orders', aggregate: 'max', column: 'total', between: [400, 600] },
    }),
    members: [1, 3, 5],
  },
  {
    name: 'an event named X in the last 7 days',
    segment: seg({
      related: {
        relationship: 'events',
        where: [
          { column: 'name', equals: 'viewed_pricing' },
          { column: 'at', inLast: { amount: 7, unit: 'days' } },
        ],
      },
    }),
    members: [1, 6],
  },
  {
    name: 'or',
    segment: seg({
      or: [
        { column: 'country', equals: 'FR' },
        { column: 'ltv', gt: 1000 },
      ],
    }),
    members: [3, 6, 8],
  },
  {
    name: 'and of or and not',
    segment: seg({
      and: [
        {
          or: [
            { column: 'country', equals: 'DE' },
            { column: 'country', equals: 'US' },
          ],
        },
        { not: true, column: 'unsub', isTrue: true },
        { not: true, related: { relationship: 'orders', lt: 1 } },
      ],
    }),
    members: [1, 5],
  },
  {
    name: 'inSegment',
    segment: seg({ and: [{ inSegment: { name: 'germany' } }, { column: 'ltv', gte: 500 }] }),
    members: [1, 5],
  },
  {
    name: 'not inSegment',
    segment: seg({ not: true, inSegment: { name: 'germany' } }),
    members: [3, 4, 6, 7, 8],
  },
  ...Object.entries(HOSTILE_NAMES).map(([id, name]) => ({
    name: `equals a hostile value literally (${JSON.stringify(name)})`,
    segment: seg({ column: 'name', equals: name }),
    members: [Number(id)],
  })),
  {
    name: 'in of hostile values',
    segment: seg({ column: 'name', in: Object.values(HOSTILE_NAMES) }),
    members: [4, 5, 6, 7, 8],
  },
];

/** A segment the others name through inSegment, and a segment of a segment. */
export function segmentModels(): Record<string, ModelSpec> {
  const sourceRef = { name: 'warehouse' };
  return {
    germany: modelSpec.parse({
      sourceRef,
      segment: { parent: { name: 'people' }, where: { column: 'country', equals: 'DE' } },
    }),
    'germany-buyers': modelSpec.parse({
      sourceRef,
      segment: { parent: { name: 'germany' }, where: { related: { relationship: 'orders' } } },
    }),
    'split-all': modelSpec.parse({
      sourceRef,
      segment: {
        parent: { name: 'people' },
        where: {
          or: [
            { column: 'ltv', isNull: true },
            { column: 'ltv', isNotNull: true },
          ],
        },
        splits: [
          { name: 'treatment', percent: 70 },
          { name: 'holdout', percent: 30 },
        ],
        splitSalt: 'spring-2026',
      },
    }),
  };
}

type ColumnType = Table['columns'][number]['type'];
const TYPES: Record<SegmentDialect, Record<ColumnType, string>> = {
  postgres: { int: 'bigint', text: 'text', bool: 'boolean', timestamp: 'timestamptz', date: 'date' },
  mysql: {
    int: 'BIGINT',
    text: 'VARCHAR(200) CHARACTER SET utf8mb4',
    bool: 'BOOLEAN',
    timestamp: 'DATETIME',
    date: 'DATE',
  },
  snowflake: {
    int: 'NUMBER(38,0)',
    text: 'VARCHAR',
    bool: 'BOOLEAN',
    timestamp: 'TIMESTAMP_NTZ',
    date: 'DATE',
  },
  bigquery: { int: 'INT64', text: 'STRING', bool: 'BOOL', timestamp: 'TIMESTAMP', date: 'DATE' },
  duckdb: { int: 'BIGINT', text: 'VARCHAR', bool: 'BOOLEAN', timestamp: 'TIMESTAMP', date: 'DATE' },
};

/** A seed value as each engine reads it, escaped here by hand so the compiler's escaping is not trusted twice. */
function seedLiteral(dialect: SegmentDialect, cell: Cell): string {
  if (cell === null) return 'NULL';
  if (typeof cell === 'number') return String(cell);
  if (typeof cell === 'boolean') return cell ? 'TRUE' : 'FALSE';
  if (typeof cell === 'object') {
    const text = timeText(cell);
    if (dialect === 'bigquery') return cell.date ? `DATE '${text}'` : `TIMESTAMP '${text}+00'`;
    if (dialect === 'postgres' && !cell.date) return `'${text}+00'`;
    return `'${text}'`;
  }
  if (dialect === 'mysql') return `'${cell.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
  if (dialect === 'bigquery')
    return `'${cell.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
  // PostgreSQL (standard_conforming_strings), DuckDB and the Snowflake emulator's DuckDB.
  return `'${cell.replace(/'/g, "''")}'`;
}

export function seedSql(dialect: SegmentDialect, table: Table, name = table.name): string[] {
  const quote = (n: string) =>
    dialect === 'mysql' || dialect === 'bigquery'
      ? `\`${n}\``
      : dialect === 'snowflake'
        ? `"${n.toUpperCase()}"`
        : `"${n}"`;
  const columns = table.columns.map((c) => `${quote(c.name)} ${TYPES[dialect][c.type]}`).join(', ');
  const rows = table.rows.map((r) => `(${r.map((cell) => seedLiteral(dialect, cell)).join(', ')})`);
  const names = table.columns.map((c) => quote(c.name)).join(', ');
  return [`CREATE TABLE ${name} (${columns})`, `INSERT INTO ${name} (${names}) VALUES ${rows.join(', ')}`];
}
