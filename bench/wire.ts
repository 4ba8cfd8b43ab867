// A TCP proxy in front of PostgreSQL that counts what the server sends, by message type of the protocol
// (CopyData 'd', DataRow 'D', RowDescription 'T', ...): the bytes that leave the database, on the wire.
// Connections without TLS only (the bench's), so every byte from the server is a typed message.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface WireCount {
  bytes: number;
  /** By message type: how many, and their bytes (type and length included). */
  messages: Record<string, { count: number; bytes: number }>;
}

/** Splits the server's byte stream into messages (a type byte, a 4-byte length that counts itself). */
class MessageCounter {
  private header = Buffer.alloc(5);
  private headerFill = 0;
  private remaining = 0;
  private readonly count: () => WireCount;

  constructor(count: () => WireCount) {
    this.count = count;
  }

  push(chunk: Buffer): void {
    const total = this.count();
    total.bytes += chunk.length;
    let at = 0;
    while (at < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - at);
        this.remaining -= take;
        at += take;
        continue;
      }
      const take = Math.min(5 - this.headerFill, chunk.length - at);
      chunk.copy(this.header, this.headerFill, at, at + take);
      this.headerFill += take;
      at += take;
      if (this.headerFill < 5) break;
      const type = String.fromCharCode(this.header[0] as number);
      const length = this.header.readUInt32BE(1);
      const entry = (total.messages[type] ??= { count: 0, bytes: 0 });
      entry.count++;
      entry.bytes += length + 1;
      this.remaining = length - 4;
      this.headerFill = 0;
    }
  }
}

export interface WireProxy {
  port: number;
  /** What the server sent since the last reset. */
  take(): WireCount;
  close(): Promise<void>;
}

export async function startWireProxy(target: { host: string; port: number }): Promise<WireProxy> {
  let count: WireCount = { bytes: 0, messages: {} };
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    const counter = new MessageCounter(() => count);
    sockets.add(client).add(upstream);
    upstream.on('data', (chunk: Buffer) => counter.push(chunk));
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    take() {
      const taken = count;
      count = { bytes: 0, messages: {} };
      return taken;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
