// The column kinds each SaaS connector says it refuses for a field type (capabilities.refusedColumns,
// which the operator turns into IncompatibleFieldType before any run) agree with what a run does: every
// value of a refused kind, built from a real DuckDB column as the engine builds a change's fields, is
// refused by the connector's conversion, and some value of every other kind is accepted.
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hubspotDestination } from '../connectors/hubspot/destination.ts';
import { propertyValue } from '../connectors/hubspot/types.ts';
import { salesforceDestination } from '../connectors/salesforce/destination.ts';
import { fieldValue } from '../connectors/salesforce/types.ts';
import { columnKind, type ColumnKind } from '../core/column-types.ts';
import type { DestinationConnector, DestinationField } from '../core/connectors.ts';
import { changeBuilder, fieldsSql } from './fields.ts';
import { resolveShape } from './mappings.ts';

/** Columns of each kind, as SQL, with values meant to fit as many field types as they can. */
const SAMPLES: Record<ColumnKind, string[]> = {
  boolean: ['TRUE', 'FALSE'],
  integer: ['0::TINYINT', '1::INTEGER', '1700000000000::BIGINT', '9223372036854775807::BIGINT', '1::HUGEINT'],
  decimal: ['1::DECIMAL(1,0)', '12.50::DECIMAL(10,2)', '1700000000000::DECIMAL(18,0)'],
  float: ['1.0::DOUBLE', '1.5::FLOAT', "'nan'::DOUBLE", '1700000000000::DOUBLE'],
  date: ["DATE '2024-02-29'"],
  timestamp: [
    "TIMESTAMP '2024-02-29 12:34:56.789'",
    "TIMESTAMPTZ '2024-02-29 12:34:56+02'",
    "TIMESTAMP_NS '2024-02-29 12:34:56.123456789'",
    "TIMESTAMP_S '2024-02-29 12:34:56'",
  ],
  time: ["TIME '12:34:56'", "TIMETZ '12:34:56+02'"],
  interval: ['INTERVAL 1 DAY', 'INTERVAL 0 SECOND', 'INTERVAL 90 MINUTE'],
  text: ["'abc'", "'1'", "'true'", "'2024-02-29'", "'2024-02-29T12:00:00Z'", 'uuid()'],
  nested: ['[1]', "['2024-02-29']", '[TRUE]::BOOLEAN[1]', "{'a': 1}", "MAP {'k': 1}", '[]::INTEGER[]'],
  other: ["'1'::JSON", "'true'::JSON", `'"2024-02-29"'::JSON`],
};

let instance: DuckDBInstance;
let conn: DuckDBConnection;
/** Each sample's DuckDB type and the value a destination receives for it. */
const values = new Map<ColumnKind, { sql: string; type: string; value: unknown }[]>();

beforeAll(async () => {
  instance = await DuckDBInstance.create(':memory:');
  conn = await instance.connect();
  await conn.run("SET TimeZone = 'UTC'");
  for (const [kind, samples] of Object.entries(SAMPLES) as [ColumnKind, string[]][]) {
    const built = [];
    for (const sql of samples) built.push(await delivered(sql));
    values.set(kind, built);
  }
});
afterAll(() => {
  conn.closeSync();
  instance.closeSync();
});

/** The column's type and its value in a change's fields, through fieldsSql and changeBuilder. */
async function delivered(sql: string): Promise<{ sql: string; type: string; value: unknown }> {
  const typed = await conn.runAndReadAll(`SELECT typeof(${sql})`);
  const type = String(typed.getRowsJson()[0]?.[0]);
  const shape = resolveShape({
    mappings: [{ to: 'f', from: 'v', valueType: 'string' }],
    columns: [
      { name: 'id', type: 'INTEGER' },
      { name: 'v', type },
    ],
    primaryKey: 'id',
    comparesAllColumns: false,
  });
  const fields = fieldsSql(shape, 'id', 'p.id').fields;
  const reader = await conn.runAndReadAll(
    `SELECT CAST(json_object('operation', 'upsert', 'key', '1', 'fields', ${fields}) AS VARCHAR) ` +
      `FROM (SELECT 1 AS id, ${sql} AS v) c`,
  );
  const change = changeBuilder(shape, 'ns/sync')(String(reader.getRowsJson()[0]?.[0]));
  return { sql, type, value: change.fields['f'] };
}

const refused = (result: unknown) =>
  typeof result === 'object' && result !== null && 'refused' in (result as object);

/** A connector's conversions for a discovered field type, one per raw type the tool has for it. */
interface Converter {
  connector: DestinationConnector;
  convert: Partial<Record<DestinationField['type'], ((value: unknown) => unknown)[]>>;
}

const CONVERTERS: Record<string, Converter> = {
  hubspot: {
    connector: hubspotDestination,
    convert: Object.fromEntries(
      (
        [
          ['number', 'number'],
          ['boolean', 'bool'],
          ['date', 'date'],
          ['datetime', 'datetime'],
          ['string', 'string'],
        ] as const
      ).map(([field, type]) => [field, [(v: unknown) => propertyValue({ name: 'p', type }, v)]]),
    ),
  },
  salesforce: {
    connector: salesforceDestination,
    convert: Object.fromEntries(
      (
        [
          ['number', ['double', 'currency', 'percent', 'int', 'long']],
          ['boolean', ['boolean']],
          ['date', ['date']],
          ['datetime', ['datetime']],
          ['string', ['string', 'textarea']],
        ] as const
      ).map(([field, types]) => [
        field,
        types.map(
          (type) => (v: unknown) => fieldValue({ name: 'F__c', type, precision: 18, length: 255 }, v),
        ),
      ]),
    ),
  },
};

describe('column kinds', () => {
  it('classifies the types DuckDB stages', () => {
    for (const [kind, built] of values)
      for (const { sql, type } of built) expect(columnKind(type), `${sql}: ${type}`).toBe(kind);
  });
});

describe.each(Object.entries(CONVERTERS))('%s: refusedColumns agree with the conversion', (_, c) => {
  const table = c.connector.capabilities.refusedColumns ?? {};
  for (const [fieldType, converts] of Object.entries(c.convert) as [
    DestinationField['type'],
    ((value: unknown) => unknown)[],
  ][]) {
    it(`${fieldType} fields`, () => {
      for (const [kind, built] of values) {
        for (const convert of converts) {
          const results = built.map((b) => ({ ...b, refused: refused(convert(b.value)) }));
          if (table[fieldType]?.includes(kind)) {
            const accepted = results.filter((r) => !r.refused).map((r) => `${r.sql} → ${String(r.value)}`);
            expect(accepted, `${kind} into ${fieldType} is listed as refused`).toEqual([]);
          } else {
            expect(
              results.some((r) => !r.refused),
              `no ${kind} value fits a ${fieldType} field: add it to refusedColumns.${fieldType}`,
            ).toBe(true);
          }
        }
      }
    });
  }
});
