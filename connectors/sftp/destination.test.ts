// The sftp Destination against a real OpenSSH server: a file appears only complete (renamed from its
// .partial), a fixed name is replaced, a missing folder is refused, and a failure between upload and
// rename (or a crash that left a .partial behind) never leaves a file that looks complete.
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationSpec } from '../../crds/index.ts';
import { change, deliveryContext, synclineFailure, testContext } from '../shared/test-context.ts';
import { startSshd, type SshServer } from '../../test/stack/sshd.ts';
import { partialName, renderFileName, sftpDestination } from './destination.ts';

let server: SshServer;

beforeAll(async () => {
  server = await startSshd();
  server.mkdir('outbox');
}, 60_000);
afterAll(async () => server?.stop());

function destination(overrides: Partial<NonNullable<DestinationSpec['sftp']>> = {}): DestinationSpec {
  return {
    type: 'sftp',
    sftp: {
      host: server.host,
      port: server.port,
      user: server.user,
      privateKey: { secretKeyRef: { name: 'sftp', key: 'key' } },
      hostKey: server.hostKeys.ed25519.fingerprintLine,
      path: 'outbox',
      fileName: 'customers-{{ runId }}.csv',
      format: 'csv',
      timeoutSeconds: 30,
      ...overrides,
    },
  };
}

const COLUMNS = [
  { name: 'id', type: 'BIGINT' },
  { name: 'name', type: 'VARCHAR' },
];

async function deliver(spec: DestinationSpec, runId: string, rows: [number, string][]) {
  const base = testContext({ sftp: { key: server.clientKey.privateKey } });
  const { ctx, requests } = deliveryContext(base, {
    destination: spec,
    sync: { mode: 'all' },
    columns: COLUMNS,
    primaryKey: 'id',
    runId,
  });
  try {
    const writer = await sftpDestination.open(ctx);
    const results = await writer.write(rows.map(([id, name]) => change('upsert', id, { id, name })));
    expect(results.every((r) => r.ok)).toBe(true);
    await writer.close();
    return requests;
  } finally {
    base.cleanup();
  }
}

const outbox = () => readdirSync(join(server.root, 'outbox')).sort();
const read = (name: string) => readFileSync(join(server.root, 'outbox', name), 'utf8');

describe('sftp destination', () => {
  it('renders file names from the run', () => {
    const values = {
      runId: 'run 7/x',
      started: new Date('2026-03-04T05:06:07Z'),
      namespace: 'ns',
      sync: 's',
    };
    expect(renderFileName('{{ sync }}-{{runId}}-{{ date }}-{{ time }}.csv', values)).toBe(
      's-run_7_x-20260304-20260304T050607Z.csv',
    );
  });

  it('drops one complete file per run, renamed from its .partial, and names it in the debugger', async () => {
    const requests = await deliver(destination(), 'run-1', [
      [1, 'Ada, Countess'],
      [2, 'say "hi"'],
    ]);
    expect(outbox()).toEqual(['customers-run-1.csv']);
    expect(read('customers-run-1.csv')).toBe(
      '_operation,_key,id,name\nupsert,1,1,"Ada, Countess"\nupsert,2,2,"say ""hi"""\n',
    );
    expect(requests.at(-1)).toMatchObject({ operation: 'publish', status: 'renamed into place' });
    expect(requests.at(-1)?.target).toContain(`/outbox/customers-run-1.csv`);
    expect(JSON.stringify(requests)).not.toContain('/tmp/');
  });

  it('replaces a fixed name in place, run after run', async () => {
    const spec = destination({ fileName: 'latest.jsonl', format: 'jsonl' });
    await deliver(spec, 'run-a', [[1, 'first']]);
    await deliver(spec, 'run-b', [
      [1, 'second'],
      [2, 'also'],
    ]);
    expect(outbox()).toContain('latest.jsonl');
    expect(outbox().filter((n) => n.endsWith('.partial'))).toEqual([]);
    expect(
      read('latest.jsonl')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual([
      { _operation: 'upsert', _key: '1', id: 1, name: 'second' },
      { _operation: 'upsert', _key: '2', id: 2, name: 'also' },
    ]);
  });

  it('refuses a folder that does not exist when the run opens it, and check says the same', async () => {
    const base = testContext({ sftp: { key: server.clientKey.privateKey } });
    const spec = destination({ path: 'no-such-outbox' });
    const checked = await synclineFailure(sftpDestination.check(spec, base));
    expect(checked.reason).toBe('PathNotFound');
    expect(checked.message).toContain('"no-such-outbox" (sftp.path) does not exist');
    const { ctx } = deliveryContext(base, {
      destination: spec,
      sync: {},
      columns: COLUMNS,
      primaryKey: 'id',
    });
    const opened = await synclineFailure(sftpDestination.open(ctx));
    expect(opened.reason).toBe('PathNotFound');
    base.cleanup();
  });

  it('check refuses a folder the user cannot write, with PathNotWritable, and leaves nothing behind', async () => {
    server.mkdir('readonly');
    chmodSync(join(server.root, 'readonly'), 0o555);
    const base = testContext({ sftp: { key: server.clientKey.privateKey } });
    const error = await synclineFailure(sftpDestination.check(destination({ path: 'readonly' }), base));
    base.cleanup();
    expect(error.reason).toBe('PathNotWritable');
    expect(error.message).toContain('writing to the folder "readonly"');
    expect(readdirSync(join(server.root, 'readonly'))).toEqual([]);
    const ok = testContext({ sftp: { key: server.clientKey.privateKey } });
    await expect(sftpDestination.check(destination(), ok)).resolves.toBeUndefined();
    ok.cleanup();
    expect(outbox().filter((n) => n.startsWith('.syncline-check'))).toEqual([]);
  });

  it('a failure between upload and rename leaves no complete file; the next run delivers', async () => {
    // The target name taken by a folder that is not empty: the upload succeeds, the rename cannot.
    server.mkdir('outbox/blocked.csv/inside');
    const spec = destination({ fileName: 'blocked.csv' });
    const failed = await synclineFailure(deliver(spec, 'run-x', [[1, 'a']]));
    expect(failed.reason).toBe('DestinationWriteFailed');
    expect(failed.message).toContain('renaming');
    expect(outbox().filter((n) => n.includes('blocked'))).toEqual(['blocked.csv']);
    expect(existsSync(join(server.root, 'outbox', partialName('blocked.csv')))).toBe(false);

    rmSync(join(server.root, 'outbox', 'blocked.csv'), { recursive: true });
    await deliver(spec, 'run-x', [[1, 'a']]);
    expect(read('blocked.csv')).toBe('_operation,_key,id,name\nupsert,1,1,a\n');
  });

  it('a .partial a crashed run left behind is hidden from readers and overwritten, never appended to', async () => {
    // What a runner killed mid-upload leaves: half of the file, under the temporary name.
    server.writeFile(
      `outbox/${partialName('customers-run-9.csv')}`,
      '_operation,_key,id,name\nupsert,1,1,cut',
    );
    expect(outbox().filter((n) => n.startsWith('customers-run-9'))).toEqual([]);
    await deliver(destination(), 'run-9', [
      [1, 'whole'],
      [2, 'rows'],
    ]);
    expect(read('customers-run-9.csv')).toBe('_operation,_key,id,name\nupsert,1,1,whole\nupsert,2,2,rows\n');
    expect(outbox().filter((n) => n.includes('run-9'))).toEqual(['customers-run-9.csv']);
  });
});
