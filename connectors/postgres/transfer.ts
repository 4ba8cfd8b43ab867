// Moving the rows of a COPY ... TO STDOUT into DuckDB. Through a named pipe where the OS has them:
// DuckDB parses rows while PostgreSQL is still sending them (the two overlap on separate cores) and the
// model never lands on disk as CSV. Without mkfifo, through a temp file.
import { execFile } from 'node:child_process';
import { constants, createWriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { DuckDBConnection } from '@duckdb/node-api';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { isPgServerError } from '../shared/pg.ts';
import { quoteIdent } from '../shared/sql.ts';
import type { Logger } from '../../core/connectors.ts';

export interface TransferRequest {
  client: pg.Client;
  copySql: string;
  duck: DuckDBConnection;
  table: string;
  /** The DuckDB statement that creates `table` from the CSV at `path`. */
  loadSql: (path: string) => string;
  dir: string;
  signal: AbortSignal;
  log: Logger;
}

/** Which side failed: the COPY (PostgreSQL, the network) or the load (DuckDB). */
export class TransferError extends Error {
  readonly side: 'copy' | 'load';
  constructor(side: 'copy' | 'load', cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.side = side;
  }
}

const execFileAsync = promisify(execFile);

async function makeFifo(path: string, log: Logger): Promise<boolean> {
  try {
    await execFileAsync('mkfifo', ['-m', '600', path]);
    return true;
  } catch (error) {
    log.debug({ err: String(error) }, 'no named pipes here; staging through a temp file');
    return false;
  }
}

/** Open and close the pipe's read end so that a writer blocked in open() moves on (and then fails with EPIPE). */
async function releaseWriter(path: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  await handle.close();
}

/**
 * After a failed transfer: no partial model survives, and the table name is free for another attempt. A
 * failed CREATE TABLE ... AS leaves no table behind in autocommit; this makes sure of it.
 */
async function dropPartial(req: TransferRequest): Promise<void> {
  await req.duck.run(`DROP TABLE IF EXISTS ${quoteIdent(req.table)}`);
}

export async function copyIntoDuck(req: TransferRequest): Promise<{ via: 'pipe' | 'file' }> {
  const base = join(req.dir, `pg-${req.table}-${process.pid}-${Date.now()}`);
  const pipePath = `${base}.pipe`;
  const viaPipe = await makeFifo(pipePath, req.log);
  const path = viaPipe ? pipePath : `${base}.csv`;
  const copy = () =>
    pipeline(req.client.query(copyTo(req.copySql)), createWriteStream(path, { highWaterMark: 1 << 20 }), {
      signal: req.signal,
    });
  try {
    if (!viaPipe) {
      await copy().catch((error: unknown) => {
        throw new TransferError('copy', error);
      });
      await req.duck.run(req.loadSql(path)).catch(async (error: unknown) => {
        await dropPartial(req);
        throw new TransferError('load', error);
      });
      return { via: 'file' };
    }

    let copyError: unknown;
    let loadError: unknown;
    const load = req.duck.run(req.loadSql(path)).then(
      () => undefined,
      async (error: unknown) => {
        loadError = error;
        await releaseWriter(path).catch((e: unknown) =>
          req.log.debug({ err: String(e) }, 'releasing the pipe writer'),
        );
      },
    );
    const sent = copy().then(
      () => undefined,
      (error: unknown) => {
        copyError = error;
      },
    );
    await Promise.all([load, sent]);
    if (copyError !== undefined) {
      // DuckDB saw the stream end early and may have loaded part of it: never keep a partial model.
      await dropPartial(req);
      // A DuckDB failure makes the COPY fail with EPIPE; then DuckDB's error is the one that explains.
      if (loadError !== undefined && !isPgServerError(copyError)) throw new TransferError('load', loadError);
      throw new TransferError('copy', copyError);
    }
    if (loadError !== undefined) {
      await dropPartial(req);
      throw new TransferError('load', loadError);
    }
    return { via: 'pipe' };
  } finally {
    await rm(path, { force: true });
  }
}
