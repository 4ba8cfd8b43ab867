// SFTP to SFTP through the real engine (executeRun), against a real OpenSSH server: the dropped file holds
// the model value for value, changes arrive as changes, a source file cut off fails the run and deletes
// nothing, and a run that fails between upload and rename delivers nothing and leaves nothing that looks
// complete, so the next run delivers the same changes.
import { readdirSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { parseAllDocuments } from 'yaml';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.ts';
import { runPlan } from '../../core/plan.ts';
import { secretResolver } from '../../core/secrets.ts';
import { executeRun } from '../../runner/run.ts';
import { openDuck, rowsOf } from '../../connectors/shared/test-context.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { startSshd, type SshServer } from '../stack/sshd.ts';
import { sql } from './helpers.ts';

let server: SshServer;
const dir = mkdtempSync(join(tmpdir(), 'syncline-sftp-engine-'));
let runs = 0;
const KEY = { secretKeyRef: { name: 'sftp', key: 'id_ed25519' } };

beforeAll(async () => {
  server = await startSshd();
  server.mkdir('outbox');
}, 60_000);
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function connection(hostKey = server.hostKeys.ed25519.publicKey) {
  return { host: server.host, port: server.port, user: server.user, privateKey: KEY, hostKey };
}

function plan(options: { name: string; table: string; fileName: string; hostKey?: string }) {
  runs += 1;
  return runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId: `sftp-run-${runs}`,
    namespace: 'test',
    fullResync: false,
    dryRun: false,
    sync: {
      name: options.name,
      spec: {
        modelRef: { name: 'model' },
        destinationRef: { name: 'dest' },
        mode: 'upsert',
        deleteBehavior: 'delete',
      },
    },
    model: { name: 'model', spec: { sourceRef: { name: 'src' }, table: options.table, primaryKey: 'id' } },
    source: { name: 'src', spec: { type: 'sftp', sftp: { ...connection(options.hostKey), path: 'inbox' } } },
    destination: {
      name: 'dest',
      spec: {
        type: 'sftp',
        sftp: { ...connection(), path: 'outbox', fileName: options.fileName, format: 'csv' },
      },
    },
    diffStore: { url: pathToFileURL(join(dir, 'state', options.name)).href },
    runner: { tmpDir: join(dir, 'tmp') },
  });
}

function run(options: Parameters<typeof plan>[0]) {
  return executeRun(plan(options), {
    secrets: secretResolver({}, { sftp: { id_ed25519: server.clientKey.privateKey } }),
    log: silentLogger(),
    signal: new AbortController().signal,
    backoff: { baseMs: 5, capMs: 50 },
  });
}

const outbox = () => readdirSync(join(server.root, 'outbox')).sort();

// Values a CSV drop must carry exactly: quotes, delimiters and line breaks inside values, an empty string
// next to a NULL, unicode, exact decimals, big integers, dates and timestamps.
const MODEL_CSV =
  'id,name,note,amount,big,day,at,active\n' +
  '1,"Ada, Countess","said ""hi""",12.50,9007199254740993,2026-01-31,2026-01-31 23:59:59,true\n' +
  '2,Zoë,"two\nlines",,-1,1999-12-31,1999-12-31 00:00:00,false\n' +
  '3,"",plain,0.01,0,2000-02-29,2000-02-29 12:00:00,\n';

const READ = "header = true, quote = '\"', escape = '\"', allow_quoted_nulls = false";

/** The model as the sftp Source reads it (types from every row), and the dropped file read with those types. */
async function modelAndDrop(source: string, drop: string) {
  const { duck, close } = await openDuck();
  try {
    const model = await rowsOf(
      duck,
      `SELECT * FROM read_csv('${source}', ${READ}, sample_size = -1) ORDER BY id`,
    );
    const described = await rowsOf(
      duck,
      `DESCRIBE SELECT * FROM read_csv('${source}', ${READ}, sample_size = -1)`,
    );
    const types = [
      "'_operation': 'VARCHAR'",
      "'_key': 'VARCHAR'",
      ...described.map((c) => `'${String(c.column_name)}': '${String(c.column_type)}'`),
    ].join(', ');
    const dropped = await rowsOf(
      duck,
      `SELECT * EXCLUDE (_operation, _key) FROM read_csv('${drop}', ${READ}, columns = {${types}}) ORDER BY id`,
    );
    return { model, dropped, types: described.map((c) => String(c.column_type)) };
  } finally {
    close();
  }
}

