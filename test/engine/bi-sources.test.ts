// Models of BI questions (issue 16) through the real engine: a Metabase saved question and a Looker Look
// or query, read through our connectors from the emulators of their APIs (test/emulators/metabase,
// test/emulators/looker), whose questions run on a real PostgreSQL; as: sql runs the question's SQL on the
// warehouse Source, as: results stages the rows the API gives. Both land the same rows.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { Logger } from '../../core/connectors.ts';
import { runPlan, type RunPlan } from '../../core/plan.ts';
import { secretResolver } from '../../core/secrets.ts';
import type { RunSummary } from '../../core/summary.ts';
import { executeRun } from '../../runner/run.ts';
import { LookerEmulator } from '../emulators/looker/server.ts';
import { MetabaseEmulator } from '../emulators/metabase/server.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, pgSettings, sql, tempState } from './helpers.ts';

const API_KEY = 'mb_Zp9sQe2VwR7kX4yN1tLc8uHj3oBf6aGd';
const CLIENT_ID = 'lk-client-4FfD8s';
const CLIENT_SECRET = 'lk-secret-Qm3WvT8zR1pXe6Ka';

let server: PostgresServer;
let warehouseUrl: string;
let appUrl: string;
let metabase: MetabaseEmulator;
let looker: LookerEmulator;
const states: { remove(): void }[] = [];
let counter = 0;

const CUSTOMERS_SQL = 'SELECT customer_id, name, plan, signup, ltv FROM customers';

beforeAll(async () => {
  server = await startPostgres();
  warehouseUrl = await server.createDatabase('warehouse');
  appUrl = await server.createDatabase('app');
  await sql(
    warehouseUrl,
    `CREATE TABLE customers AS SELECT g AS customer_id, 'customer ' || g AS name,
       CASE WHEN g % 3 = 0 THEN 'pro' ELSE 'free' END AS plan, DATE '2024-01-01' + g AS signup,
       (g * 12.5)::numeric(10,2) AS ltv FROM generate_series(1, 30) g`,
  );
  metabase = await new MetabaseEmulator().start();
  metabase.apiKeys.add(API_KEY);
  const details = { host: server.host, port: server.port, dbname: 'warehouse', user: 'metabase' };
  metabase.databases.set(2, {
    id: 2,
    name: 'Warehouse',
    engine: 'postgres',
    details,
    url: warehouseUrl,
    tables: { 7: { name: 'customers', fields: { 70: 'customer_id', 71: 'name', 72: 'plan' } } },
  });
  metabase.databases.set(3, {
    id: 3,
    name: 'Other',
    engine: 'postgres',
    details: { ...details, dbname: 'app' },
    url: appUrl,
  });
  metabase.cards.set(42, {
    id: 42,
    name: 'Pro customers',
    dataset_query: {
      database: 2,
      type: 'native',
      native: {
        query: `${CUSTOMERS_SQL} WHERE plan = {{plan}} [[AND customer_id > {{after}}]]`,
        'template-tags': {
          plan: { type: 'text', name: 'plan', default: 'pro' },
          after: { type: 'number', name: 'after' },
        },
      },
    },
  });
  metabase.cards.set(43, {
    id: 43,
    name: 'Customers (editor)',
    dataset_query: {
      database: 2,
      type: 'query',
      query: {
        'source-table': 7,
        fields: [
          ['field', 70, null],
          ['field', 71, null],
        ],
      },
    },
  });
  looker = await new LookerEmulator().start();
  looker.clients.set(CLIENT_ID, CLIENT_SECRET);
  looker.connections.set('warehouse', {
    name: 'warehouse',
    dialect_name: 'postgres',
    database: 'warehouse',
    host: server.host,
    url: warehouseUrl,
  });
  looker.explores.set('shop::customers', 'warehouse');
  const lookerSql = `SELECT customers.customer_id AS "customers.customer_id", customers.name AS "customers.name" FROM customers WHERE customers.plan = 'pro'`;
  looker.queries.set('501', {
    id: '501',
    slug: 'aB3dE5fG7h',
    model: 'shop',
    view: 'customers',
    fields: ['customers.customer_id', 'customers.name'],
    limit: '-1',
    sql: lookerSql,
  });
  looker.looks.set('9', { id: '9', title: 'Pro customers', query_id: '501' });
});

afterAll(async () => {
  await metabase?.stop();
  await looker?.stop();
  await server?.stop();
  for (const s of states) s.remove();
});

