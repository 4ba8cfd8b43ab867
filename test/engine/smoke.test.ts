import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, pgSettings, run, sql, tempState } from './helpers.ts';

describe('engine smoke', () => {
  let server: PostgresServer;
  let srcUrl: string;
  let dstUrl: string;
  const state = tempState();
  beforeAll(async () => {
    server = await startPostgres();
    srcUrl = await server.createDatabase('src');
    dstUrl = await server.createDatabase('dst');
    await sql(srcUrl, 'CREATE TABLE people (id int PRIMARY KEY, name text, email text)');
    await sql(
      srcUrl,
      "INSERT INTO people SELECT g, 'n' || g, 'e' || g || '@x' FROM generate_series(1, 100) g",
    );
  });
  afterAll(async () => {
    await server?.stop();
    state.remove();
  });
  it('syncs postgres to postgres and then only the changes', async () => {
    const plan = () =>
      makePlan({
        server,
        sourceDb: 'src',
        query: 'SELECT * FROM people',
        destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
        sync: { mode: 'upsert', target: { table: 'people_copy' } },
        stateUrl: state.url,
      });
    const first = await run(plan(), server);
    expect(first.message).toBe('delivered 100 row operation(s): 100 added, 0 changed, 0 removed');
    expect(first.result).toBe('Succeeded');
    const rows = await sql(dstUrl, 'SELECT count(*)::int AS n FROM people_copy');
    expect(rows[0]?.['n']).toBe(100);
    await sql(srcUrl, "UPDATE people SET name = 'changed' WHERE id <= 3");
    const second = await run(plan(), server);
    expect(second.counts).toMatchObject({ queried: 100, added: 0, changed: 3, delivered: 3 });
    const third = await run(plan(), server);
    expect(third.counts).toMatchObject({ changed: 0, delivered: 0 });
    expect(third.snapshot).toBe(second.snapshot);
  });
});
