import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthServerOptions {
  /** 0 picks a free port. */
  port: number;
  host?: string;
  registry: Registry;
  isReady: () => boolean;
  isHealthy: () => boolean;
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

function reply(
  res: ServerResponse,
  status: number,
  body: string,
  contentType = 'text/plain; charset=utf-8',
): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
  res.end(body);
}

function probe(res: ServerResponse, check: () => boolean, what: string): void {
  try {
    const ok = check();
    reply(res, ok ? 200 : 503, ok ? 'ok\n' : `not ${what}\n`);
  } catch (error) {
    reply(res, 500, `${what} check failed: ${error instanceof Error ? error.message : String(error)}\n`);
  }
}

/** Serves /healthz (liveness), /readyz (readiness) and /metrics (Prometheus text format). */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      reply(res, 405, 'method not allowed\n');
      return;
    }
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    switch (path) {
      case '/healthz':
      case '/livez':
        probe(res, options.isHealthy, 'healthy');
        return;
      case '/readyz':
        probe(res, options.isReady, 'ready');
        return;
      case '/metrics':
        reply(res, 200, await options.registry.metrics(), options.registry.contentType);
        return;
      default:
        reply(res, 404, 'not found\n');
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) reply(res, 500, `${error instanceof Error ? error.message : String(error)}\n`);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