function capture(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const push = (obj: object, msg?: string) => void lines.push(`${JSON.stringify(obj)} ${msg ?? ''}`);
  return { lines, debug: push, info: push, warn: push, error: push };
}

const SECRETS = () =>
  secretResolver(
    {},
    {
      pg: { password: server.password },
      metabase: { apiKey: API_KEY },
      looker: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET },
    },
  );

const metabaseSource = (apiKey = 'apiKey') => ({
  type: 'metabase',
  metabase: { url: metabase.url, apiKey: { secretKeyRef: { name: 'metabase', key: apiKey } } },
});
const lookerSource = () => ({
  type: 'looker',
  looker: {
    baseUrl: looker.url,
    clientId: { secretKeyRef: { name: 'looker', key: 'clientId' } },
    clientSecret: { secretKeyRef: { name: 'looker', key: 'clientSecret' } },
  },
});

/** A Sync of a BI Model to its own PostgreSQL table; `bi` is the Model's metabase or looker block. */
async function scenario(columns: string) {
  counter++;
  const target = `bi_${counter}`;
  const state = tempState();
  states.push(state);
  await sql(appUrl, `CREATE TABLE ${target} (${columns})`);
  const plan = (model: Record<string, unknown>, source: object, biSource?: object): RunPlan => {
    const base = makePlan({
      server,
      sourceDb: 'warehouse',
      query: 'unused',
      destination: {
        type: 'postgres',
        postgres: { ...pgSettings(server, 'app'), schema: 'public' },
      } as never,
      sync: { mode: 'upsert', target: { table: target } },
      stateUrl: state.url,
      name: `bi-${counter}`,
    });
    return runPlan.parse({
      ...base,
      model: { name: 'customers', spec: { sourceRef: { name: 'src' }, ...model } },
      source: { name: 'src', spec: source },
      ...(biSource ? { biSource: { name: 'bi', spec: biSource } } : {}),
    });
  };
  const warehouse = { type: 'postgres', postgres: pgSettings(server, 'warehouse') };
  const run = async (p: RunPlan, log: Logger = capture()): Promise<RunSummary> =>
    executeRun(p, {
      secrets: SECRETS(),
      log,
      signal: new AbortController().signal,
      backoff: { baseMs: 5, capMs: 50 },
    });
  return { target, plan, warehouse, run, rows: () => sql(appUrl, `SELECT * FROM ${target} ORDER BY 1`) };
}

