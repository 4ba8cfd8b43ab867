import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../../test/stack/postgres.ts';
import { captureLogger } from '../shared/test-context.ts';
import { postgresHashFunction, rowHashExpr, unsignedHashSql } from './hash.ts';
import { planColumn } from './types.ts';
import pgModule from 'pg';
import { DuckDBInstance } from '@duckdb/node-api';

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

async function withClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pgModule.Client({ connectionString: server.url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe('PostgreSQL row hash', () => {
  it('has a probe on PostgreSQL 14+, the same from every connection', async () => {
    const log = captureLogger();
    const first = await withClient((c) => postgresHashFunction(c, log));
    const second = await withClient((c) => postgresHashFunction(c, log));
    // keysOnly: the PostgreSQL source stages keys and hashes only, so a diff-store snapshot keeps its hashes.
    expect(first).toEqual({ name: 'postgres', probe: expect.stringMatching(/^-?\d+$/), keysOnly: true });
    expect(second).toEqual(first);
  });

  // PostgreSQL 13 and look-alike servers cannot run here: a stand-in client answers as they would.
  it('has none before PostgreSQL 14, or where the probe fails, and says so', async () => {
    const log = captureLogger();
    const old = { query: async () => ({ rows: [{ v: '130011' }] }) } as unknown as pg.Client;
    expect(await postgresHashFunction(old, log)).toBeUndefined();
    const lookalike = {
      query: async (sql: string) => {
        if (sql.includes('server_version_num')) return { rows: [{ v: '150000' }] };
        throw new Error('function hash_record_extended(record, integer) does not exist');
      },
    } as unknown as pg.Client;
    expect(await postgresHashFunction(lookalike, log)).toBeUndefined();
    expect(log.lines.map((l) => l.msg)).toContain('the source cannot hash rows itself; DuckDB hashes them');
  });

  it('maps the signed hash one-to-one onto the unsigned range snapshots keep', async () => {
    const duck = await DuckDBInstance.create(':memory:');
    const conn = await duck.connect();
    try {
      const reader = await conn.runAndReadAll(
        `SELECT CAST(${unsignedHashSql('h')} AS VARCHAR) AS u FROM (VALUES (-9223372036854775808), (-1), (0), (9223372036854775807)) t(h)`,
      );
      expect(reader.getRowObjectsJson().map((r) => r['u'])).toEqual([
        '0',
        '9223372036854775807',
        '9223372036854775808',
        '18446744073709551615',
      ]);
    } finally {
      conn.closeSync();
      duck.closeSync();
    }
  });

  it('hashes no columns as a constant, and names a column it does not know', () => {
    const plans = [planColumn('id', { oid: 20, name: 'int8' }, -1)];
    expect(rowHashExpr(plans, [])).toBe('0::int8');
    expect(rowHashExpr(plans, ['id'])).toBe('hash_record_extended(ROW(m."id"), 0)');
    expect(() => rowHashExpr(plans, ['nope'])).toThrow(/nope/);
  });
});
