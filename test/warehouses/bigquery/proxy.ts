// A counting HTTP proxy in front of the BigQuery emulator: the bytes the emulator sends (status line,
// headers and body of every response) are what "leaves BigQuery"; the bytes sent to it are counted
// apart. A fault can answer a matching request as BigQuery does when IAM refuses it (403 accessDenied).
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Denial {
  method: string;
  /** Matched against the request path. */
  path: RegExp;
  permission: string;
  resource: string;
}

export class CountingProxy {
  /** Bytes of every response from the emulator. */
  bytesOut = 0;
  /** Bytes of every request to it. */
  bytesIn = 0;
  requests = 0;
  denials: Denial[] = [];
  endpoint = '';
  private server: Server | undefined;
  private readonly target: URL;

  constructor(target: string) {
    this.target = new URL(target);
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.forward(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  reset(): void {
    this.bytesOut = 0;
    this.bytesIn = 0;
    this.requests = 0;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }

  private deny(req: IncomingMessage, res: ServerResponse, d: Denial): void {
    const message = `Access Denied: ${d.resource}: Permission ${d.permission} denied on ${d.resource} (or it may not exist).`;
    const body = JSON.stringify({
      error: {
        code: 403,
        message,
        errors: [{ message, domain: 'global', reason: 'accessDenied' }],
        status: 'PERMISSION_DENIED',
      },
    });
    req.resume();
    res.writeHead(403, { 'content-type': 'application/json; charset=UTF-8' }).end(body);
  }

  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++;
    const path = req.url ?? '/';
    const denial = this.denials.find((d) => d.method === req.method && d.path.test(path));
    if (denial) return this.deny(req, res, denial);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    this.bytesIn += body.length;
    const upstream = request(
      {
        host: this.target.hostname,
        port: this.target.port,
        method: req.method,
        path,
        headers: { ...req.headers, host: this.target.host },
      },
      (answer) => {
        const head = Object.entries(answer.headers)
          .map(([k, v]) => `${k}: ${String(v)}\r\n`)
          .join('');
        this.bytesOut += `HTTP/1.1 ${answer.statusCode} ${answer.statusMessage}\r\n${head}\r\n`.length;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.on('data', (chunk: Buffer) => {
          this.bytesOut += chunk.length;
          res.write(chunk);
        });
        answer.on('end', () => res.end());
      },
    );
    upstream.on('error', (error) => res.destroy(error));
    upstream.end(body);
  }
}
