// TLS modes against a real PostgreSQL serving a certificate signed by a throwaway CA.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SourceSpec } from '../../crds/index.ts';
import { startPostgres, type PostgresServer } from '../../test/stack/postgres.ts';
import { source } from '../postgres/index.ts';
import { testContext } from './test-context.ts';

let server: PostgresServer;
const dir = mkdtempSync(join(tmpdir(), 'syncline-tls-'));
let base: ReturnType<typeof testContext>;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function spec(host: string, tls: Record<string, unknown> | undefined): SourceSpec {
  return {
    type: 'postgres',
    postgres: {
      host,
      port: server.port,
      database: 'postgres',
      user: server.user,
      password: { secretKeyRef: { name: 'pg', key: 'password' } },
      tls,
    },
  } as SourceSpec;
}

beforeAll(async () => {
  server = await startPostgres();
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=syncline-test-ca',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=localhost',
  );
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  );
  chmodSync(dir, 0o755);
  chmodSync(join(dir, 'server.crt'), 0o644);
  chmodSync(join(dir, 'server.key'), 0o600);
  if (process.getuid?.() === 0) {
    // The test server runs as the postgres user, which must own its key.
    const ids = execFileSync('id', ['-u', 'postgres']).toString().trim();
    const gid = execFileSync('id', ['-g', 'postgres']).toString().trim();
    chownSync(join(dir, 'server.key'), Number(ids), Number(gid));
  }
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query(`ALTER SYSTEM SET ssl_cert_file = '${join(dir, 'server.crt')}'`);
  await admin.query(`ALTER SYSTEM SET ssl_key_file = '${join(dir, 'server.key')}'`);
  await admin.query('ALTER SYSTEM SET ssl = on');
  await admin.query('SELECT pg_reload_conf()');
  await admin.end();
  base = testContext({ pg: { password: server.password, ca: readFileSync(join(dir, 'ca.crt'), 'utf8') } });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  base?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const ca = { secretKeyRef: { name: 'pg', key: 'ca' } };

describe('postgres TLS modes', () => {
  it('require encrypts without verifying; verify-ca checks the CA; verify-full also the host name', async () => {
    await expect(source!.check(spec('127.0.0.1', { mode: 'require' }), base)).resolves.toBeUndefined();
    await expect(
      source!.check(spec('127.0.0.1', { mode: 'verify-ca', caCert: ca }), base),
    ).resolves.toBeUndefined();
    await expect(
      source!.check(spec('localhost', { mode: 'verify-full', caCert: ca }), base),
    ).resolves.toBeUndefined();
    await expect(source!.check(spec('127.0.0.1', undefined), base)).resolves.toBeUndefined();
  });

  it('names a certificate it cannot verify', async () => {
    await expect(
      source!.check(spec('127.0.0.1', { mode: 'verify-full', caCert: ca }), base),
    ).rejects.toMatchObject({
      reason: 'TlsVerificationFailed',
      message: expect.stringContaining('ERR_TLS_CERT_ALTNAME_INVALID'),
    });
    await expect(source!.check(spec('localhost', { mode: 'verify-full' }), base)).rejects.toMatchObject({
      reason: 'TlsVerificationFailed',
    });
  });
});
