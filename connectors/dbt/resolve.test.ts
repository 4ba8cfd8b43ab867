// Resolution against a manifest produced by real dbt-core (Postgres adapter) running against the test
// stack's PostgreSQL; the resolved relations are then queried to show they are the tables dbt built.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import { runDbt } from '../../test/stack/dbt.ts';
import { startPostgres, type PostgresServer } from '../../test/stack/postgres.ts';
import { testContext } from '../shared/test-context.ts';
import { resolveDbtModel } from './index.ts';
import { synclineFailure as failure } from '../shared/test-context.ts';

let postgres: PostgresServer;
let warehouseUrl: string;
let manifestPath: string;
let manifestText: string;
let http: Server;
let httpUrl: string;
const dir = mkdtempSync(join(tmpdir(), 'syncline-dbt-'));
const ctx = testContext();

const FILES: Record<string, string> = {
  'dbt_project.yml': `
name: shop
version: '1.0.0'
profile: shop
model-paths: ['models']
models:
  shop:
    +materialized: view
`,
  'models/stg_customers.sql': `{{ config(materialized='ephemeral') }}
select id as customer_id, lower(email) as email, name from raw.customers`,
  'models/customers.sql': `{{ config(materialized='table') }}
select customer_id::int as customer_id, name::text as name from {{ ref('stg_customers') }}`,
  'models/orders.sql': `{{ config(materialized='incremental', unique_key='order_id') }}
select id as order_id, customer_id, amount from raw.orders`,
  'models/customer_emails.sql': `{{ config(materialized='view', alias='emails_v', schema='marketing') }}
select customer_id, email from {{ ref('stg_customers') }}`,
  'models/order_lines.sql': `{{ config(materialized='table', unique_key=['order_id', 'line']) }}
select id as order_id, 1 as line from raw.orders`,
  'models/keyless.sql': `select 1 as n`,
  'models/retired.sql': `{{ config(enabled=false) }}
select 1 as n`,
  'models/schema.yml': `
version: 2
models:
  - name: customers
    config:
      contract:
        enforced: true
    columns:
      - name: customer_id
        data_type: int
        constraints:
          - type: not_null
          - type: primary_key
      - name: name
        data_type: text
`,
};

function dbtModel(
  model: string,
  manifest: NonNullable<ModelSpec['dbt']>['manifest'] = { path: manifestPath },
  extra: Partial<ModelSpec> = {},
): ModelSpec {
  return { sourceRef: { name: 'warehouse' }, dbt: { model, manifest }, ...extra };
}

function pgSource(): SourceSpec {
  return {
    type: 'postgres',
    postgres: { host: postgres.host, port: postgres.port, database: 'warehouse', user: postgres.user },
  };
}

