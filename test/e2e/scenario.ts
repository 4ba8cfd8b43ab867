// A Postgres model synced to an HTTP sink: the objects and servers the end-to-end tests share.
import { createServer, type Server } from 'node:http';
import pg from 'pg';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import type { Kube } from './support.ts';

export interface Sink {
  url: string;
  /** Request bodies received, in order. */
  received: Record<string, unknown>[];
  close(): Promise<void>;
}

export async function startSink(): Promise<Sink> {
  const received: Record<string, unknown>[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (body) received.push(JSON.parse(body) as Record<string, unknown>);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/contacts`,
    received,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

export interface Warehouse {
  postgres: PostgresServer;
  port: number;
  query(sql: string): Promise<void>;
}

export async function startWarehouse(rows = 3): Promise<Warehouse> {
  const postgres = await startPostgres();
  const url = await postgres.createDatabase('app');
  const run = async (sql: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run('CREATE TABLE customers (id int PRIMARY KEY, email text)');
  await run(
    `INSERT INTO customers SELECT i, 'user' || i || '@example.com' FROM generate_series(1, ${rows}) i`,
  );
  return { postgres, port: Number(new URL(url).port), query: run };
}

/** Secret, Source, Model, Destination and one Sync in `namespace`. */
export async function applyScenario(
  kube: Kube,
  namespace: string,
  warehouse: Warehouse,
  sink: Sink,
  sync: { name: string; schedule?: Record<string, string> },
): Promise<void> {
  await kube.secret(namespace, 'pg', { password: warehouse.postgres.password });
  await kube.create('sources', namespace, {
    kind: 'Source',
    metadata: { name: 'warehouse' },
    spec: {
      type: 'postgres',
      postgres: {
        host: '127.0.0.1',
        port: warehouse.port,
        database: 'app',
        user: 'postgres',
        password: { secretKeyRef: { name: 'pg', key: 'password' } },
        tls: { mode: 'disable' },
      },
    },
  });
  await kube.create('models', namespace, {
    kind: 'Model',
    metadata: { name: 'customers' },
    spec: { sourceRef: { name: 'warehouse' }, table: 'customers', primaryKey: 'id' },
  });
  await kube.create('destinations', namespace, {
    kind: 'Destination',
    metadata: { name: 'crm' },
    spec: { type: 'http', http: { url: sink.url } },
  });
  await kube.create('syncs', namespace, {
    kind: 'Sync',
    metadata: { name: sync.name },
    spec: {
      modelRef: { name: 'customers' },
      destinationRef: { name: 'crm' },
      mode: 'upsert',
      ...(sync.schedule ? { schedule: sync.schedule } : {}),
    },
  });
}
