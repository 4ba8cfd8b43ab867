// The Looker connector against the Looker API 4.0 emulator (test/emulators/looker), whose queries run on a
// real PostgreSQL: sessions, the SQL of Looks and queries, the connection check, and what is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelSpec, sourceSpec, type ModelSpec, type SourceSpec } from '../../crds/index.ts';
import type { Logger } from '../../core/connectors.ts';
import { silentLogger } from '../../core/logger.ts';
import { secretResolver } from '../../core/secrets.ts';
import { LookerEmulator } from '../../test/emulators/looker/server.ts';
import { startPostgres, type PostgresServer } from '../../test/stack/postgres.ts';
import { source, sqlOfQuery } from './index.ts';

const ID = 'cid-8Jw2';
const SECRET = 'csecret-Yt5Nq3Lm9Xv1';
let server: PostgresServer;
let looker: LookerEmulator;

const ctx = (secret = SECRET, log: Logger = silentLogger()) => ({
  secrets: secretResolver({}, { lk: { id: ID, secret } }),
  log,
  signal: new AbortController().signal,
  tmpDir: '/tmp',
});
const lkSource = (): SourceSpec =>
  sourceSpec.parse({
    type: 'looker',
    looker: {
      baseUrl: looker.url,
      clientId: { secretKeyRef: { name: 'lk', key: 'id' } },
      clientSecret: { secretKeyRef: { name: 'lk', key: 'secret' } },
    },
  });
const warehouse = (type: 'postgres' | 'mysql' = 'postgres', database = 'shop'): SourceSpec =>
  sourceSpec.parse({ type, [type]: { host: 'db', database, user: 'reader' } });
const model = (ref: { look?: number; query?: string }): ModelSpec =>
  modelSpec.parse({
    sourceRef: { name: 'src' },
    looker: { ...ref, sourceRef: { name: 'lk' } },
    primaryKey: 'orders_id',
  });

beforeAll(async () => {
  server = await startPostgres();
  const url = await server.createDatabase('shop');
  looker = await new LookerEmulator().start();
  looker.clients.set(ID, SECRET);
  looker.connections.set('shop', {
    name: 'shop',
    dialect_name: 'postgres',
    database: 'shop',
    host: 'db',
    url,
  });
  looker.explores.set('ecommerce::orders', 'shop');
  looker.queries.set('11', {
    id: '11',
    slug: 'Qx7Rt2',
    model: 'ecommerce',
    view: 'orders',
    fields: ['orders.id', 'orders.status'],
    limit: '-1',
    sql: 'SELECT orders.id AS "orders.id", orders.status AS "orders.status" FROM public.orders AS orders\nLIMIT 500;',
  });
  looker.looks.set('3', { id: '3', title: 'Open orders', query_id: '11' });
  looker.looks.set('4', { id: '4', title: 'Old', query_id: '11', deleted: true });
});
afterAll(async () => {
  await looker?.stop();
  await server?.stop();
});

describe('sessions', () => {
  it('logs in with the client credentials as a form, and uses the token as a bearer token', async () => {
    await source.check(lkSource(), ctx());
    const [login, me] = looker.requests.slice(-2);
    expect(login).toMatchObject({ method: 'POST', path: '/api/4.0/login' });
    expect(new URLSearchParams(login!.body).get('client_id')).toBe(ID);
    expect(me).toMatchObject({
      path: '/api/4.0/user',
      authorization: expect.stringMatching(/^Bearer [0-9a-f]{40}$/),
    });
  });

  it('logs in again before a token expires (within a minute of expires_in)', async () => {
    looker.tokenLifetimeSeconds = 30;
    const before = looker.logins;
    await sqlOfQuery(model({ query: '11' }), lkSource(), warehouse(), ctx());
    // look-up, explore, connection and run/sql: each finds the token about to expire.
    expect(looker.logins - before).toBe(4);
    looker.tokenLifetimeSeconds = 3600;
  });

  it('refuses unknown credentials (Looker answers 404) with AuthenticationFailed, naming no secret', async () => {
    const error = await source.check(lkSource(), ctx('wrong-secret-Zz')).catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'AuthenticationFailed' });
    expect((error as Error).message).not.toMatch(/wrong-secret-Zz|csecret/);
  });
});

describe('the SQL of a Look or query', () => {
  const expected =
    'SELECT "orders.id" AS "orders_id", "orders.status" AS "orders_status" FROM (\n' +
    'SELECT orders.id AS "orders.id", orders.status AS "orders.status" FROM public.orders AS orders\nLIMIT 500\n) AS looker_query';

  it('is the SQL Looker generates, its view.field columns renamed view_field, by Look, id or slug', async () => {
    expect(await sqlOfQuery(model({ look: 3 }), lkSource(), warehouse(), ctx())).toBe(expected);
    expect(await sqlOfQuery(model({ query: '11' }), lkSource(), warehouse(), ctx())).toBe(expected);
    expect(await sqlOfQuery(model({ query: 'Qx7Rt2' }), lkSource(), warehouse(), ctx())).toBe(expected);
  });

  it("quotes the renamed columns in the Source's dialect", async () => {
    looker.connections.set('shop', { ...looker.connections.get('shop')!, dialect_name: 'mysql' });
    const sql = await sqlOfQuery(model({ query: '11' }), lkSource(), warehouse('mysql'), ctx());
    looker.connections.set('shop', { ...looker.connections.get('shop')!, dialect_name: 'postgres' });
    expect(
      sql.startsWith('SELECT `orders.id` AS `orders_id`, `orders.status` AS `orders_status` FROM ('),
    ).toBe(true);
  });

  it('refuses a Look in the trash, an unknown one, and a connection of another database', async () => {
    await expect(sqlOfQuery(model({ look: 4 }), lkSource(), warehouse(), ctx())).rejects.toMatchObject({
      reason: 'BiQuestionNotFound',
    });
    await expect(sqlOfQuery(model({ look: 99 }), lkSource(), warehouse(), ctx())).rejects.toMatchObject({
      reason: 'BiQuestionNotFound',
      message: expect.stringContaining('Looker Look 99'),
    });
    await expect(
      sqlOfQuery(model({ look: 3 }), lkSource(), warehouse('postgres', 'crm'), ctx()),
    ).rejects.toMatchObject({
      reason: 'BiDatabaseMismatch',
      message: expect.stringContaining('Looker connection "shop"'),
    });
  });

  it('gives the SQL unchecked, with a warning, when the API user may not read the connection', async () => {
    looker.hiddenConnections.add('shop');
    const warnings: string[] = [];
    const log = { ...silentLogger(), warn: (_o: object, msg?: string) => void warnings.push(msg ?? '') };
    expect(
      await sqlOfQuery(model({ look: 3 }), lkSource(), warehouse('postgres', 'crm'), ctx(SECRET, log)),
    ).toBe(expected);
    looker.hiddenConnections.delete('shop');
    expect(warnings).toEqual(['the Looker API user cannot read the connection: its database is not checked']);
  });
});
