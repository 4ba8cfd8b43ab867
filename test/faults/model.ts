// The model of the fault suite: a PostgreSQL table of hostile values (ids beyond 2^53, NaN, ±Infinity
// and -0 doubles, numeric(38,10), jsonb with big integers, JSON null next to SQL NULL, bigint[] beyond
// 2^53, texts up to 64 KiB, '' next to NULL) and the seeded changes made to it between runs: updates,
// reverts to earlier values, deletes, deletes followed by the same row again, and inserts.
import { sql } from '../engine/helpers.ts';

export const COLUMNS = ['id', 'f8', 'num', 'doc', 'ids', 'tags', 'body', 'note'] as const;

/** `text[]` literal of SQL values, picked by `(g + v) % n`. */
export function pick(values: (string | null)[], g: string, v: string, cast: string): string {
  const items = values.map((x) => (x === null ? 'NULL' : `'${x.replaceAll("'", "''")}'`)).join(', ');
  return `(ARRAY[${items}]::text[])[1 + ((${g}) + (${v})) % ${values.length}]::${cast}`;
}

const DOUBLES = [
  'NaN',
  'Infinity',
  '-Infinity',
  '-0',
  '0',
  '0.1',
  '1e308',
  '5e-324',
  '-2.2250738585072014e-308',
  '0.30000000000000004',
  '9007199254740993',
  null,
];

const DECIMALS = [
  '1234567890123456789012345678.1234567891',
  '-9999999999999999999999999999.9999999999',
  '0.0000000001',
  '-0.0000000001',
  '0',
  '9007199254740993.0000000001',
  null,
];

const DOCS = [
  '{"big":123456789012345678901234567890,"b53":9007199254740993,"nested":{"a":[1,{"b":null}],"s":"x\\"y"},"n":null}',
  'null',
  null,
  '[9007199254740993,-123456789012345678901234567890,1.5e300,0.1000000000000000055511151231257827]',
  '"text"',
  '{}',
  '[]',
  'true',
  '{"deep":{"deeper":{"deepest":[null,{"z":0.000000000000000000001}]}}}',
];

const ARRAYS = ['{9007199254740993,-9223372036854775808,9223372036854775807}', '{}', null, '{1,NULL,3}'];

const TAGS = ['{}', null, '{"",NULL,"a,b","{x}","q\\"uote","back\\\\slash"," spaced "}', '{t1,t2}'];

const TEXTS = [
  '',
  null,
  '\\N',
  'NULL',
  'tab\there',
  'line\nbreak\r\nend',
  '"quoted", \'single\'',
  '😀 ünïcödé',
  'back\\slash',
  '{{ row.id }}',
];

/** The SQL expressions of one row's values, for row number `g` and version `v` (both SQL integers). */
function values(g: string, v: string): string {
  const big = `repeat('0123456789abcdef', 4096)`; // 64 KiB
  return [
    pick(DOUBLES, g, v, 'float8'),
    `CASE WHEN ((${g}) + (${v})) % 7 = 6 THEN ((${g}) * 7919 + (${v}))::numeric / 7 ELSE ${pick(DECIMALS, g, v, 'numeric')} END::numeric(38,10)`,
    `CASE WHEN ((${g}) + (${v})) % 10 = 9 THEN jsonb_build_object('g', ${g}, 'v', ${v}, 'id', 9007199254740993 + (${g})) ELSE ${pick(DOCS, g, v, 'jsonb')} END`,
    `CASE WHEN ((${g}) + (${v})) % 5 = 4 THEN ARRAY[9007199254740993 + (${g}), -(${v})]::bigint[] ELSE ${pick(ARRAYS, g, v, 'bigint[]')} END`,
    pick(TAGS, g, v, 'text[]'),
    `CASE WHEN (${g}) % 300 = 7 THEN ${big} || (${v})::text ELSE ${pick(TEXTS, g, v, 'text')} END`,
    `CASE ((${g}) + (${v})) % 3 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'v' || (${v}) END`,
  ].join(', ');
}

/** Ids of row numbers: small, beyond 2^53, and below -2^53. */
function idOf(g: string): string {
  return `CASE (${g}) % 3 WHEN 0 THEN (${g})::bigint WHEN 1 THEN 9007199254740993 + (${g}) ELSE -9007199254740993 - (${g}) END`;
}

/**
 * What a model table holds: its columns (the key `id` first), their SQL types, and the SQL expressions of
 * a row's values for row number `g`, version `v` and id `id` (SQL expressions). The default is the hostile
 * model above; other suites (hubspot.test.ts) bring values their destination can take.
 */
export interface ModelShape {
  columns: readonly string[];
  /** Column definitions of CREATE TABLE, the key included. */
  ddl: string;
  values(g: string, v: string, id: string): string;
  idOf(g: string): string;
}

export const HOSTILE: ModelShape = {
  columns: COLUMNS,
  ddl: `id bigint PRIMARY KEY, f8 double precision, num numeric(38,10), doc jsonb,
                            ids bigint[], tags text[], body text, note text`,
  values,
  idOf,
};

