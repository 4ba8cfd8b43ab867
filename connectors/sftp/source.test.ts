// The sftp Source against a real OpenSSH server (test/stack/sshd.ts): formats, globs, newest and all, the
// host key pin, logins refused, missing paths, and files cut off.
import { utimesSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import { openDuck, rowsOf, synclineFailure, testContext } from '../shared/test-context.ts';
import { startSshd, type SshServer } from '../../test/stack/sshd.ts';
import { sftpSource } from './source.ts';

let server: SshServer;
const KEY = { secretKeyRef: { name: 'sftp', key: 'key' } };

beforeAll(async () => {
  server = await startSshd();
}, 60_000);
afterAll(async () => server?.stop());

function source(overrides: Partial<NonNullable<SourceSpec['sftp']>> = {}): SourceSpec {
  return {
    type: 'sftp',
    sftp: {
      host: server.host,
      port: server.port,
      user: server.user,
      privateKey: KEY,
      hostKey: server.hostKeys.ed25519.publicKey,
      path: '.',
      pick: 'newest',
      timeoutSeconds: 30,
      ...overrides,
    },
  };
}

function context(extra: Record<string, string> = {}) {
  return testContext({ sftp: { key: server.clientKey.privateKey, ...extra } });
}

async function stage(spec: SourceSpec, table: string, extra: Record<string, string> = {}) {
  const ctx = context(extra);
  const { duck, close } = await openDuck();
  try {
    const model: ModelSpec = { sourceRef: { name: 'src' }, table, primaryKey: 'id' };
    const result = await sftpSource.stage({
      ...ctx,
      source: spec,
      model,
      duck,
      table: 'staged',
      labels: { namespace: 'test', sync: 's', runId: 'r' },
    });
    const rows = (await rowsOf(duck, 'SELECT * FROM staged ORDER BY id')).map(
      (r): Record<string, unknown> => ({ ...r, id: Number(r.id) }),
    );
    return { result, rows };
  } finally {
    close();
    ctx.cleanup();
  }
}

async function stageFailure(spec: SourceSpec, table: string, extra: Record<string, string> = {}) {
  const ctx = context(extra);
  const { duck, close } = await openDuck();
  try {
    const error = await synclineFailure(
      sftpSource.stage({
        ...ctx,
        source: spec,
        model: { sourceRef: { name: 'src' }, table, primaryKey: 'id' },
        duck,
        table: 'staged',
        labels: { namespace: 'test', sync: 's', runId: 'r' },
      }),
    );
    const tables = await rowsOf(
      duck,
      "SELECT table_name FROM information_schema.tables WHERE table_name = 'staged'",
    );
    return { error, staged: tables.length > 0 };
  } finally {
    close();
    ctx.cleanup();
  }
}

describe('sftp source: formats', () => {
  it('reads CSV, JSON lines and Parquet, keeping values exactly', async () => {
    server.writeFile('formats/people.csv', 'id,name,amount\n1,"Ada, Countess",12.50\n2,"say ""hi""",\n');
    server.writeFile(
      'formats/people.jsonl',
      '{"id":1,"name":"Ada, Countess","amount":12.5}\n{"id":2,"name":"say \\"hi\\"","amount":null}\n',
    );
    const { duck, close } = await openDuck();
    const parquet = join(server.root, 'formats', 'people.parquet');
    await duck.run(
      `COPY (SELECT * FROM (VALUES (1, 'Ada, Countess', 12.5), (2, 'say "hi"', NULL)) t(id, name, amount)) TO '${parquet}' (FORMAT parquet)`,
    );
    close();
    server.writeFile('formats/people.parquet', (await import('node:fs')).readFileSync(parquet));
    const expected = [
      { id: 1, name: 'Ada, Countess', amount: 12.5 },
      { id: 2, name: 'say "hi"', amount: null },
    ];
    for (const file of ['people.csv', 'people.jsonl', 'people.parquet']) {
      const { result, rows } = await stage(source({ path: 'formats' }), file);
      expect(result.rows, file).toBe(2);
      expect(
        rows.map((r) => ({ ...r, amount: r.amount === null ? null : Number(r.amount) })),
        file,
      ).toEqual(expected);
    }
  });
});

describe('sftp source: globs, newest and all', () => {
  beforeAll(() => {
    server.writeFile('drops/2026/customers-01.csv', 'id,name\n1,old\n');
    server.writeFile('drops/2026/customers-02.csv', 'id,name\n1,new\n2,b\n');
    server.writeFile('drops/2026/customers-03.csv', 'id,name\n3,c\n');
    server.writeFile('drops/2026/other.csv', 'id,name\n9,not matched\n');
    server.writeFile('drops/2026/.customers-04.csv.partial', 'id,name\n4,in flight');
    // 02 is the newest by time although 03 sorts last.
    const at = (name: string, seconds: number) =>
      utimesSync(join(server.root, 'drops/2026', name), seconds, seconds);
    at('customers-01.csv', 1_700_000_000);
    at('customers-02.csv', 1_700_000_200);
    at('customers-03.csv', 1_700_000_100);
  });

  it('newest: the file modified last of those the glob matches', async () => {
    const { rows } = await stage(source({ path: 'drops' }), '2026/customers-*.csv');
    expect(rows).toEqual([
      { id: 1, name: 'new' },
      { id: 2, name: 'b' },
    ]);
  });

  it('all: the rows of every matching file (a glob in a folder segment too), never a hidden upload', async () => {
    const { rows } = await stage(source({ path: 'drops', pick: 'all' }), '*/customers-0[23].csv');
    expect(rows).toEqual([
      { id: 1, name: 'new' },
      { id: 2, name: 'b' },
      { id: 3, name: 'c' },
    ]);
  });

  it('all: files with other columns are refused, not read with NULLs', async () => {
    server.writeFile('mixed/a.csv', 'id,name\n1,a\n');
    server.writeFile('mixed/b.csv', 'id,email\n2,b@example.com\n');
    const { error, staged } = await stageFailure(source({ path: 'mixed', pick: 'all' }), '*.csv');
    expect(error.reason).toBe('SourceFileUnreadable');
    expect(error.message).toContain('mixed/b.csv has the columns email, id where');
    expect(staged).toBe(false);
  });

  it('an absolute path, .. and ** are refused as the Model table', async () => {
    for (const table of ['/etc/passwd', '../x.csv', '**/*.csv']) {
      const { error } = await stageFailure(source(), table);
      expect(error.reason, table).toBe('InvalidModel');
    }
  });
});

describe('sftp source: a Model query', () => {
  async function stageQuery(query: string) {
    const ctx = context();
    const { duck, close } = await openDuck();
    try {
      await sftpSource.stage({
        ...ctx,
        source: source({ path: 'shop' }),
        model: { sourceRef: { name: 'src' }, query, primaryKey: 'id' },
        duck,
        table: 'staged',
        labels: { namespace: 'test', sync: 's', runId: 'r' },
      });
      return await rowsOf(duck, 'SELECT * FROM staged ORDER BY id');
    } finally {
      close();
      ctx.cleanup();
    }
  }

  it('joins the files its literals name (the newest of a glob), downloaded and run in the sandbox', async () => {
    server.writeFile('shop/customers.csv', 'id,name\n1,Ada\n2,Grace\n');
    server.writeFile('shop/orders-1.jsonl', '{"customer":1,"total":5}\n');
    server.writeFile('shop/orders-2.jsonl', '{"customer":1,"total":7}\n{"customer":2,"total":3}\n');
    utimesSync(join(server.root, 'shop/orders-1.jsonl'), 1_700_000_000, 1_700_000_000);
    const rows = await stageQuery(
      `SELECT c.id, c.name, sum(o.total)::INT AS total FROM read_csv('customers.csv') c
       JOIN read_json('orders-*.jsonl') o ON o.customer = c.id WHERE c.name <> 'nobody' GROUP BY ALL`,
    );
    expect(rows).toEqual([
      { id: '1', name: 'Ada', total: 7 },
      { id: '2', name: 'Grace', total: 3 },
    ]);
  });

  it('refuses a file it names that is cut off, and a read outside the download folder', async () => {
    server.writeFile('shop/cut.csv', 'id,name\n1,Ada\n2,Gr');
    const cut = await synclineFailure(stageQuery("SELECT * FROM read_csv('cut.csv')"));
    expect(cut.reason).toBe('SourceFileUnreadable');
    const outside = await synclineFailure(stageQuery("SELECT * FROM read_csv('/etc/passwd')"));
    expect(outside.reason).toBe('SourceAccessDenied');
  });
});

describe('sftp source: missing and cut-off files', () => {
  it('a missing folder or no matching file is PathNotFound naming it', async () => {
    const folder = await stageFailure(source({ path: 'no-such-folder' }), 'x.csv');
    expect(folder.error.reason).toBe('PathNotFound');
    expect(folder.error.message).toContain('"no-such-folder" (sftp.path) does not exist');
    const file = await stageFailure(source({ path: 'formats' }), 'missing-*.csv');
    expect(file.error.reason).toBe('PathNotFound');
    expect(file.error.message).toContain('matches "missing-*.csv"');
  });

  it('a CSV cut off mid-row is refused and stages nothing', async () => {
    server.writeFile('cut/orders.csv', 'id,total\n1,10.00\n2,20.00\n3,3');
    const { error, staged } = await stageFailure(source({ path: 'cut' }), 'orders.csv');
    expect(error.reason).toBe('SourceFileUnreadable');
    expect(error.message).toContain(
      `sftp://${server.user}@${server.host}:${server.port}/cut/orders.csv line 4:`,
    );
    expect(error.message).toContain('does not end with a line break');
    expect(staged).toBe(false);
  });

  it('a gzip stream cut off is refused', async () => {
    const { gzipSync } = await import('node:zlib');
    const whole = gzipSync('id,name\n' + Array.from({ length: 5000 }, (_, i) => `${i},n${i}\n`).join(''));
    server.writeFile('cut/big.csv.gz', whole.subarray(0, Math.floor(whole.length / 2)));
    const { error, staged } = await stageFailure(source({ path: 'cut' }), 'big.csv.gz');
    expect(error.reason).toBe('SourceFileUnreadable');
    expect(error.message).toContain('is cut off or corrupt');
    expect(staged).toBe(false);
  });
});

describe('sftp source: host key and login', () => {
  it('checks the connection with the key line, the ssh-keygen line of another key type, and a bare fingerprint', async () => {
    for (const hostKey of [
      server.hostKeys.ed25519.publicKey,
      server.hostKeys.ecdsa.fingerprintLine,
      server.hostKeys.ecdsa.publicKey,
      server.hostKeys.ed25519.fingerprint,
    ]) {
      const ctx = context();
      await expect(sftpSource.check(source({ hostKey }), ctx), hostKey).resolves.toBeUndefined();
      ctx.cleanup();
    }
  });

  it('refuses a server whose host key is not the pinned one, naming both fingerprints, before logging in', async () => {
    const before = server.log().split('\n').length;
    const ctx = context();
    const error = await synclineFailure(
      sftpSource.check(source({ hostKey: server.strangerKey.publicKey }), ctx),
    );
    ctx.cleanup();
    expect(error.reason).toBe('SftpHostKeyMismatch');
    expect(error.message).toContain(server.hostKeys.ed25519.fingerprint);
    expect(error.message).toContain(server.strangerKey.fingerprint);
    expect(error.message).toContain(`${server.host}:${server.port}`);
    const after = server
      .log()
      .split('\n')
      .slice(before - 1)
      .join('\n');
    expect(after).toContain('Connection from 127.0.0.1');
    expect(after).not.toMatch(/publickey|password|Accepted|Failed/);
  });

  it('a bare fingerprint of a key the server does not prefer is refused with a hint to pin the type', async () => {
    const ctx = context();
    const error = await synclineFailure(
      sftpSource.check(source({ hostKey: server.hostKeys.ecdsa.fingerprint }), ctx),
    );
    ctx.cleanup();
    expect(error.reason).toBe('SftpHostKeyMismatch');
    expect(error.message).toContain('The pin does not say its key type');
  });

  it('a key the server does not know is AuthenticationFailed, with no key material in the message', async () => {
    const ctx = testContext({ sftp: { key: server.strangerKey.privateKey } });
    const error = await synclineFailure(sftpSource.check(source(), ctx));
    ctx.cleanup();
    expect(error.reason).toBe('AuthenticationFailed');
    expect(error.message).toContain(`user "${server.user}"`);
    expect(error.message).not.toContain('PRIVATE KEY');
    expect(error.message).not.toContain(server.strangerKey.privateKey.split('\n')[1]);
  });

  it('a password the server refuses is AuthenticationFailed, the password nowhere in the message', async () => {
    const password = 'not-the-password-8c1f';
    const ctx = testContext({ sftp: { password } });
    const spec = source({
      privateKey: undefined,
      password: { secretKeyRef: { name: 'sftp', key: 'password' } },
    });
    const error = await synclineFailure(sftpSource.check(spec, ctx));
    ctx.cleanup();
    expect(error.reason).toBe('AuthenticationFailed');
    expect(JSON.stringify({ message: error.message, logs: ctx.log.lines })).not.toContain(password);
  });

  it('an encrypted key logs in with its passphrase; without it the Secret is InvalidCredentials', async () => {
    const spec = source({ privateKeyPassphrase: { secretKeyRef: { name: 'sftp', key: 'passphrase' } } });
    const ok = testContext({
      sftp: { key: server.encryptedClientKey.privateKey, passphrase: server.encryptedClientKey.passphrase },
    });
    await expect(sftpSource.check(spec, ok)).resolves.toBeUndefined();
    ok.cleanup();
    const missing = testContext({ sftp: { key: server.encryptedClientKey.privateKey } });
    const error = await synclineFailure(sftpSource.check(source(), missing));
    missing.cleanup();
    expect(error.reason).toBe('InvalidCredentials');
  });

  it('a closed port is SourceUnreachable (retried)', async () => {
    const { freePort } = await import('../../test/stack/process.ts');
    const ctx = context();
    const error = await synclineFailure(sftpSource.check(source({ port: await freePort() }), ctx));
    ctx.cleanup();
    expect(error.reason).toBe('SourceUnreachable');
    expect(error.retryable).toBe(true);
  });
});