async function count(table: string): Promise<number> {
  const client = new pg.Client({ connectionString: warehouseUrl });
  await client.connect();
  try {
    return Number((await client.query<{ n: string }>(`select count(*) as n from ${table}`)).rows[0]?.n);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  postgres = await startPostgres();
  warehouseUrl = await postgres.createDatabase('warehouse');
  const client = new pg.Client({ connectionString: warehouseUrl });
  await client.connect();
  await client.query(`
    create schema raw;
    create table raw.customers (id int, email text, name text);
    insert into raw.customers values (1, 'A@EXAMPLE.COM', 'Ada'), (2, 'b@example.com', 'Bo');
    create table raw.orders (id int, customer_id int, amount numeric(12,2));
    insert into raw.orders values (10, 1, 9.99), (11, 2, 100.00), (12, 1, 0.01);`);
  await client.end();
  for (const [file, text] of Object.entries(FILES)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text);
  }
  writeFileSync(
    join(dir, 'profiles.yml'),
    `shop:
  target: test
  outputs:
    test:
      type: postgres
      host: ${postgres.host}
      port: ${postgres.port}
      user: ${postgres.user}
      password: "{{ env_var('DBT_PG_PASSWORD') }}"
      dbname: warehouse
      schema: analytics
      threads: 1
`,
  );
  await runDbt(['run'], { projectDir: dir, profilesDir: dir, env: { DBT_PG_PASSWORD: postgres.password } });
  manifestPath = join(dir, 'target', 'manifest.json');
  manifestText = readFileSync(manifestPath, 'utf8');
  http = createServer((req, res) => {
    if (req.url === '/dbt/manifest.json')
      res.writeHead(200, { 'content-type': 'application/json' }).end(manifestText);
    else res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  httpUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
}, 600_000);

afterAll(async () => {
  await new Promise((resolve) => http?.close(resolve));
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
  ctx.cleanup();
});

describe('dbt model resolution', () => {
  it('resolves an incremental model to the table dbt built and its unique_key', async () => {
    const resolved = await resolveDbtModel(dbtModel('orders'), pgSource(), ctx);
    expect(resolved).toEqual({
      table: '"warehouse"."analytics"."orders"',
      primaryKey: 'order_id',
      relation: { database: 'warehouse', schema: 'analytics', alias: 'orders' },
    });
    expect(await count(resolved.table)).toBe(3);
  });

  it('takes the key from a primary-key constraint of a contracted model', async () => {
    const resolved = await resolveDbtModel(dbtModel('customers'), pgSource(), ctx);
    expect(resolved.primaryKey).toBe('customer_id');
    expect(await count(resolved.table)).toBe(2);
  });

  it('follows aliases and custom schemas, and a Model primaryKey wins over the manifest', async () => {
    const resolved = await resolveDbtModel(
      dbtModel('customer_emails', undefined, { primaryKey: 'email' }),
      pgSource(),
      ctx,
    );
    expect(resolved.relation).toEqual({
      database: 'warehouse',
      schema: 'analytics_marketing',
      alias: 'emails_v',
    });
    expect(resolved.primaryKey).toBe('email');
    expect(await count(resolved.table)).toBe(2);
    const orders = await resolveDbtModel(
      dbtModel('orders', undefined, { primaryKey: 'customer_id' }),
      pgSource(),
      ctx,
    );
    expect(orders.primaryKey).toBe('customer_id');
  });

  it('accepts package-qualified names', async () => {
    expect((await resolveDbtModel(dbtModel('shop.orders'), pgSource(), ctx)).relation.alias).toBe('orders');
    expect((await failure(resolveDbtModel(dbtModel('other_pkg.orders'), pgSource(), ctx))).reason).toBe(
      'DbtModelNotFound',
    );
  });

  it('reads the manifest from a ConfigMap and from an https URL', async () => {
    const fromConfigMap = await resolveDbtModel(
      dbtModel('orders', { configMapRef: { name: 'dbt-manifest', key: 'manifest.json' } }),
      pgSource(),
      {
        ...ctx,
        readConfigMap: async (name, key) => {
          expect([name, key]).toEqual(['dbt-manifest', 'manifest.json']);
          return manifestText;
        },
      },
    );
    expect(fromConfigMap.table).toBe('"warehouse"."analytics"."orders"');
    const fromUrl = await resolveDbtModel(
      dbtModel('orders', { url: `${httpUrl}/dbt/manifest.json` }),
      pgSource(),
      ctx,
    );
    expect(fromUrl.primaryKey).toBe('order_id');
  });
});

describe('dbt model resolution errors', () => {
  it('refuses ephemeral models', async () => {
    const error = await failure(resolveDbtModel(dbtModel('stg_customers'), pgSource(), ctx));
    expect(error.reason).toBe('DbtModelNotMaterialized');
    expect(error.message).toContain('ephemeral');
  });

  it('names missing and disabled models, with suggestions', async () => {
    const missing = await failure(resolveDbtModel(dbtModel('custmers'), pgSource(), ctx));
    expect(missing.reason).toBe('DbtModelNotFound');
    expect(missing.message).toContain('Did you mean "customers"');
    const disabled = await failure(resolveDbtModel(dbtModel('retired'), pgSource(), ctx));
    expect(disabled.reason).toBe('DbtModelNotFound');
    expect(disabled.message).toContain('disabled');
  });

  it('needs one key column', async () => {
    expect((await failure(resolveDbtModel(dbtModel('order_lines'), pgSource(), ctx))).reason).toBe(
      'DbtCompositeUniqueKey',
    );
    expect((await failure(resolveDbtModel(dbtModel('keyless'), pgSource(), ctx))).reason).toBe(
      'PrimaryKeyMissing',
    );
    expect(
      (await resolveDbtModel(dbtModel('keyless', undefined, { primaryKey: 'n' }), pgSource(), ctx))
        .primaryKey,
    ).toBe('n');
  });

  it('reports unreadable manifests and a Source of another warehouse', async () => {
    const noFile = await failure(
      resolveDbtModel(dbtModel('orders', { path: join(dir, 'nope.json') }), pgSource(), ctx),
    );
    expect(noFile.reason).toBe('DbtManifestUnreadable');
    writeFileSync(join(dir, 'broken.json'), '{"not": "a manifest"');
    const broken = await failure(
      resolveDbtModel(dbtModel('orders', { path: join(dir, 'broken.json') }), pgSource(), ctx),
    );
    expect(broken.reason).toBe('DbtManifestUnreadable');
    writeFileSync(join(dir, 'other.json'), '{"hello": "world"}');
    expect(
      (await failure(resolveDbtModel(dbtModel('orders', { path: join(dir, 'other.json') }), pgSource(), ctx)))
        .message,
    ).toContain('not a dbt manifest');
    const http404 = await failure(
      resolveDbtModel(dbtModel('orders', { url: `${httpUrl}/missing.json` }), pgSource(), ctx),
    );
    expect(http404.message).toContain('HTTP 404');
    const noReader = await failure(
      resolveDbtModel(
        dbtModel('orders', { configMapRef: { name: 'm', key: 'manifest.json' } }),
        pgSource(),
        ctx,
      ),
    );
    expect(noReader.reason).toBe('DbtManifestUnreadable');
    const snowflake: SourceSpec = {
      type: 'snowflake',
      snowflake: { account: 'a', user: 'u', warehouse: 'w', database: 'd' },
    };
    expect((await failure(resolveDbtModel(dbtModel('orders'), snowflake, ctx))).reason).toBe(
      'DbtAdapterMismatch',
    );
  });
});
