// A Model that names a dbt model: the engine resolves it to the table dbt built (and its declared unique
// key) before the run. The manifest here is written by the test in dbt's format; connectors/dbt's own tests
// use one produced by a real `dbt run`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.ts';
import { runPlan, type RunPlan } from '../../core/plan.ts';
import { executeRun } from '../../runner/run.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, secretsFor, sql, tempState } from './helpers.ts';

function manifest(database: string): object {
  return {
    metadata: {
      dbt_schema_version: 'https://schemas.getdbt.com/dbt/manifest/v12.json',
      adapter_type: 'postgres',
    },
    nodes: {
      'model.shop.dim_customers': {
        unique_id: 'model.shop.dim_customers',
        resource_type: 'model',
        name: 'dim_customers',
        package_name: 'shop',
        database,
        schema: 'marts',
        alias: 'dim_customers',
        relation_name: `"${database}"."marts"."dim_customers"`,
        config: { materialized: 'table', unique_key: 'customer_id' },
      },
      'model.shop.stg_orders': {
        unique_id: 'model.shop.stg_orders',
        resource_type: 'model',
        name: 'stg_orders',
        package_name: 'shop',
        database,
        schema: 'staging',
        alias: 'stg_orders',
        relation_name: null,
        config: { materialized: 'ephemeral' },
      },
    },
  };
}

describe('dbt models in a run', () => {
  let server: PostgresServer;
  let sourceUrl: string;
  let destUrl: string;
  let dir: string;

  beforeAll(async () => {
    server = await startPostgres();
    sourceUrl = await server.createDatabase('warehouse');
    destUrl = await server.createDatabase('app');
    await sql(sourceUrl, 'CREATE SCHEMA marts');
    await sql(
      sourceUrl,
      `CREATE TABLE marts.dim_customers AS SELECT g AS customer_id, 'c' || g AS name FROM generate_series(1, 25) g`,
    );
    await sql(destUrl, 'CREATE TABLE customers (customer_id bigint PRIMARY KEY, name text)');
    dir = mkdtempSync(join(tmpdir(), 'syncline-dbt-'));
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest('warehouse')));
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function dbtPlan(dbt: object, state: string): RunPlan {
    const base = makePlan({
      server,
      sourceDb: 'warehouse',
      query: 'unused',
      destination: {
        type: 'postgres',
        postgres: {
          host: server.host,
          port: server.port,
          database: 'app',
          user: server.user,
          password: { secretKeyRef: { name: 'pg', key: 'password' } },
          tls: { mode: 'disable' },
          schema: 'public',
        },
      } as never,
      sync: { mode: 'upsert', target: { table: 'customers' } },
      stateUrl: state,
    });
    return runPlan.parse({
      ...base,
      model: { name: 'customers', spec: { sourceRef: { name: 'src' }, dbt } },
    });
  }

  it('syncs the table dbt built, keyed by its declared unique_key', async () => {
    const state = tempState();
    const plan = dbtPlan(
      { model: 'dim_customers', manifest: { path: join(dir, 'manifest.json') } },
      state.url,
    );
    const summary = await executeRun(plan, {
      secrets: secretsFor(server),
      log: silentLogger(),
      signal: new AbortController().signal,
    });
    state.remove();
    expect(summary.message).not.toMatch(/fail/i);
    expect(summary.result).toBe('Succeeded');
    expect(summary.counts.delivered).toBe(25);
    expect(await sql(destUrl, 'SELECT count(*)::int AS n FROM customers')).toEqual([{ n: 25 }]);
  });

  it('reads the manifest from a ConfigMap through the run deps', async () => {
    const state = tempState();
    const plan = dbtPlan(
      { model: 'shop.dim_customers', manifest: { configMapRef: { name: 'dbt', key: 'manifest.json' } } },
      state.url,
    );
    const summary = await executeRun(plan, {
      secrets: secretsFor(server),
      log: silentLogger(),
      signal: new AbortController().signal,
      readConfigMap: async (name, key) => {
        expect([name, key]).toEqual(['dbt', 'manifest.json']);
        return JSON.stringify(manifest('warehouse'));
      },
    });
    state.remove();
    expect(summary.result).toBe('Succeeded');
    expect(summary.counts.queried).toBe(25);
  });

  it('fails a run whose dbt model is ephemeral or missing, with the reason, before anything is sent', async () => {
    for (const [model, reason] of [
      ['stg_orders', 'DbtModelNotMaterialized'],
      ['dim_custmers', 'DbtModelNotFound'],
    ] as const) {
      const state = tempState();
      const plan = dbtPlan({ model, manifest: { path: join(dir, 'manifest.json') } }, state.url);
      const summary = await executeRun(plan, {
        secrets: secretsFor(server),
        log: silentLogger(),
        signal: new AbortController().signal,
      });
      state.remove();
      expect(summary.result).toBe('Failed');
      expect(summary.reason).toBe(reason);
      expect(summary.counts.delivered).toBe(0);
    }
  });
});
