// The staging of a Sync whose snapshot BigQuery keeps (snapshot.ts): the model's columns are read first
// (a LIMIT 0 job), the engine chooses the staging with BigQuery's row hash (hash.ts), and then either a
// narrowed staging (narrow.ts) or every row with its hashes computed in BigQuery.
import type { BigQuery } from '@google-cloud/bigquery';
import {
  STAGED_HASH_PREFIX,
  stagedHashColumn,
  type ColumnInfo,
  type SourceHashFunction,
  type StagedHash,
  type StageRequest,
  type StageResult,
} from '../../core/connectors.ts';
import type { SynclineError } from '../../core/errors.ts';
import { quoteIdent } from '../shared/sql.ts';
import { stageTextRows, type TextColumn } from '../shared/text-stage.ts';
import { hashFunction, PROBE_SQL, quoteBq, rowHashExpr, unsignedHashSql } from './hash.ts';
import { stageNarrowed } from './narrow.ts';
import type { BqWarehouseSnapshot } from './snapshot.ts';
import { Jobs, type QueryOptions } from './snapshot-io.ts';
import { planColumn, type BigQueryColumnPlan, type BigQueryField, type RawCell } from './types.ts';

const READ = { permission: 'bigquery.tables.getData', what: 'the model query' };

/** BigQuery's row hash function, or undefined when the server cannot run the probe. */
async function probe(jobs: Jobs, req: StageRequest): Promise<SourceHashFunction | undefined> {
  try {
    const rows = await jobs.few({ query: PROBE_SQL }, READ);
    const value = rows[0]?.[0]?.v;
    return typeof value === 'string' ? hashFunction(value) : undefined;
  } catch (error) {
    req.log.info({ err: String(error) }, 'BigQuery cannot hash rows itself; DuckDB hashes them');
    return undefined;
  }
}

/** The columns as DuckDB spells their types. */
async function describe(req: StageRequest, plans: BigQueryColumnPlan[]): Promise<ColumnInfo[]> {
  const select = plans.map((p) => `CAST(NULL AS ${p.duckType}) AS ${quoteIdent(p.name)}`).join(', ');
  const described = (await req.duck.runAndReadAll(`DESCRIBE SELECT ${select}`)).getRowObjectsJS();
  return described.map((row, i) => ({
    name: String(row['column_name']),
    type: String(row['column_type']),
    sourceType: plans[i]?.sourceType,
  }));
}

function hashColumn(h: StagedHash): TextColumn {
  return { name: h.column, duckType: 'UBIGINT', sourceType: 'INT64', load: unsignedHashSql };
}

export async function stageHashed(input: {
  req: StageRequest;
  bq: BigQuery;
  store: BqWarehouseSnapshot;
  sql: string;
  job: Omit<QueryOptions, 'query'>;
  readError: (error: unknown) => SynclineError;
}): Promise<StageResult> {
  const { req, store, sql } = input;
  const jobs = new Jobs(input.bq, store.ref);
  const shape = await jobs.rows({ ...input.job, query: `SELECT * FROM (\n${sql}\n) LIMIT 0` }, READ);
  for await (const _row of shape.rows) break;
  const fields = shape.fields as BigQueryField[];
  const plans = fields.map(planColumn);
  const columns = await describe(req, plans);
  const sourceHash = await probe(jobs, req);
  const wanted = req.chooseStaging?.(columns, sourceHash) ?? { hashes: [], keysOnly: false };
  const names = new Set(plans.map((p) => p.name));
  const clash = plans.some((p) => p.name.startsWith(STAGED_HASH_PREFIX));
  const hashes: StagedHash[] = clash
    ? []
    : wanted.hashes.flatMap((h, i) =>
        h.by === 'source' && sourceHash && h.columns.every((c) => names.has(c))
          ? [{ ...h, column: stagedHashColumn(i) }]
          : [],
      );
  const key = columns.find((c) => c.name === req.model.primaryKey);
  const result = { columns, hashes, ...(hashes.length > 0 && sourceHash ? { sourceHash } : {}) };
  if (wanted.narrow && key && hashes.length === wanted.hashes.length) {
    const outcome = await stageNarrowed(
      {
        req,
        sql,
        fields,
        plans,
        hashes,
        key: { name: key.name, duckType: key.type },
        job: input.job,
        stageNothing: async () => {
          await req.duck.run(emptyTable(req.table, plans, hashes));
        },
      },
      store,
      wanted.narrow,
    );
    if (outcome) {
      req.log.info(
        outcome,
        outcome.byChecksum
          ? 'the model matches the warehouse snapshot by checksum: no row left BigQuery'
          : 'staged the BigQuery rows that differ from the warehouse snapshot',
      );
      const { modelRows, previousRows, byChecksum } = outcome;
      return { ...result, rows: outcome.rows, narrowed: { modelRows, previousRows, byChecksum } };
    }
  }
  const select = [
    ...fields.map((f) => `m.${quoteBq(f.name)}`),
    ...hashes.map((h) => `CAST(${rowHashExpr(fields, h.columns)} AS STRING) AS ${quoteBq(h.column)}`),
  ];
  const { rows } = await jobs.rows(
    { ...input.job, query: `SELECT ${select.join(', ')} FROM (\n${sql}\n) AS m` },
    READ,
  );
  const width = plans.length;
  const staged = await stageTextRows(req, 'BigQuery', [...plans, ...hashes.map(hashColumn)], rows, {
    toValues: (cells: RawCell[]) => [
      ...plans.map((plan, i) => plan.convert(cells[i] ?? { v: null })),
      ...cells.slice(width).map((c) => (c.v === null || c.v === undefined ? null : String(c.v))),
    ],
    onReadError: (error) => input.readError(error),
  });
  return { ...result, rows: staged.rows };
}

/** The staged table with no row: the model's columns and the hashes. */
function emptyTable(table: string, plans: BigQueryColumnPlan[], hashes: StagedHash[]): string {
  const columns = [
    ...plans.map((p) => `CAST(NULL AS ${p.duckType}) AS ${quoteIdent(p.name)}`),
    ...hashes.map((h) => `CAST(NULL AS UBIGINT) AS ${quoteIdent(h.column)}`),
  ];
  return `CREATE TABLE ${quoteIdent(table)} AS SELECT ${columns.join(', ')} WHERE FALSE`;
}
