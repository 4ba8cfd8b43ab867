// Audiences (issue 16): every operator and aggregate of a segment, compiled for each dialect and run
// through that dialect's source connector against a real server — PostgreSQL, MariaDB, DuckDB (a files
// Source over Parquet), the Snowflake emulator and the BigQuery emulator — give the same members; hostile
// values (quotes, backslashes, comment markers, LIKE wildcards, newlines, unicode) match literally and
// inject nothing; splits give each key the group the reference hash gives, on every dialect.
import { BigQuery } from '@google-cloud/bigquery';
import { DuckDBInstance } from '@duckdb/node-api';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import { modelSpec } from '../../crds/index.ts';
import type { SourceConnector, StageRequest } from '../../core/connectors.ts';
import { compileSegment, splitGroupOf, type SegmentDialect } from '../../core/segments/index.ts';
import { bigquerySource } from '../../connectors/bigquery/source.ts';
import { filesSource } from '../../connectors/files/source.ts';
import { mysqlSource } from '../../connectors/mysql/source.ts';
import { postgresSource } from '../../connectors/postgres/source.ts';
import { openDuck, rowsOf, testContext } from '../../connectors/shared/test-context.ts';
import { snowflakeSource } from '../../connectors/snowflake/source.ts';
import { startSnowflakeEmulator, type SnowflakeEmulator } from '../emulators/snowflake/server.ts';
import { startBigQueryEmulator, type BigQueryEmulator } from '../stack/bigquery.ts';
import { startMysql, type MysqlServer } from '../stack/mysql.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { CASES, TABLES, baseModels, seedSql, segmentModels } from './audiences-data.ts';

const ctx = testContext({
  pg: { password: '' },
  mysql: { password: '' },
  snowflake: { password: 'sf-secret' },
});
const secret = (name: string) => ({ secretKeyRef: { name, key: 'password' } });

interface Target {
  dialect: SegmentDialect;
  connector: SourceConnector;
  source: SourceSpec;
  table: (name: string) => string;
}

/** The members of a segment: its compiled SQL staged through the Source's own connector. */
async function members(target: Target, name: string, models: Record<string, ModelSpec>) {
  const lookup = (n: string) => models[n];
  const spec = models[name] as ModelSpec;
  const compiled = compileSegment({ name, spec }, target.dialect, lookup);
  const { duck, close } = await openDuck();
  const req: StageRequest = {
    ...ctx,
    source: target.source,
    model: { sourceRef: { name: 'warehouse' }, query: compiled.sql, primaryKey: compiled.primaryKey },
    duck,
    table: 'staged',
    labels: { namespace: 'growth', sync: 'audiences', runId: `run-${name}` },
  };
  try {
    await target.connector.stage(req);
    const rows = await rowsOf(duck, 'SELECT * FROM staged');
    const lower = rows.map((r) =>
      Object.fromEntries(Object.entries(r).map(([k, v]) => [k.toLowerCase(), v])),
    );
    return {
      ids: lower.map((r) => Number(r['id'])).sort((a, b) => a - b),
      rows: lower,
      sql: compiled.sql,
    };
  } finally {
    close();
  }
}

function withSegment(
  target: Target,
  name: string,
  segment: Record<string, unknown>,
): Record<string, ModelSpec> {
  return {
    ...baseModels(target.table),
    ...segmentModels(),
    [name]: modelSpec.parse({
      sourceRef: { name: 'warehouse' },
      segment: { parent: { name: 'people' }, ...segment },
    }),
  };
}

function suite(title: string, start: () => Promise<Target>, stop: () => Promise<void>) {
  describe(title, () => {
    let target: Target;
    beforeAll(async () => {
      target = await start();
    }, 600_000);
    afterAll(stop);

    it.each(CASES)('$name', async (c) => {
      const result = await members(target, 'case', withSegment(target, 'case', c.segment));
      expect(result.ids, result.sql).toEqual(c.members);
    });

    it('a segment of a segment has the conditions of both', async () => {
      const models = { ...baseModels(target.table), ...segmentModels() };
      expect((await members(target, 'germany-buyers', models)).ids).toEqual([1, 2, 5]);
    });

    it('splits: each key in the group the reference hash gives it, the same on every run', async () => {
      const models = { ...baseModels(target.table), ...segmentModels() };
      const first = await members(target, 'split-all', models);
      const second = await members(target, 'split-all', models);
      expect(first.ids).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      const segment = (models['split-all'] as ModelSpec).segment as NonNullable<ModelSpec['segment']>;
      const groups = Object.fromEntries(first.rows.map((r) => [Number(r['id']), r['split_group']]));
      const expected = Object.fromEntries(first.ids.map((id) => [id, splitGroupOf(segment, String(id))]));
      expect(groups).toEqual(expected);
      expect(new Set(Object.values(groups))).toEqual(new Set(['treatment', 'holdout']));
      expect(Object.fromEntries(second.rows.map((r) => [Number(r['id']), r['split_group']]))).toEqual(groups);
    });

    it('the hostile values left every table as it was', async () => {
      const models = { ...baseModels(target.table), ...segmentModels() };
      const everyone = await members(target, 'split-all', models);
      expect(everyone.ids).toHaveLength(8);
    });
  });
}