export async function createModel(
  url: string,
  table: string,
  rows: number,
  shape: ModelShape = HOSTILE,
): Promise<void> {
  await sql(
    url,
    `DROP TABLE IF EXISTS ${table};
     CREATE TABLE ${table} (${shape.ddl})`,
  );
  await insertRows(url, table, 1, rows, 0, shape);
}

async function insertRows(
  url: string,
  table: string,
  from: number,
  to: number,
  version: number,
  shape: ModelShape,
): Promise<void> {
  await sql(
    url,
    `INSERT INTO ${table} (${shape.columns.join(', ')}) SELECT ${shape.idOf('g')}, ${shape.values('g', String(version), shape.idOf('g'))} FROM generate_series(${from}, ${to}) g`,
  );
}

/** What one trial did to the model, for the report of a failure. */
export interface Mutation {
  updated: number;
  reverted: number;
  deleted: number;
  reinserted: number;
  insertedFrom: number;
  inserted: number;
}

/** Seeded changes between runs; the model's history is a function of the seed alone. */
export class ModelChanges {
  private nextRow: number;
  private snapshots: string[] = [];
  /** Deleted ids and the snapshot that still holds their last values. */
  private deleted = new Map<string, string>();
  private readonly url: string;
  private readonly table: string;
  private readonly random: () => number;
  private readonly shape: ModelShape;

  constructor(url: string, table: string, rows: number, random: () => number, shape: ModelShape = HOSTILE) {
    this.url = url;
    this.table = table;
    this.nextRow = rows + 1;
    this.random = random;
    this.shape = shape;
  }

  private sample<T>(items: T[], n: number): T[] {
    const copy = [...items];
    const out: T[] = [];
    while (out.length < n && copy.length > 0) {
      const i = Math.floor(this.random() * copy.length);
      out.push(copy.splice(i, 1)[0] as T);
    }
    return out;
  }

  private async ids(): Promise<string[]> {
    const rows = await sql<{ id: string }>(this.url, `SELECT id::text AS id FROM ${this.table} ORDER BY id`);
    return rows.map((r) => r.id);
  }

  private async snapshot(trial: number): Promise<string> {
    const name = `${this.table}_snap_${trial}`;
    await sql(this.url, `DROP TABLE IF EXISTS ${name}; CREATE TABLE ${name} AS SELECT * FROM ${this.table}`);
    this.snapshots.push(name);
    return name;
  }

  /** Apply one trial's changes; `scale` rows are touched per kind (about). */
  async mutate(trial: number, scale: number): Promise<Mutation> {
    const before = await this.snapshot(trial);
    const ids = await this.ids();
    const chosen = this.sample(ids, scale * 4);
    const [updates, reverts, deletes, bounce] = [0, 1, 2, 3].map((k) =>
      chosen.slice(k * scale, (k + 1) * scale),
    ) as [string[], string[], string[], string[]];
    const t = this.table;
    const set = this.shape.columns.slice(1).join(', ');
    await sql(
      this.url,
      `UPDATE ${t} SET (${set}) = (SELECT ${this.shape.values('abs(id % 1000003)', String(trial + 1), `${t}.id`)}) WHERE id = ANY($1::bigint[])`,
      [updates],
    );
    // Back to the values of a random earlier snapshot (the values some earlier run delivered or tried to).
    const earlier = this.snapshots[Math.floor(this.random() * this.snapshots.length)] as string;
    await sql(
      this.url,
      `UPDATE ${t} SET (${set}) = (SELECT ${set} FROM ${earlier} s WHERE s.id = ${t}.id)
        WHERE id = ANY($1::bigint[]) AND id IN (SELECT id FROM ${earlier})`,
      [reverts],
    );
    await sql(this.url, `DELETE FROM ${t} WHERE id = ANY($1::bigint[])`, [deletes]);
    for (const id of deletes) this.deleted.set(id, before);
    // Deleted and inserted again unchanged, in the same trial.
    await sql(this.url, `DELETE FROM ${t} WHERE id = ANY($1::bigint[])`, [bounce]);
    await sql(this.url, `INSERT INTO ${t} SELECT * FROM ${before} WHERE id = ANY($1::bigint[])`, [bounce]);
    const reinserted = await this.reinsert(Math.ceil(scale / 2));
    const insertedFrom = this.nextRow;
    await insertRows(this.url, t, insertedFrom, insertedFrom + scale - 1, trial + 1, this.shape);
    this.nextRow += scale;
    return {
      updated: updates.length,
      reverted: reverts.length,
      deleted: deletes.length,
      reinserted,
      insertedFrom,
      inserted: scale,
    };
  }

  /** Rows deleted by earlier trials come back unchanged. */
  private async reinsert(n: number): Promise<number> {
    const back = this.sample([...this.deleted.keys()], n);
    for (const id of back) {
      const snap = this.deleted.get(id) as string;
      await sql(this.url, `INSERT INTO ${this.table} SELECT * FROM ${snap} WHERE id = $1::bigint`, [id]);
      this.deleted.delete(id);
    }
    return back.length;
  }
}
