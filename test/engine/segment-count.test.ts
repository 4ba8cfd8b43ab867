// `syncline count-segment` (the operator's size-preview Job of a segment Model), through the postgres
// source connector against real PostgreSQL: the count, a query the Source refuses, wrong credentials.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.ts';
import { runSegmentCount } from '../../runner/count-segment.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { pgSettings, sql } from './helpers.ts';

let server: PostgresServer;
let work: string;

beforeAll(async () => {
  server = await startPostgres();
  const url = await server.createDatabase('crm');
  await sql(url, 'CREATE TABLE people (id int PRIMARY KEY, country text)');
  await sql(
    url,
    "INSERT INTO people SELECT g, CASE WHEN g % 3 = 0 THEN 'DE' ELSE 'FR' END FROM generate_series(1, 300) g",
  );
  work = mkdtempSync(join(tmpdir(), 'syncline-count-'));
});
afterAll(async () => {
  await server?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function count(query: string, password = server.password) {
  const termination = join(work, 'termination');
  const plan = {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'SegmentCountPlan',
    namespace: 'growth',
    model: 'germany',
    source: { name: 'db', spec: { type: 'postgres', postgres: pgSettings(server, 'crm') } },
    sql: query,
    definitionHash: 'abc123',
  };
  const env = {
    SYNCLINE_COUNT_PLAN: JSON.stringify(plan),
    SYNCLINE_TERMINATION_LOG: termination,
    SYNCLINE_SECRET_PG__PASSWORD: password,
    TMPDIR: work,
  };
  const code = await runSegmentCount({ env, log: silentLogger() });
  const said = JSON.parse(readFileSync(termination, 'utf8')) as Record<string, unknown>;
  return { code, ...said } as Record<string, unknown>;
}

describe('counting a segment for its size preview', () => {
  it("counts the compiled SQL's rows on the Source, for the definition it was given", async () => {
    expect(
      await count(`SELECT "p".* FROM (SELECT * FROM "people") AS "p" WHERE "p"."country" = 'DE'`),
    ).toMatchObject({
      code: 0,
      ok: true,
      members: 100,
      definitionHash: 'abc123',
    });
    expect(await count(`SELECT * FROM people WHERE country = 'none'`)).toMatchObject({
      ok: true,
      members: 0,
    });
  });

  it('says why when the Source refuses the query or the credentials, naming no secret', async () => {
    const missing = await count('SELECT * FROM nobody');
    expect(missing).toMatchObject({ code: 1, ok: false, reason: 'SourceQueryFailed' });
    expect(String(missing['message'])).toContain('nobody');
    const refused = await count('SELECT * FROM people', 'wrong-password-xyz');
    expect(refused).toMatchObject({ code: 1, ok: false, reason: 'AuthenticationFailed' });
    expect(JSON.stringify(refused)).not.toContain('wrong-password-xyz');
  });
});