let pgServer: PostgresServer | undefined;
suite(
  'PostgreSQL',
  async () => {
    pgServer = await startPostgres();
    const url = await pgServer.createDatabase('src');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    for (const table of TABLES)
      for (const statement of seedSql('postgres', table)) await client.query(statement);
    await client.end();
    ctx.secrets = testContext({
      pg: { password: pgServer.password },
      snowflake: { password: 'sf-secret' },
    }).secrets;
    return {
      dialect: 'postgres',
      connector: postgresSource,
      table: (n) => n,
      source: {
        type: 'postgres',
        postgres: {
          host: pgServer.host,
          port: pgServer.port,
          database: 'src',
          user: pgServer.user,
          password: secret('pg'),
        },
      } as SourceSpec,
    };
  },
  async () => pgServer?.stop(),
);

let mysql: MysqlServer | undefined;
suite(
  'MariaDB',
  async () => {
    mysql = await startMysql();
    const statements = TABLES.flatMap((t) => seedSql('mysql', t, `${mysql?.database}.${t.name}`));
    await mysql.query(statements.join(';\n'));
    ctx.secrets = testContext({ mysql: { password: mysql.password } }).secrets;
    return {
      dialect: 'mysql',
      connector: mysqlSource,
      table: (n) => n,
      source: {
        type: 'mysql',
        mysql: {
          host: mysql.host,
          port: mysql.port,
          database: mysql.database,
          user: mysql.user,
          password: secret('mysql'),
        },
      } as SourceSpec,
    };
  },
  async () => mysql?.stop(),
);

suite(
  'DuckDB (a files Source over Parquet)',
  async () => {
    const folder = join(ctx.tmpDir, 'files');
    mkdirSync(folder, { recursive: true });
    const instance = await DuckDBInstance.create(':memory:');
    const duck = await instance.connect();
    for (const table of TABLES) {
      for (const statement of seedSql('duckdb', table)) await duck.run(statement);
      await duck.run(`COPY ${table.name} TO '${join(folder, `${table.name}.parquet`)}' (FORMAT parquet)`);
    }
    duck.closeSync();
    instance.closeSync();
    return {
      dialect: 'duckdb',
      connector: filesSource,
      table: (n) => `${n}.parquet`,
      source: { type: 'files', files: { url: folder } } as SourceSpec,
    };
  },
  async () => undefined,
);

let sf: SnowflakeEmulator | undefined;
suite(
  'Snowflake (the emulator, through snowflake-sdk)',
  async () => {
    sf = await startSnowflakeEmulator();
    sf.addUser({ name: 'loader', password: 'sf-secret' });
    sf.setWarehouse('COMPUTE_WH', 'STARTED');
    await sf.createDatabase('ANALYTICS');
    await sf.exec(TABLES.flatMap((t) => seedSql('snowflake', t)).join(';\n') + ';', 'ANALYTICS');
    ctx.secrets = testContext({ snowflake: { password: 'sf-secret' } }).secrets;
    return {
      dialect: 'snowflake',
      connector: snowflakeSource,
      table: (n) => n,
      source: {
        type: 'snowflake',
        snowflake: {
          account: sf.account,
          user: 'loader',
          password: secret('snowflake'),
          warehouse: 'COMPUTE_WH',
          database: 'ANALYTICS',
          schema: 'PUBLIC',
          host: sf.url,
        },
      } as SourceSpec,
    };
  },
  async () => sf?.stop(),
);

let bq: BigQueryEmulator | undefined;
suite(
  'BigQuery (goccy/bigquery-emulator)',
  async () => {
    bq = await startBigQueryEmulator({ dataset: 'analytics' });
    const client = new BigQuery({ projectId: bq.project, apiEndpoint: bq.endpoint });
    for (const table of TABLES)
      for (const statement of seedSql('bigquery', table, `analytics.${table.name}`))
        await client.query(statement);
    return {
      dialect: 'bigquery',
      connector: bigquerySource,
      table: (n) => `analytics.${n}`,
      source: {
        type: 'bigquery',
        bigquery: { project: bq.project, dataset: 'analytics', apiEndpoint: bq.endpoint },
      } as SourceSpec,
    };
  },
  async () => bq?.stop(),
);

afterAll(() => ctx.cleanup());
