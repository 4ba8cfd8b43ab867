// A small HTTPS JSON client for the run API in tests: a CA to trust and the name the certificate is for.
import { request } from 'node:https';

export interface ApiTarget {
  port: number;
  ca: Buffer;
  /** The name the server's certificate is for (checked, as a client in the cluster would). */
  servername: string;
}

export interface ApiAnswer<T = Record<string, unknown>> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

export function callApi<T = Record<string, unknown>>(
  target: ApiTarget,
  method: 'GET' | 'POST',
  path: string,
  options: {
    token?: string;
    body?: unknown;
    /** The body's exact bytes, instead of body as JSON. */
    raw?: string;
    headers?: Record<string, string>;
    timeoutMs?: number;
  } = {},
): Promise<ApiAnswer<T>> {
  const text = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const payload = text === undefined ? undefined : Buffer.from(text);
  const headers: Record<string, string | number> = { accept: 'application/json', ...options.headers };
  if (options.token) headers['authorization'] = `Bearer ${options.token}`;
  if (payload) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = payload.length;
  }
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: target.port,
        method,
        path,
        headers,
        ca: target.ca,
        servername: target.servername,
        timeout: options.timeoutMs ?? 150_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // Not JSON: the test sees the text.
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: body as T });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** A POST of exact bytes (a webhook delivery, signed over its raw body), with the headers given. */
export function callApiRaw(
  target: ApiTarget,
  path: string,
  raw: string,
  headers: Record<string, string>,
): Promise<ApiAnswer> {
  return callApi(target, 'POST', path, { raw, headers });
}
