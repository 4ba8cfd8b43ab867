import { existsSync, mkdirSync, mkdtempSync, rmSync, chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { freePort, run, startProcess, waitFor, type ManagedProcess } from './process.ts';
import { VERSIONS } from './versions.ts';

export interface MysqlServer {
  host: string;
  port: number;
  /** A user with every privilege, authenticated by password over TCP. */
  user: string;
  password: string;
  /** A database created for the tests, owned by `user`. */
  database: string;
  /** PEM of the CA that signed the server certificate, when started with `tls: true`. */
  caCert?: string;
  /** Run statements as the administrator (multiple statements allowed); returns the rows of the last one. */
  query(sql: string, values?: unknown[]): Promise<unknown>;
  /** Create a fresh database. */
  createDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
}

interface MysqlVersion {
  debianPackage: string;
}

const SERVER = '/usr/sbin/mariadbd';
const INSTALL_DB = '/usr/bin/mariadb-install-db';

function mysqlVersion(): MysqlVersion {
  const entry = (VERSIONS as unknown as { mysql?: MysqlVersion }).mysql;
  if (!entry) throw new Error('test/stack/versions.json has no "mysql" entry');
  return entry;
}

/** Install MariaDB from Debian's packages when the machine does not have it yet. */
export async function ensureMysqlInstalled(): Promise<void> {
  if (existsSync(SERVER) && existsSync(INSTALL_DB)) return;
  const { debianPackage } = mysqlVersion();
  if (process.getuid?.() !== 0) {
    throw new Error(`MariaDB is not installed: sudo apt-get install ${debianPackage}`);
  }
  await run('apt-get', ['update', '-q']);
  await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', debianPackage], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

/** A throwaway CA and a server certificate for localhost / 127.0.0.1, made with openssl. */
async function makeCertificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  const key = join(dir, 'server-key.pem');
  const csr = join(dir, 'server.csr');
  const cert = join(dir, 'server-cert.pem');
  const ext = join(dir, 'san.ext');
  writeFileSync(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=syncline-test-ca',
    '-keyout',
    caKey,
    '-out',
    ca,
  ]);
  await run('openssl', [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=localhost',
    '-keyout',
    key,
    '-out',
    csr,
  ]);
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    cert,
  ]);
  for (const file of [ca, key, cert]) chmodSync(file, 0o644);
  return { ca, cert, key };
}

/**
 * A throwaway MariaDB server on a free loopback port with a data folder that is removed on stop. When the
 * tests run as root the server runs as the `mysql` user. The test user `syncline` has a password and every
 * privilege; the administrator is reached through the server's private socket.
 */
export async function startMysql(options: { tls?: boolean } = {}): Promise<MysqlServer> {
  await ensureMysqlInstalled();
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'syncline-mysql-'));
  chmodSync(dir, 0o777);
  const dataDir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  // A private temporary folder: bootstraps running at the same time must not share /tmp's #sql files.
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { mode: 0o777 });
  chmodSync(tmp, 0o777);
  const asUser = root ? ['--user=mysql'] : [];
  await run(INSTALL_DB, [
    '--no-defaults',
    `--datadir=${dataDir}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
    '--skip-name-resolve',
    `--tmpdir=${tmp}`,
    ...asUser,
  ]);
  const certs = options.tls ? await makeCertificates(dir) : undefined;
  const port = await freePort();
  const server: ManagedProcess = startProcess(
    `mariadb-${port}`,
    SERVER,
    [
      '--no-defaults',
      `--datadir=${dataDir}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${socket}`,
      `--pid-file=${join(dir, 'mysqld.pid')}`,
      `--tmpdir=${tmp}`,
      '--skip-log-bin',
      '--skip-name-resolve',
      '--innodb-flush-log-at-trx-commit=0',
      '--innodb-buffer-pool-size=64M',
      '--character-set-server=utf8mb4',
      '--collation-server=utf8mb4_unicode_ci',
      ...(certs ? [`--ssl-ca=${certs.ca}`, `--ssl-cert=${certs.cert}`, `--ssl-key=${certs.key}`] : []),
      ...asUser,
    ],
    { logDir: dir },
  );
  const admin = () => mysql.createConnection({ socketPath: socket, user: 'root', multipleStatements: true });
  await waitFor(
    'MariaDB',
    async () => {
      if (server.exited())
        throw new Error(`mariadbd exited:\n${readFileSync(server.logFile, 'utf8').slice(-2000)}`);
      const connection = await admin();
      await connection.end();
      return true;
    },
    { timeoutMs: 60_000 },
  );
  const user = 'syncline';
  const password = 'syncline-test';
  const database = 'syncline';
  const query = async (sql: string, values?: unknown[]) => {
    const connection = await admin();
    try {
      const [rows] = await connection.query(sql, values);
      return rows;
    } finally {
      await connection.end();
    }
  };
  await query(
    `CREATE DATABASE ${database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
     CREATE USER '${user}'@'%' IDENTIFIED BY '${password}';
     GRANT ALL PRIVILEGES ON *.* TO '${user}'@'%';`,
  );
  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    database,
    caCert: certs ? readFileSync(certs.ca, 'utf8') : undefined,
    query,
    async createDatabase(name: string) {
      await query(`CREATE DATABASE \`${name.replaceAll('`', '``')}\` CHARACTER SET utf8mb4`);
    },
    async stop() {
      await server.stop(20_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
