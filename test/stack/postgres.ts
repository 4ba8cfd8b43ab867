import { existsSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, run, startProcess, waitFor, type ManagedProcess } from './process.ts';
import { VERSIONS } from './versions.ts';

export interface PostgresServer {
  host: string;
  port: number;
  user: string;
  password: string;
  /** The default database, `postgres`. */
  url: string;
  /** Create a fresh database and return its connection URL. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

function binDir(): string {
  return `/usr/lib/postgresql/${VERSIONS.postgres.major}/bin`;
}

/** Install PostgreSQL from Debian's packages when the machine does not have it yet. */
export async function ensurePostgresInstalled(log: (line: string) => void = () => {}): Promise<string> {
  const dir = binDir();
  if (existsSync(join(dir, 'initdb'))) return dir;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `PostgreSQL ${VERSIONS.postgres.major} is not installed: sudo apt-get install ${VERSIONS.postgres.debianPackage}`,
    );
  }
  log(`installing ${VERSIONS.postgres.debianPackage} with apt-get`);
  await run('apt-get', ['update', '-q']);
  await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', VERSIONS.postgres.debianPackage], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return dir;
}

/** initdb refuses to run as root; when we are root the cluster runs as the `postgres` user. */
function asServerUser(command: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
}

/**
 * A throwaway PostgreSQL cluster on a free loopback port, with password authentication, fsync off
 * (it is thrown away anyway) and a data folder that is removed on stop.
 */
export async function startPostgres(options: { logDir?: string } = {}): Promise<PostgresServer> {
  const bin = await ensurePostgresInstalled();
  const dir = mkdtempSync(join(tmpdir(), 'syncline-pg-'));
  chmodSync(dir, 0o777);
  const dataDir = join(dir, 'data');
  const password = 'syncline-test';
  const pwFile = join(dir, 'pw');
  await run('sh', ['-c', `printf '%s' "$PW" > "${pwFile}" && chmod 644 "${pwFile}"`], {
    env: { ...process.env, PW: password },
  });
  const [initCmd, initArgs] = asServerUser(join(bin, 'initdb'), [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--pwfile',
    pwFile,
    '-A',
    'scram-sha-256',
    '-E',
    'UTF8',
    '--locale',
    'C.UTF-8',
    '--no-sync',
  ]);
  await run(initCmd, initArgs);
  const port = await freePort();
  const [cmd, args] = asServerUser(join(bin, 'postgres'), [
    '-D',
    dataDir,
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    `unix_socket_directories=${dir}`,
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'max_connections=200',
  ]);
  const server: ManagedProcess = startProcess(`postgres-${port}`, cmd, args, {
    logDir: options.logDir ?? dir,
  });
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  await waitFor(
    'PostgreSQL',
    async () => {
      if (server.exited()) throw new Error('postgres exited');
      const client = new pg.Client({ connectionString: url });
      try {
        await client.connect();
        await client.query('SELECT 1');
        return true;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    { timeoutMs: 30_000 },
  );
  return {
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    url,
    async createDatabase(name: string) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      } finally {
        await client.end();
      }
      return `postgres://postgres:${password}@127.0.0.1:${port}/${encodeURIComponent(name)}`;
    },
    async stop() {
      // SIGINT is PostgreSQL's "fast shutdown".
      server.child.kill('SIGINT');
      await server.stop(10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
