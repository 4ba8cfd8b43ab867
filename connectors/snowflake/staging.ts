// The staging of a Snowflake model when the engine chooses how (StageRequest.chooseStaging): the model's
// columns first (the query with LIMIT 0), then the engine's choice — Snowflake's own row hashes (HASH)
// computed beside the rows, and, against a warehouse snapshot in the same database, a narrowed staging
// (narrow.ts) where only the rows that may differ leave Snowflake.
import type snowflake from 'snowflake-sdk';
import {
  STAGED_HASH_PREFIX,
  stagedHashColumn,
  type ColumnInfo,
  type StagedHash,
  type StageRequest,
  type StageResult,
} from '../../core/connectors.ts';
import type { SourceSpec } from '../../crds/index.ts';
import { describeTable } from '../shared/duck.ts';
import { quoteIdent } from '../shared/sql.ts';
import { stageTextRows, type TextColumn, type TextValue } from '../shared/text-stage.ts';
import type { SnowflakeClient } from './client.ts';
import { quoteName, rowHashSql, snowflakeHashFunction, unsignedHashSql } from './hash.ts';
import { stageNarrowed } from './narrow.ts';
import { SnowflakeWarehouseSnapshot } from './snapshot.ts';
import { readSql, snowflakeError } from './source.ts';
import { planColumn } from './types.ts';

type Settings = NonNullable<SourceSpec['snowflake']>;

export interface ChosenStaging {
  req: StageRequest;
  settings: Settings;
  /** The model's SQL. */
  sql: string;
  /** Run a statement over the model (its parameters, cancel and errors handled) and give its rows. */
  query: (sqlText: string) => Promise<snowflake.RowStatement>;
  /** The same session, for small statements. */
  client: SnowflakeClient;
}

export function columnsOf(statement: snowflake.RowStatement): TextColumn[] {
  return (statement.getColumns() ?? []).map((c) =>
    planColumn({ name: c.getName(), type: c.getType(), precision: c.getPrecision(), scale: c.getScale() }),
  );
}

/** The columns as DuckDB spells their types once staged (an empty table of them, described). */
async function describePlans(req: StageRequest, plans: TextColumn[]): Promise<ColumnInfo[]> {
  const table = `sf_describe_${process.pid}`;
  const select = plans.map((p) => `CAST(NULL AS ${p.duckType}) AS ${quoteIdent(p.name)}`).join(', ');
  await req.duck.run(`CREATE TEMP TABLE ${table} AS SELECT ${select} WHERE FALSE`);
  try {
    const described = await describeTable(req.duck, table);
    return described.map((c, i) => ({ ...c, sourceType: plans[i]?.sourceType }));
  } finally {
    await req.duck.run(`DROP TABLE IF EXISTS ${table}`);
  }
}

/** The hashes of the engine's choice that Snowflake computes, numbered as the choice numbers them. */
function sourceHashes(plans: TextColumn[], wanted: { by: string; columns: string[] }[]): StagedHash[] {
  const names = new Set(plans.map((p) => p.name));
  // A model column that looks like a staged hash would be taken for one.
  if (plans.some((p) => p.name.startsWith(STAGED_HASH_PREFIX))) return [];
  return wanted.flatMap((hash, index) =>
    hash.by === 'source' && hash.columns.every((name) => names.has(name))
      ? [{ by: 'source' as const, columns: hash.columns, column: stagedHashColumn(index) }]
      : [],
  );
}

/** The staged column of a hash: Snowflake's signed text, stored as the engine's UBIGINT. */
export function hashColumn(hash: StagedHash): TextColumn {
  return { name: hash.column, duckType: 'UBIGINT', sourceType: 'NUMBER(19,0)', load: unsignedHashSql };
}

export async function stageChosen(ctx: ChosenStaging): Promise<StageResult> {
  const { req } = ctx;
  const described = await ctx.query(`${readSql(ctx.sql)}\nLIMIT 0`);
  const plans = columnsOf(described);
  const columns = await describePlans(req, plans);
  const sourceHash = await snowflakeHashFunction(ctx.client, req.log);
  const wanted = req.chooseStaging!(columns, sourceHash);
  const hashes = sourceHash ? sourceHashes(plans, wanted.hashes) : [];
  const withHash = hashes.length > 0 && sourceHash ? { sourceHash } : {};
  const narrow = wanted.narrow;
  if (narrow && sourceHash && req.snapshot instanceof SnowflakeWarehouseSnapshot) {
    const outcome = await stageNarrowed({ ...ctx, plans, columns, hashes }, req.snapshot, narrow);
    if (outcome) {
      req.log.info(
        outcome,
        outcome.byChecksum
          ? 'the model matches the warehouse snapshot by checksum: no row left Snowflake'
          : 'staged the Snowflake rows that differ from the warehouse snapshot',
      );
      return {
        columns,
        rows: outcome.rows,
        hashes,
        sourceHash,
        narrowed: {
          modelRows: outcome.modelRows,
          previousRows: outcome.previousRows,
          byChecksum: outcome.byChecksum,
        },
      };
    }
  }
  const select = [
    'm.*',
    ...hashes.map((h) => `CAST(${rowHashSql(h.columns)} AS VARCHAR) AS ${quoteName(h.column)}`),
  ];
  const statement = await ctx.query(`SELECT ${select.join(', ')} FROM (\n${ctx.sql}\n) AS m`);
  req.log.info(
    { queryId: statement.getQueryId(), rows: statement.getNumRows(), hashes: hashes.length },
    'Snowflake model query finished',
  );
  const staged = await stageTextRows(
    req,
    'Snowflake',
    [...plans, ...hashes.map(hashColumn)],
    statement.streamRows(),
    {
      toValues: (row: TextValue[]) => row,
      onReadError: (error) => snowflakeError(error, ctx.settings, 'reading the model rows'),
    },
  );
  return {
    ...staged,
    columns: staged.columns.filter((c) => !c.name.startsWith(STAGED_HASH_PREFIX)),
    hashes,
    ...withHash,
  };
}