/** Files in the outbox that a reader taking *.csv would pick up, by prefix. */
const drops = (prefix: string) => outbox().filter((n) => n.startsWith(prefix) && n.endsWith('.csv'));

describe('sftp to sftp through the engine', () => {
  it('drops the model value for value, then only what changed', async () => {
    server.writeFile('inbox/customers.csv', MODEL_CSV);
    const first = await run({ name: 'values', table: 'customers.csv', fileName: 'values-{{ runId }}.csv' });
    expect(first.result).toBe('Succeeded');
    expect(first.counts).toMatchObject({ added: 3, delivered: 3 });
    // Named after the run (the runner hands its id to the destination).
    expect(drops('values-')).toEqual([`values-${first.runId}.csv`]);
    const firstDrop = drops('values-')[0] ?? '';
    const { model, dropped, types } = await modelAndDrop(
      join(server.root, 'inbox', 'customers.csv'),
      join(server.root, 'outbox', firstDrop),
    );
    expect(types).toEqual([
      'BIGINT',
      'VARCHAR',
      'VARCHAR',
      'DOUBLE',
      'BIGINT',
      'DATE',
      'TIMESTAMP',
      'BOOLEAN',
    ]);
    expect(dropped).toEqual(model);
    expect(model[1]).toMatchObject({ name: 'Zoë', note: 'two\nlines', amount: null, big: '-1' });
    expect(model[2]).toMatchObject({ name: '', active: null });

    // One row changed, one removed: the next drop holds exactly those.
    server.writeFile(
      'inbox/customers.csv',
      MODEL_CSV.replace('0.01,0,', '0.02,0,')
        .split('\n')
        .filter((l) => !l.startsWith('1,'))
        .join('\n'),
    );
    const second = await run({ name: 'values', table: 'customers.csv', fileName: 'values-{{ runId }}.csv' });
    expect(second.counts).toMatchObject({ changed: 1, removed: 1, delivered: 2 });
    const secondDrop = drops('values-').find((n) => n !== firstDrop) ?? '';
    const lines = readFileSync(join(server.root, 'outbox', secondDrop), 'utf8')
      .trim()
      .split('\n')
      .slice(1);
    expect(lines.map((l) => l.split(',').slice(0, 2).join(',')).sort()).toEqual(['delete,1', 'upsert,3']);
  });

  it('a source file cut off mid-row fails the run, deletes nothing and drops nothing', async () => {
    server.writeFile('inbox/orders.csv', 'id,total\n1,10\n2,20\n3,30\n');
    const first = await run({ name: 'cut', table: 'orders.csv', fileName: 'orders.csv' });
    expect(first.counts).toMatchObject({ added: 3, delivered: 3 });
    const before = readFileSync(join(server.root, 'outbox', 'orders.csv'), 'utf8');

    server.writeFile('inbox/orders.csv', 'id,total\n1,10\n2,2');
    const cut = await run({ name: 'cut', table: 'orders.csv', fileName: 'orders.csv' });
    expect(cut.result).toBe('Failed');
    expect(cut.reason).toBe('SourceFileUnreadable');
    expect(cut.message).toContain('/inbox/orders.csv line 3:');
    expect(cut.counts).toMatchObject({ removed: 0, delivered: 0 });
    expect(readFileSync(join(server.root, 'outbox', 'orders.csv'), 'utf8')).toBe(before);
  });

  it('newest of a glob: the file dropped last is the model', async () => {
    server.writeFile('inbox/daily-1.csv', 'id,v\n1,a\n2,b\n');
    server.writeFile('inbox/daily-2.csv', 'id,v\n1,a\n');
    utimesSync(join(server.root, 'inbox', 'daily-1.csv'), 1_700_000_000, 1_700_000_000);
    utimesSync(join(server.root, 'inbox', 'daily-2.csv'), 1_700_000_500, 1_700_000_500);
    const result = await run({ name: 'newest', table: 'daily-*.csv', fileName: 'newest.csv' });
    expect(result.counts).toMatchObject({ added: 1, delivered: 1 });
  });

  it('a run that fails between upload and rename commits nothing; the next run delivers the same changes', async () => {
    server.writeFile('inbox/accounts.csv', 'id,name\n1,a\n2,b\n');
    server.mkdir('outbox/accounts.csv/blocked');
    const failed = await run({ name: 'crash', table: 'accounts.csv', fileName: 'accounts.csv' });
    expect(failed.result).toBe('Failed');
    expect(failed.counts.delivered).toBe(0);
    expect(outbox().filter((n) => n.includes('accounts'))).toEqual(['accounts.csv']);

    rmSync(join(server.root, 'outbox', 'accounts.csv'), { recursive: true });
    const again = await run({ name: 'crash', table: 'accounts.csv', fileName: 'accounts.csv' });
    expect(again.result).toBe('Succeeded');
    expect(again.counts).toMatchObject({ added: 2, delivered: 2 });
    expect(readFileSync(join(server.root, 'outbox', 'accounts.csv'), 'utf8')).toBe(
      '_operation,_key,id,name\nupsert,1,1,a\nupsert,2,2,b\n',
    );
    expect(outbox().filter((n) => n.endsWith('.partial'))).toEqual([]);
  });

  it('a host key that is not the pinned one fails the run with SftpHostKeyMismatch', async () => {
    const result = await run({
      name: 'pin',
      table: 'accounts.csv',
      fileName: 'pin.csv',
      hostKey: server.strangerKey.fingerprintLine,
    });
    expect(result.result).toBe('Failed');
    expect(result.reason).toBe('SftpHostKeyMismatch');
    expect(result.message).toContain(server.strangerKey.fingerprint);
  });

  it('runs examples/sftp-to-sftp, pointed at the test server', async () => {
    const docs = parseAllDocuments(
      readFileSync(new URL('../../examples/sftp-to-sftp/resources.yaml', import.meta.url), 'utf8'),
    ).map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec: Record<string, any> }); // eslint-disable-line @typescript-eslint/no-explicit-any
    const of = (kind: string) => docs.find((d) => d.kind === kind)?.spec ?? {};
    const [source, model, destination, sync] = [
      of('Source'),
      of('Model'),
      of('Destination'),
      of('Sync'),
    ] as const;
    // The example's servers are the test server: its address, its host key, its folders, its key login.
    const here = { host: server.host, port: server.port, user: server.user };
    Object.assign(source.sftp, here, {
      hostKey: server.hostKeys.ed25519.fingerprintLine,
      path: 'exports/customers',
    });
    Object.assign(destination.sftp, here, {
      hostKey: server.hostKeys.ecdsa.publicKey,
      path: 'upload/audiences',
    });
    delete destination.sftp.password;
    destination.sftp.privateKey = { secretKeyRef: { name: 'partner-sftp', key: 'plain_key' } };
    server.mkdir('upload/audiences');
    const rows = (n: number) =>
      'customer_id;email;country;lifetime_value\n' +
      Array.from({ length: n }, (_, i) => `${i + 1};c${i + 1}@example.com;DE;${(i * 1.5).toFixed(2)}\n`).join(
        '',
      );
    server.writeFile('exports/customers/customers-20260101.csv.gz', gzipSync(rows(5)));
    server.writeFile('exports/customers/customers-20260102.csv.gz', gzipSync(rows(8)));
    utimesSync(
      join(server.root, 'exports/customers/customers-20260101.csv.gz'),
      1_700_000_000,
      1_700_000_000,
    );
    const summary = await executeRun(
      runPlan.parse({
        apiVersion: 'syncline.io/v1alpha1',
        kind: 'RunPlan',
        runId: 'example-run-1',
        namespace: 'test',
        fullResync: false,
        dryRun: false,
        sync: { name: 'partner-audience-to-marketing', spec: sync },
        model: { name: 'partner-customers', spec: model },
        source: { name: 'partner-exports', spec: source },
        destination: { name: 'marketing-dropbox', spec: destination },
        diffStore: { url: pathToFileURL(join(dir, 'state', 'example')).href },
        runner: { tmpDir: join(dir, 'tmp') },
      }),
      {
        secrets: secretResolver(
          {},
          {
            'partner-sftp': {
              id_ed25519: server.encryptedClientKey.privateKey,
              passphrase: server.encryptedClientKey.passphrase,
              plain_key: server.clientKey.privateKey,
            },
          },
        ),
        log: silentLogger(),
        signal: new AbortController().signal,
        backoff: { baseMs: 5, capMs: 50 },
      },
    );
    expect(summary.result).toBe('Succeeded');
    expect(summary.counts.delivered).toBe(8);
    const file = readFileSync(join(server.root, 'upload/audiences/partner-audience.csv'), 'utf8').split('\n');
    expect(file[0]).toBe('_operation,_key,id,email,country,ltv');
    expect(file.filter((l) => l !== '')).toHaveLength(9);
  });

  it('a Parquet file on the server arrives in a PostgreSQL table value for value', async () => {
    const pg: PostgresServer = await startPostgres();
    try {
      const url = await pg.createDatabase('sftp_dest');
      const { duck, close } = await openDuck();
      const local = join(dir, 'everything.parquet');
      await duck.run(
        `COPY (SELECT * FROM (VALUES
           (1, 12345678901234567890.1234567891::DECIMAL(38,10), 9007199254740993::BIGINT,
            TIMESTAMP '2024-03-10 02:30:00.123456', TIMESTAMPTZ '2024-06-01 12:00:00.654321+00',
            '{"n": "12345678901234567890", "nested": {"a": [1, 2]}}'::JSON, '顧客 😀 "quoted", comma' || chr(10) || 'new line'),
           (2, -0.0000000001, -9007199254740993, TIMESTAMP '1970-01-01 00:00:00', TIMESTAMPTZ '2000-01-01 00:00:00+00', '[]'::JSON, ''),
           (3, NULL, NULL, NULL, NULL, NULL, NULL)) t(id, amount, big, local_ts, instant, doc, name))
         TO '${local}' (FORMAT parquet)`,
      );
      close();
      server.writeFile('inbox/everything.parquet', readFileSync(local));
      const summary = await executeRun(
        runPlan.parse({
          apiVersion: 'syncline.io/v1alpha1',
          kind: 'RunPlan',
          runId: 'parquet-to-pg',
          namespace: 'test',
          sync: {
            name: 'parquet-to-pg',
            spec: {
              modelRef: { name: 'm' },
              destinationRef: { name: 'd' },
              mode: 'all',
              target: { table: 'everything' },
            },
          },
          model: {
            name: 'm',
            spec: { sourceRef: { name: 's' }, table: 'everything.parquet', primaryKey: 'id' },
          },
          source: { name: 's', spec: { type: 'sftp', sftp: { ...connection(), path: 'inbox' } } },
          destination: {
            name: 'd',
            spec: {
              type: 'postgres',
              postgres: {
                host: pg.host,
                port: pg.port,
                database: 'sftp_dest',
                user: pg.user,
                password: { secretKeyRef: { name: 'pg', key: 'password' } },
                tls: { mode: 'disable' },
              },
            },
          },
          diffStore: { url: pathToFileURL(join(dir, 'state', 'parquet-to-pg')).href },
          runner: { tmpDir: join(dir, 'tmp') },
        }),
        {
          secrets: secretResolver(
            {},
            { sftp: { id_ed25519: server.clientKey.privateKey }, pg: { password: pg.password } },
          ),
          log: silentLogger(),
          signal: new AbortController().signal,
          backoff: { baseMs: 5, capMs: 50 },
        },
      );
      expect(summary.result, summary.message).toBe('Succeeded');
      const rows = await sql<Record<string, string | null>>(
        url,
        `SELECT id::int AS id, amount::text AS amount, big::text AS big,
                to_char(local_ts, 'YYYY-MM-DD HH24:MI:SS.US') AS local,
                to_char(extract(epoch FROM instant), 'FM9999999999.000000') AS epoch, doc::text AS doc, name
         FROM everything ORDER BY id`,
      );
      expect(rows.map((r) => ({ ...r, doc: r.doc === null ? null : JSON.parse(r.doc ?? '') }))).toEqual([
        {
          id: 1,
          amount: '12345678901234567890.1234567891',
          big: '9007199254740993',
          local: '2024-03-10 02:30:00.123456',
          epoch: '1717243200.654321',
          doc: { n: '12345678901234567890', nested: { a: [1, 2] } },
          name: '顧客 😀 "quoted", comma\nnew line',
        },
        {
          id: 2,
          amount: '-0.0000000001',
          big: '-9007199254740993',
          local: '1970-01-01 00:00:00.000000',
          epoch: '946684800.000000',
          doc: [],
          name: '',
        },
        { id: 3, amount: null, big: null, local: null, epoch: null, doc: null, name: null },
      ]);
    } finally {
      await pg.stop();
    }
  });
});