describe('Metabase questions', () => {
  it('as: sql and as: results land the same rows; a second run sends nothing', async () => {
    const cols = 'customer_id bigint PRIMARY KEY, name text, plan text, signup date, ltv numeric(10,2)';
    const bySql = await scenario(cols);
    const question = {
      metabase: { question: 42, as: 'sql', sourceRef: { name: 'bi' } },
      primaryKey: 'customer_id',
    };
    const sqlPlan = () => bySql.plan(question, bySql.warehouse, metabaseSource());
    const first = await bySql.run(sqlPlan());
    expect(first.reason).toBeUndefined();
    expect(first).toMatchObject({ result: 'Succeeded', counts: { queried: 10, delivered: 10 } });
    expect((await bySql.run(sqlPlan())).counts).toMatchObject({ queried: 10, changed: 0, delivered: 0 });

    const byResults = await scenario(cols);
    const results = await byResults.run(
      byResults.plan(
        { metabase: { question: 42, as: 'results' }, primaryKey: 'customer_id' },
        metabaseSource(),
      ),
    );
    expect(results).toMatchObject({ result: 'Succeeded', counts: { queried: 10, delivered: 10 } });
    expect(await byResults.rows()).toEqual(await bySql.rows());
    expect((await bySql.rows())[0]).toMatchObject({
      customer_id: '3',
      name: 'customer 3',
      plan: 'pro',
      ltv: '37.50',
    });
  });

  it('runs the SQL Metabase compiles an editor question to', async () => {
    const s = await scenario('customer_id bigint PRIMARY KEY, name text');
    const summary = await s.run(
      s.plan(
        { metabase: { question: 43, as: 'sql', sourceRef: { name: 'bi' } }, primaryKey: 'customer_id' },
        s.warehouse,
        metabaseSource(),
      ),
    );
    expect(summary).toMatchObject({ result: 'Succeeded', counts: { delivered: 30 } });
    expect(
      metabase.requests.some((r) => r.path === '/api/dataset/native' && r.body.includes('"source-table":7')),
    ).toBe(true);
  });

  it('a question whose SQL changes goes through the column rules: a new column resends every row', async () => {
    metabase.cards.set(44, {
      id: 44,
      name: 'Changing',
      dataset_query: {
        database: 2,
        type: 'native',
        native: { query: 'SELECT customer_id, name FROM customers WHERE customer_id <= 5' },
      },
    });
    const s = await scenario('customer_id bigint PRIMARY KEY, name text, plan text');
    const plan = () =>
      s.plan(
        { metabase: { question: 44, as: 'sql', sourceRef: { name: 'bi' } }, primaryKey: 'customer_id' },
        s.warehouse,
        metabaseSource(),
      );
    expect((await s.run(plan())).counts).toMatchObject({ delivered: 5 });
    metabase.cards.set(44, {
      id: 44,
      name: 'Changing',
      dataset_query: {
        database: 2,
        type: 'native',
        native: { query: 'SELECT customer_id, name, plan FROM customers WHERE customer_id <= 5' },
      },
    });
    const changed = await s.run(plan());
    expect(changed.counts).toMatchObject({ changed: 5, delivered: 5 });
    expect((await s.rows()).map((r) => r['plan'])).toEqual(['free', 'free', 'pro', 'free', 'free']);
  });

  it('refuses an unknown question, a question of another database and a tag without a default, with their reasons', async () => {
    metabase.cards.set(45, {
      id: 45,
      name: 'Elsewhere',
      dataset_query: { database: 3, type: 'native', native: { query: 'SELECT 1 AS id' } },
    });
    metabase.cards.set(46, {
      id: 46,
      name: 'Needs a value',
      dataset_query: {
        database: 2,
        type: 'native',
        native: {
          query: `${CUSTOMERS_SQL} WHERE plan = {{plan}}`,
          'template-tags': { plan: { type: 'text', name: 'plan' } },
        },
      },
    });
    const s = await scenario('customer_id bigint PRIMARY KEY');
    const runQuestion = (question: number) =>
      s.run(
        s.plan(
          { metabase: { question, as: 'sql', sourceRef: { name: 'bi' } }, primaryKey: 'customer_id' },
          s.warehouse,
          metabaseSource(),
        ),
      );
    const unknown = await runQuestion(999);
    expect(unknown).toMatchObject({ result: 'Failed', reason: 'BiQuestionNotFound' });
    expect(unknown.message).toContain('Metabase question 999');
    expect(await runQuestion(45)).toMatchObject({ result: 'Failed', reason: 'BiDatabaseMismatch' });
    const tag = await runQuestion(46);
    expect(tag).toMatchObject({ result: 'Failed', reason: 'BiQuestionUnsupported' });
    expect(tag.message).toContain('{{plan}}');
  });

  it('bad credentials fail with AuthenticationFailed, and the key is in no message or log line', async () => {
    const s = await scenario('customer_id bigint PRIMARY KEY');
    const log = capture();
    const wrong = secretResolver(
      {},
      { pg: { password: server.password }, metabase: { apiKey: `${API_KEY}x` } },
    );
    const summary = await executeRun(
      s.plan({ metabase: { question: 42, as: 'results' }, primaryKey: 'customer_id' }, metabaseSource()),
      { secrets: wrong, log, signal: new AbortController().signal },
    );
    expect(summary).toMatchObject({ result: 'Failed', reason: 'AuthenticationFailed' });
    expect(JSON.stringify(summary)).not.toContain(API_KEY);
    expect(log.lines.length).toBeGreaterThan(0);
    expect(log.lines.join('\n')).not.toContain(API_KEY);
  });

  it('rides out 429s and 5xx answers', async () => {
    const s = await scenario(
      'customer_id bigint PRIMARY KEY, name text, plan text, signup date, ltv numeric(10,2)',
    );
    metabase.fail(/^\/api\/card\/42$/, 429, 2, '0');
    metabase.fail(/^\/api\/card\/42\/query\/json$/, 503, 2);
    const before = metabase.requests.length;
    const summary = await s.run(
      s.plan({ metabase: { question: 42, as: 'results' }, primaryKey: 'customer_id' }, metabaseSource()),
    );
    expect(summary).toMatchObject({ result: 'Succeeded', counts: { delivered: 10 } });
    expect(metabase.requests.slice(before).filter((r) => r.path.startsWith('/api/card/42')).length).toBe(6);
  });

  it('refuses results cut short: a stream that ends early, and the download row limit', async () => {
    const s = await scenario(
      'customer_id bigint PRIMARY KEY, name text, plan text, signup date, ltv numeric(10,2)',
    );
    metabase.cutNextExport(150);
    const cut = await s.run(
      s.plan({ metabase: { question: 42, as: 'results' }, primaryKey: 'customer_id' }, metabaseSource()),
    );
    expect(cut).toMatchObject({ result: 'Failed', reason: 'BiResultsIncomplete' });
    const limited = { ...metabaseSource(), metabase: { ...metabaseSource().metabase, downloadRowLimit: 10 } };
    const atLimit = await s.run(
      s.plan({ metabase: { question: 42, as: 'results' }, primaryKey: 'customer_id' }, limited),
    );
    expect(atLimit).toMatchObject({ result: 'Failed', reason: 'BiResultsIncomplete' });
    expect(await s.rows()).toEqual([]);
  });
});

