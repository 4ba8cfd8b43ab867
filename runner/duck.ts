import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, hostname, tmpdir } from 'node:os';
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
  /** DuckDB memory limit, e.g. 512MB or 1GB; defaultMemoryLimit() when unset. */
  memoryLimit?: string;
  threads?: number;
}

/** DuckDB's memory limit where the container has none: local runs of the CLI. */
export const DEFAULT_MEMORY_LIMIT = '320MiB';
/**
 * DuckDB's share of the container's memory limit. Its resident memory runs far above its limit
 * (allocations outside the buffer pool, allocator caches, query results alive until V8 collects their
 * wrappers) and Node needs ~150 MB besides. Measured peaks on 10M rows: limit 512 MB, 1,075 MiB resident;
 * 400 MiB, 975-1,084 MiB; 320 MiB, 902 MiB, with no run slower.
 */
const CONTAINER_SHARE = 0.3;
const MiB = 1024 * 1024;

function readIfExists(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

/** The container's memory limit in bytes (cgroup v2, else v1), or undefined when there is none. */
export function containerMemoryLimit(
  read: (path: string) => string | undefined = readIfExists,
): number | undefined {
  for (const path of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    const text = read(path)?.trim();
    if (text === undefined) continue;
    const bytes = Number(text);
    // "max" (v2) or the page-rounded 2^63 (v1) mean no limit.
    if (!Number.isFinite(bytes) || bytes <= 0 || bytes >= 2 ** 62) return undefined;
    return bytes;
  }
  return undefined;
}

/** DuckDB's memory limit when the Sync and the runner set none: a share of the container's limit. */
export function defaultMemoryLimit(containerLimit: number | undefined = containerMemoryLimit()): string {
  if (containerLimit === undefined) return DEFAULT_MEMORY_LIMIT;
  return `${Math.max(128, Math.floor((containerLimit * CONTAINER_SHARE) / MiB))}MiB`;
}

/** A run's temp folder is `<tmp>/syncline-run-XXXXXX`, with an owner file naming the process using it. */
export const RUN_FOLDER_PREFIX = 'syncline-run-';
export const RUN_FOLDER_OWNER = 'owner.json';

export async function openEmbeddedDuck(options: DuckOptions = {}): Promise<EmbeddedDuck> {
  const parent = options.tmpDir ?? tmpdir();
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, RUN_FOLDER_PREFIX));
  // A killed run cannot remove its folder (model rows, spill files): the next CLI run removes it once
  // this process is gone (runner/cli/stale-runs.ts).
  writeFileSync(join(dir, RUN_FOLDER_OWNER), JSON.stringify({ pid: process.pid, host: hostname() }));
  const spill = join(dir, 'spill');
  mkdirSync(spill);
  try {
    // An in-memory database: its tables are never written out in DuckDB's compressed storage format
    // (which took as long as reading the model), yet stay bounded by the memory limit, since the buffer
    // manager moves their blocks to the temp folder past it. Nothing is kept after the run.
    const threads = options.threads ?? Math.max(1, availableParallelism());
    const instance = await DuckDBInstance.create(':memory:', {
      memory_limit: options.memoryLimit ?? defaultMemoryLimit(),
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
