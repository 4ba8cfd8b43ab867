// A test-only HTTP proxy in front of the real kube-apiserver, so tests can break watches on purpose: freeze
// the watch streams open now (a silent watch: connected, but nothing arrives), refuse connections (an
// unreachable API), or answer the next watch with 410 Gone as the API server does for an expired
// resourceVersion. Everything else is forwarded unchanged, with the admin token added.
import { KubeConfig } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export interface ApiProxy {
  url: string;
  /** A kubeconfig that reaches the API server through this proxy. */
  kubeConfig(): KubeConfig;
  /** Stops passing data on every watch open now, without closing it. Returns how many were frozen. */
  freezeOpenWatches(): number;
  /** While on, every connection is reset at once. */
  setRefusing(refusing: boolean): void;
  /** The next watch request gets `ERROR 410 Expired` instead of reaching the server. */
  failNextWatchWithGone(): void;
  /** Watch requests seen so far. */
  watchRequests(): number;
  /** Requests reset because the proxy was refusing. */
  refusedRequests(): number;
  close(): Promise<void>;
}

export async function startApiProxy(kubeconfigPath: string): Promise<ApiProxy> {
  const target = new KubeConfig();
  target.loadFromFile(kubeconfigPath);
  const cluster = target.getCurrentCluster();
  const token = target.getCurrentUser()?.token;
  if (!cluster || !token || !cluster.caFile)
    throw new Error('the proxy needs a kubeconfig with a token and a CA file');
  const ca = readFileSync(cluster.caFile);
  const upstream = new URL(cluster.server);

  let refusing = false;
  let goneNext = false;
  let watches = 0;
  let refused = 0;
  const openWatches = new Set<{ frozen: boolean }>();
  const sockets = new Set<Socket>();

  const forward = (req: IncomingMessage, res: ServerResponse) => {
    if (refusing) {
      refused += 1;
      req.socket.destroy();
      return;
    }
    const isWatch = new URL(req.url ?? '/', 'http://x').searchParams.get('watch') === 'true';
    if (isWatch) watches += 1;
    if (isWatch && goneNext) {
      goneNext = false;
      res.writeHead(200, { 'content-type': 'application/json' });
      const status = {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'too old resource version: 1 (2)',
        reason: 'Expired',
        code: 410,
      };
      res.end(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
      return;
    }
    const headers = { ...req.headers, host: upstream.host, authorization: `Bearer ${token}` };
    const outgoing = httpsRequest(
      new URL(req.url ?? '/', upstream),
      { method: req.method, headers, ca },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.on('error', () => res.destroy());
        if (!isWatch) {
          upstreamRes.pipe(res);
          return;
        }
        const stream = { frozen: false };
        openWatches.add(stream);
        upstreamRes.on('data', (chunk: Buffer) => {
          if (!stream.frozen) res.write(chunk);
        });
        upstreamRes.on('end', () => {
          openWatches.delete(stream);
          if (!stream.frozen) res.end();
        });
        upstreamRes.on('error', () => {
          openWatches.delete(stream);
          if (!stream.frozen) res.destroy();
        });
      },
    );
    // The API server went away: the client sees its connection cut, as it would without the proxy.
    outgoing.on('error', () => res.destroy());
    res.on('close', () => outgoing.destroy());
    req.pipe(outgoing);
  };

  const server = createServer(forward);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'proxy', server: url, skipTLSVerify: true }],
        users: [{ name: 'proxy-user' }],
        contexts: [{ name: 'proxy', cluster: 'proxy', user: 'proxy-user' }],
        currentContext: 'proxy',
      });
      return kc;
    },
    freezeOpenWatches() {
      for (const stream of openWatches) stream.frozen = true;
      return openWatches.size;
    },
    setRefusing(value) {
      refusing = value;
      if (value) for (const socket of sockets) socket.destroy();
    },
    failNextWatchWithGone() {
      goneNext = true;
    },
    watchRequests: () => watches,
    refusedRequests: () => refused,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
