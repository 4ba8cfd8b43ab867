import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

/** An embedded DuckDB database in a private temp folder, removed by `close()`. */
export interface EmbeddedDuck {
  instance: DuckDBInstance;
  /** The connection staging, diff and commit run on. */
  connection: DuckDBConnection;
  /** A private scratch folder (also handed to connectors); DuckDB's spill files live in it. */
  dir: string;
  /** DuckDB's worker threads. */
  threads: number;
  close(): void;
}

export interface DuckOptions {
  /** Parent folder of the temp folder; defaults to the OS temp folder. */
  tmpDir?: string;
  /** DuckDB memory limit, e.g. 512MB or 1GB. */
  memoryLimit?: string;
  threads?: number;
}

export const DEFAULT_MEMORY_LIMIT = '512MB';

export async function openEmbeddedDuck(options: DuckOptions = {}): Promise<EmbeddedDuck> {
  const parent = options.tmpDir ?? tmpdir();
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, 'syncline-run-'));
  const spill = join(dir, 'spill');
  mkdirSync(spill);
  try {
    // An in-memory database: its tables are never written out in DuckDB's compressed storage format
    // (which took as long as reading the model), yet stay bounded by the memory limit, since the buffer
    // manager moves their blocks to the temp folder past it. Nothing is kept after the run.
    const threads = options.threads ?? Math.max(1, availableParallelism());
    const instance = await DuckDBInstance.create(':memory:', {
      memory_limit: options.memoryLimit ?? DEFAULT_MEMORY_LIMIT,
      temp_directory: spill,
      threads: String(threads),
      // Values are compared and written as they are; no insertion-order bookkeeping is needed.
      preserve_insertion_order: 'false',
      // Hand freed memory back to the OS early: without it the resident size stays far above the limit.
      allocator_flush_threshold: '16MB',
      allocator_background_threads: 'true',
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'true',
    });
    const connection = await instance.connect();
    await connection.run("SET TimeZone = 'UTC'");
    return {
      instance,
      connection,
      dir,
      threads,
      close() {
        connection.closeSync();
        instance.closeSync();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** A quoted SQL identifier. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A quoted SQL string literal. */
export function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** The first row of a query as an object of JSON-safe values. */
export async function queryOne(conn: DuckDBConnection, sql: string): Promise<Record<string, unknown>> {
  const reader = await conn.runAndReadAll(sql);
  return (reader.getRowObjectsJson()[0] ?? {}) as Record<string, unknown>;
}

export async function queryAll(conn: DuckDBConnection, sql: string): Promise<Record<string, unknown>[]> {
  const reader = await conn.runAndReadAll(sql);
  return reader.getRowObjectsJson() as Record<string, unknown>[];
}

/** A count as a number (DuckDB returns BIGINT counts, which arrive as strings in JSON form). */
export function toCount(value: unknown): number {
  if (value === null || value === undefined) return 0;
  return Number(value);
}