describe('Looker Looks and queries', () => {
  const cols = 'customers_customer_id bigint PRIMARY KEY, customers_name text';

  it('a Look as: sql and its query (by slug) as: results land the same rows', async () => {
    const bySql = await scenario(cols);
    const look = await bySql.run(
      bySql.plan(
        { looker: { look: 9, as: 'sql', sourceRef: { name: 'bi' } }, primaryKey: 'customers_customer_id' },
        bySql.warehouse,
        lookerSource(),
      ),
    );
    expect(look.reason).toBeUndefined();
    expect(look).toMatchObject({ result: 'Succeeded', counts: { delivered: 10 } });
    const byResults = await scenario(cols);
    const results = await byResults.run(
      byResults.plan(
        { looker: { query: 'aB3dE5fG7h', as: 'results' }, primaryKey: 'customers_customer_id' },
        lookerSource(),
      ),
    );
    expect(results).toMatchObject({ result: 'Succeeded', counts: { delivered: 10 } });
    expect(await byResults.rows()).toEqual(await bySql.rows());
  });

  it('logs in again when the session expires, and retries 429 and 5xx', async () => {
    const s = await scenario(cols);
    const plan = () =>
      s.plan(
        { looker: { query: '501', as: 'results' }, primaryKey: 'customers_customer_id' },
        lookerSource(),
      );
    looker.fail(/\/queries\/501$/, 429, 1, '0');
    looker.fail(/\/run\/json$/, 502, 1);
    const logins = looker.logins;
    expect((await s.run(plan())).result).toBe('Succeeded');
    looker.expireTokens();
    looker.tokenLifetimeSeconds = 3600;
    expect((await s.run(plan())).result).toBe('Succeeded');
    expect(looker.logins - logins).toBe(2);
    expect(
      looker.requests.filter((r) => r.authorization === undefined && r.path !== '/api/4.0/login'),
    ).toEqual([]);
  });

  it('bad credentials fail with AuthenticationFailed, naming no secret', async () => {
    const s = await scenario(cols);
    const log = capture();
    const wrong = secretResolver(
      {},
      {
        pg: { password: server.password },
        looker: { clientId: CLIENT_ID, clientSecret: 'not-the-secret-7Hq' },
      },
    );
    const summary = await executeRun(
      s.plan(
        { looker: { look: 9, as: 'sql', sourceRef: { name: 'bi' } }, primaryKey: 'customers_customer_id' },
        s.warehouse,
        lookerSource(),
      ),
      { secrets: wrong, log, signal: new AbortController().signal },
    );
    expect(summary).toMatchObject({ result: 'Failed', reason: 'AuthenticationFailed' });
    const text = `${JSON.stringify(summary)}\n${log.lines.join('\n')}`;
    expect(text).not.toContain('not-the-secret-7Hq');
    expect(text).not.toContain(CLIENT_SECRET);
  });

  it('refuses an unknown Look, another connection and results cut at the row limit', async () => {
    looker.queries.set('502', { ...looker.queries.get('501')!, id: '502', slug: 'zZ9', limit: '5' });
    looker.connections.set('crm', {
      name: 'crm',
      dialect_name: 'mysql',
      database: 'crm',
      host: 'crm',
      url: appUrl,
    });
    looker.explores.set('crm::accounts', 'crm');
    looker.queries.set('503', {
      ...looker.queries.get('501')!,
      id: '503',
      slug: 'yY8',
      model: 'crm',
      view: 'accounts',
    });
    const s = await scenario(cols);
    const unknown = await s.run(
      s.plan(
        { looker: { look: 404, as: 'sql', sourceRef: { name: 'bi' } }, primaryKey: 'customers_customer_id' },
        s.warehouse,
        lookerSource(),
      ),
    );
    expect(unknown).toMatchObject({ result: 'Failed', reason: 'BiQuestionNotFound' });
    const other = await s.run(
      s.plan(
        {
          looker: { query: '503', as: 'sql', sourceRef: { name: 'bi' } },
          primaryKey: 'customers_customer_id',
        },
        s.warehouse,
        lookerSource(),
      ),
    );
    expect(other).toMatchObject({ result: 'Failed', reason: 'BiDatabaseMismatch' });
    const limited = await s.run(
      s.plan(
        { looker: { query: '502', as: 'results' }, primaryKey: 'customers_customer_id' },
        lookerSource(),
      ),
    );
    expect(limited).toMatchObject({ result: 'Failed', reason: 'BiResultsIncomplete' });
    expect(await s.rows()).toEqual([]);
  });
});

