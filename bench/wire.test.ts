// The wire counter of the warehouse benchmark: PostgreSQL's messages counted by type, also when a message
// or its header is split across chunks, through a real server.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../test/stack/postgres.ts';
import { startWireProxy, type WireProxy } from './wire.ts';

let server: PostgresServer;
let proxy: WireProxy;
beforeAll(async () => {
  server = await startPostgres();
  proxy = await startWireProxy({ host: server.host, port: server.port });
});
afterAll(async () => {
  await proxy?.close();
  await server?.stop();
});

describe('startWireProxy', () => {
  it('counts the bytes PostgreSQL sends, by message type', async () => {
    const client = new pg.Client({
      host: '127.0.0.1',
      port: proxy.port,
      user: server.user,
      password: server.password,
      database: 'postgres',
    });
    await client.connect();
    proxy.take();
    // 1,000 rows of ~10 KB: messages far larger than one TCP chunk, and headers across chunk borders.
    const { rows } = await client.query<{ t: string }>(
      `SELECT repeat(md5(g::text), 300) AS t FROM generate_series(1, 1000) g`,
    );
    const counted = proxy.take();
    await client.end();
    expect(rows).toHaveLength(1000);
    expect(counted.messages['D']?.count).toBe(1000);
    // Each DataRow: type, length, field count, field length, 9,600 bytes of text.
    expect(counted.messages['D']?.bytes).toBe(1000 * (1 + 4 + 2 + 4 + 9600));
    const all = Object.values(counted.messages).reduce((sum, m) => sum + m.bytes, 0);
    expect(all).toBe(counted.bytes);
  });
});
