// What a BI tool does with the warehouse it is connected to: run a question's SQL there (read only) and
// give its rows as JSON values, as Metabase's and Looker's unformatted JSON exports do (integers and
// decimals as numbers, dates and timestamps as ISO 8601 text, booleans as booleans). Shared by the
// Metabase and Looker emulators; the warehouse is a real PostgreSQL server of the test stack.
import pg from 'pg';

export interface WarehouseColumn {
  name: string;
  /** PostgreSQL type OID of the result column. */
  oid: number;
}

export interface WarehouseResult {
  columns: WarehouseColumn[];
  rows: Record<string, unknown>[];
}

const NUMERIC_OIDS = new Set([20, 21, 23, 700, 701, 1700]);
const DATE_OID = 1082;
const TIMESTAMP_OID = 1114;
const TIMESTAMPTZ_OID = 1184;

function jsonValue(value: unknown, oid: number): unknown {
  if (value === null || value === undefined) return null;
  if (NUMERIC_OIDS.has(oid)) return Number(value);
  if (oid === DATE_OID || oid === TIMESTAMP_OID) return String(value).replace(' ', 'T');
  if (oid === TIMESTAMPTZ_OID) return new Date(String(value)).toISOString();
  return value;
}

/** Runs `sql` in a read-only transaction on `url`; values as the BI tools' JSON exports give them. */
export async function runOnWarehouse(url: string, sql: string, limit?: number): Promise<WarehouseResult> {
  const client = new pg.Client({ connectionString: url, types: { getTypeParser: () => (v: string) => v } });
  await client.connect();
  try {
    await client.query('BEGIN READ ONLY');
    const body = sql.trim().replace(/;\s*$/, '');
    const text = limit === undefined ? body : `SELECT * FROM (${body}) AS q LIMIT ${limit}`;
    const result = await client.query({ text, rowMode: 'array' });
    await client.query('COMMIT');
    const columns = result.fields.map((f) => ({ name: f.name, oid: f.dataTypeID }));
    const rows = (result.rows as unknown[][]).map((row) =>
      Object.fromEntries(columns.map((c, i) => [c.name, jsonValue(row[i], c.oid)])),
    );
    return { columns, rows };
  } finally {
    await client.end();
  }
}