/** The four ways a BI Model reads its rows, each over a table of its own that the test churns. */
const VARIANTS = [
  { tool: 'metabase', as: 'sql' },
  { tool: 'metabase', as: 'results' },
  { tool: 'looker', as: 'sql' },
  { tool: 'looker', as: 'results' },
] as const;

describe.each(VARIANTS)('the engine modes over $tool as: $as', ({ tool, as }) => {
  async function churnScenario(sync: Record<string, unknown>) {
    const s = await scenario('id bigint PRIMARY KEY, name text');
    const table = `people_${s.target}`;
    await sql(
      warehouseUrl,
      `CREATE TABLE ${table} AS SELECT g::bigint AS id, 'name ' || g AS name FROM generate_series(1, 5) g`,
    );
    const id = 100 + counter;
    metabase.cards.set(id, {
      id,
      name: table,
      dataset_query: { database: 2, type: 'native', native: { query: `SELECT id, name FROM ${table}` } },
    });
    looker.explores.set(`shop::${table}`, 'warehouse');
    looker.queries.set(String(id), {
      id: String(id),
      slug: `s${id}`,
      model: 'shop',
      view: table,
      fields: [`${table}.id`, `${table}.name`],
      limit: '-1',
      sql: `SELECT id AS "${table}.id", name AS "${table}.name" FROM ${table}`,
    });
    const model =
      tool === 'metabase'
        ? {
            metabase: { question: id, as, ...(as === 'sql' ? { sourceRef: { name: 'bi' } } : {}) },
            primaryKey: 'id',
          }
        : {
            looker: { query: String(id), as, ...(as === 'sql' ? { sourceRef: { name: 'bi' } } : {}) },
            primaryKey: `${table}_id`,
          };
    const biSpec = tool === 'metabase' ? metabaseSource() : lookerSource();
    const plan = () => {
      const p = as === 'sql' ? s.plan(model, s.warehouse, biSpec) : s.plan(model, biSpec);
      const renamed =
        tool === 'looker'
          ? {
              ...p.sync.spec,
              mappings: [
                { from: `${table}_id`, to: 'id' },
                { from: `${table}_name`, to: 'name' },
              ],
            }
          : p.sync.spec;
      return runPlan.parse({ ...p, sync: { ...p.sync, spec: { ...renamed, ...sync } } });
    };
    const churn = async () => {
      await sql(warehouseUrl, `DELETE FROM ${table} WHERE id = 1`);
      await sql(warehouseUrl, `UPDATE ${table} SET name = 'renamed' WHERE id = 2`);
      await sql(warehouseUrl, `INSERT INTO ${table} VALUES (6, 'newcomer')`);
    };
    return { ...s, churn, go: () => s.run(plan()) };
  }

  it('upsert with deleteBehavior delete: adds, changes and deletes what changed in the question', async () => {
    const s = await churnScenario({ mode: 'upsert', deleteBehavior: 'delete' });
    expect((await s.go()).counts).toMatchObject({ added: 5, delivered: 5 });
    await s.churn();
    const second = await s.go();
    expect(second.counts).toMatchObject({ added: 1, changed: 1, removed: 1, failed: 0 });
    expect(second.operations).toEqual({ upsert: 2, delete: 1 });
    expect(await s.rows()).toEqual([
      { id: '2', name: 'renamed' },
      { id: '3', name: 'name 3' },
      { id: '4', name: 'name 4' },
      { id: '5', name: 'name 5' },
      { id: '6', name: 'newcomer' },
    ]);
    expect((await s.go()).counts).toMatchObject({ changed: 0, delivered: 0 });
  });

  it('insert: sends only the rows new to the question', async () => {
    const s = await churnScenario({ mode: 'insert' });
    expect((await s.go()).counts).toMatchObject({ added: 5, delivered: 5 });
    await s.churn();
    const second = await s.go();
    expect(second.operations).toEqual({ insert: 1 });
    expect((await s.rows()).map((r) => r['id'])).toEqual(['1', '2', '3', '4', '5', '6']);
  });
});

