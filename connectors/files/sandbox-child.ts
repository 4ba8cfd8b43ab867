// The process a files Model's query runs in (started by sandbox.ts, never imported): its working folder is
// the Source folder, its environment is empty (no credentials), and its DuckDB may touch no file but the
// Source folder's, its own database file and its spill folder. It reads one job as JSON on stdin, writes
// the model to table `model` of the database file, and answers one line of JSON on stdout.
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import type { Reason } from '../../core/reasons.ts';

export interface SandboxJob {
  query: string;
  /** The Source folder (also this process's working folder). */
  folder: string;
  /** The database file the model is written to. */
  database: string;
  spill: string;
  memoryLimit: string;
  threads: string;
}

export type SandboxAnswer = { ok: true } | { ok: false; reason: Reason; message: string };

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0] ?? text;
}

/** What DuckDB's parser refused, for modelNotReadOnly (connectors/shared/read-only.ts). */
const NOT_ONE_SELECT =
  "it is not one SELECT statement (a files Model's query may read only the Source's files and write nothing)";
const notOneSelect: SandboxAnswer = { ok: false, reason: 'ModelNotReadOnly', message: NOT_ONE_SELECT };

function classify(error: unknown): SandboxAnswer {
  const message = firstLine(error);
  const denied = /^Permission Error: Cannot access (?:file|directory) "(.*)"/.exec(message);
  if (denied) {
    return {
      ok: false,
      reason: 'SourceAccessDenied',
      message:
        `the model query reads "${denied[1]}", outside the Source folder: a files Model's query may read ` +
        'only the files of its Source (relative paths resolve against the Source folder)',
    };
  }
  if (message.startsWith('Permission Error')) {
    return {
      ok: false,
      reason: 'SourceAccessDenied',
      message: `the model query needs access a files Source does not give: ${message}`,
    };
  }
  return { ok: false, reason: 'SourceQueryFailed', message: `the model query failed in DuckDB: ${message}` };
}

/**
 * Whether the text is one SELECT statement, by DuckDB's parser alone: preparing a statement already acts
 * (EXPORT DATABASE creates its folder), and json_serialize_sql parses without binding, SELECTs only.
 */
async function isOneSelect(conn: DuckDBConnection, sql: string): Promise<boolean> {
  const reader = await conn.runAndReadAll('SELECT json_serialize_sql($1::VARCHAR) AS parsed', [sql]);
  const parsed = JSON.parse(String(reader.getRowObjectsJS()[0]?.parsed)) as {
    error: boolean;
    error_message?: string;
    statements?: unknown[];
  };
  if (parsed.error && !/SELECT statements/i.test(parsed.error_message ?? '')) {
    throw new Error(`Parser Error: ${parsed.error_message ?? 'the query does not parse'}`);
  }
  return !parsed.error && parsed.statements?.length === 1;
}

async function run(job: SandboxJob): Promise<SandboxAnswer> {
  const instance = await DuckDBInstance.create(job.database, {
    memory_limit: job.memoryLimit,
    threads: job.threads,
    temp_directory: job.spill,
    preserve_insertion_order: 'false',
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  });
  const conn = await instance.connect();
  try {
    await conn.run("SET TimeZone = 'UTC'");
    await conn.run(`SET allowed_directories = [${literal(job.folder)}]`);
    await conn.run('SET enable_external_access = false');
    await conn.run('SET lock_configuration = true');
    const body = job.query.trim().replace(/;+\s*$/, '');
    if (!(await isOneSelect(conn, body))) return notOneSelect;
    // The newline ends a trailing line comment; the check makes sure nothing else was appended.
    const create = `CREATE TABLE model AS ${body}\n`;
    if ((await conn.extractStatements(create)).count !== 1) return notOneSelect;
    await conn.run(create);
    return { ok: true };
  } catch (error) {
    return classify(error);
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const answer = await run(JSON.parse(await readStdin()) as SandboxJob).catch((error: unknown): SandboxAnswer =>
  classify(error),
);
process.stdout.write(`${JSON.stringify(answer)}\n`);