describe('the examples, pointed at the emulators', () => {
  type Doc = { kind: string; metadata: { name: string }; spec: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  const example = (name: string): Doc[] =>
    parseAllDocuments(
      readFileSync(new URL(`../../examples/${name}/resources.yaml`, import.meta.url), 'utf8'),
    ).map((d) => d.toJS() as Doc);
  const pointed = (postgres: Record<string, unknown>, database: string) =>
    Object.assign(postgres, pgSettings(server, database), {
      password: postgres['password'],
      tls: { mode: 'disable' },
    });

  async function runExample(docs: Doc[], biName?: string): Promise<RunSummary> {
    const named = (kind: string, name?: string) => {
      const doc = docs.find((d) => d.kind === kind && (name === undefined || d.metadata.name === name))!;
      return { name: doc.metadata.name, spec: doc.spec };
    };
    const sync = named('Sync');
    const model = named('Model');
    const state = tempState();
    states.push(state);
    const plan = runPlan.parse({
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'RunPlan',
      runId: `example-${++counter}`,
      namespace: 'test',
      sync,
      model,
      source: named('Source', model.spec.sourceRef.name),
      ...(biName ? { biSource: named('Source', biName) } : {}),
      destination: named('Destination'),
      diffStore: { url: state.url },
    });
    const secrets = secretResolver(
      {},
      {
        metabase: { 'api-key': API_KEY },
        looker: { 'client-id': CLIENT_ID, 'client-secret': CLIENT_SECRET },
        warehouse: { password: server.password },
        'app-db': { password: server.password },
      },
    );
    return executeRun(plan, { secrets, log: capture(), signal: new AbortController().signal });
  }

  it('metabase-to-postgres: the question SQL runs on the warehouse, rows land in churn_risk', async () => {
    const docs = example('metabase-to-postgres');
    const source = (name: string) => docs.find((d) => d.kind === 'Source' && d.metadata.name === name)!.spec;
    source('metabase').metabase.url = metabase.url;
    pointed(source('warehouse').postgres, 'warehouse');
    pointed(docs.find((d) => d.kind === 'Destination')!.spec.postgres, 'app');
    await sql(
      appUrl,
      'CREATE TABLE churn_risk (customer_id bigint PRIMARY KEY, name text, plan text, signup date, ltv numeric)',
    );
    const summary = await runExample(docs, 'metabase');
    expect(summary).toMatchObject({ result: 'Succeeded', counts: { delivered: 10 } });
    expect(await sql(appUrl, 'SELECT count(*)::int AS n FROM churn_risk')).toEqual([{ n: 10 }]);
  });

  it('looker-to-postgres: the Look results land in top_accounts through the mappings', async () => {
    const docs = example('looker-to-postgres');
    docs.find((d) => d.kind === 'Source')!.spec.looker.baseUrl = looker.url;
    pointed(docs.find((d) => d.kind === 'Destination')!.spec.postgres, 'app');
    await sql(
      warehouseUrl,
      `CREATE TABLE accounts AS SELECT g AS id, 'account ' || g AS name, g * 1000 AS lifetime_value FROM generate_series(1, 7) g`,
    );
    looker.explores.set('sales::accounts', 'warehouse');
    looker.queries.set('170', {
      id: '170',
      slug: 'Top17',
      model: 'sales',
      view: 'accounts',
      fields: ['accounts.id', 'accounts.name', 'accounts.lifetime_value'],
      limit: '-1',
      sql: 'SELECT id AS "accounts.id", name AS "accounts.name", lifetime_value AS "accounts.lifetime_value" FROM accounts',
    });
    looker.looks.set('17', { id: '17', title: 'Top accounts', query_id: '170' });
    await sql(
      appUrl,
      'CREATE TABLE top_accounts (account_id bigint PRIMARY KEY, name text, lifetime_value bigint)',
    );
    const summary = await runExample(docs);
    expect(summary).toMatchObject({ result: 'Succeeded', counts: { delivered: 7 } });
    expect(
      await sql(appUrl, 'SELECT account_id, name, lifetime_value FROM top_accounts WHERE account_id = 7'),
    ).toEqual([{ account_id: '7', name: 'account 7', lifetime_value: '7000' }]);
  });
});
