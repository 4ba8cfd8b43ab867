// The `syncline` command as a user runs it: a child process on the YAML of a folder.
import { spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  INVALID_CASES,
  OPERATOR_INVALID_SYNCS,
  VALID_SPECS,
  caseObject,
  objectFor,
} from '../fixtures/invalid-resources.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, pgSettings, sql, tempState } from './helpers.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(REPO, 'bin', 'syncline.mjs');
const work = mkdtempSync(join(tmpdir(), 'syncline-cli-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

function syncline(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: work,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function copyQuickstart(name: string): string {
  const dir = join(work, name);
  cpSync(join(REPO, 'examples', 'quickstart'), dir, {
    recursive: true,
    filter: (src) => !src.includes(`${join('quickstart', 'out')}`),
  });
  rmSync(join(dir, 'out'), { recursive: true, force: true });
  return dir;
}

function outputRecords(dir: string): Record<string, unknown>[][] {
  const folder = join(dir, 'out', 'default', 'customers-to-crm');
  return readdirSync(folder)
    .sort()
    .map((f) =>
      readFileSync(join(folder, f), 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    );
}

describe('syncline run on the quickstart', () => {
  it('delivers every row once, then only the rows edited in the CSV', async () => {
    const dir = copyQuickstart('qs');
    const state = join(dir, 'state');
    const first = await syncline(['run', '-f', dir, '--state-dir', state, '--output', 'json']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const summary = JSON.parse(first.stdout.trim()) as { result: string; counts: Record<string, number> };
    expect(summary.result).toBe('Succeeded');
    expect(summary.counts).toMatchObject({ queried: 40, added: 40, delivered: 40 });

    const csv = readFileSync(join(dir, 'customers.csv'), 'utf8').split('\n');
    csv[3] = csv[3]!.replace(/,(free|pro|team|enterprise),/, ',enterprise-plus,'); // id 3: a mapped column
    csv[10] = csv[10]!.replace(/^10,[^,]+,/, '10,Renamed,'); // id 10: read by the full_name template
    csv[12] = csv[12]!.replace(/,[0-9.]+,(2024)/, ',1.00,$1'); // id 12: lifetime_value is not mapped
    writeFileSync(join(dir, 'customers.csv'), csv.join('\n'));

    const second = await syncline(['run', '-f', dir, '--state-dir', state, '--output', 'json']);
    expect(second.code).toBe(0);
    const again = JSON.parse(second.stdout.trim()) as { counts: Record<string, number> };
    expect(again.counts).toMatchObject({
      queried: 40,
      added: 0,
      changed: 2,
      removed: 0,
      delivered: 2,
      failed: 0,
    });
    const files = outputRecords(dir);
    expect(files).toHaveLength(2);
    expect(files[1]!.map((r) => r['_key']).sort()).toEqual(['10', '3']);
    expect(files[1]!.find((r) => r['_key'] === '3')?.['plan']).toBe('enterprise-plus');
    expect(String(files[1]!.find((r) => r['_key'] === '10')?.['full_name'])).toMatch(/^Renamed /);
    expect(files[0]![0]).toMatchObject({
      address: { country: expect.any(String) },
      source: 'syncline-quickstart',
    });
  });

  it('syncline plan shows counts and sample rows and delivers nothing', async () => {
    const dir = copyQuickstart('qs-plan');
    const result = await syncline(['plan', '-f', dir, '--state-dir', join(dir, 'state')]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('operations: upsert 40');
    expect(result.stdout).toContain('sample upsert:');
    expect(result.stdout).toContain('"full_name"');
    expect(() => readdirSync(join(dir, 'out'))).toThrow();
  });
});

describe('syncline run with bad resources', () => {
  it('reports invalid YAML with file and line', async () => {
    const dir = copyQuickstart('bad-yaml');
    writeFileSync(
      join(dir, 'broken.yaml'),
      'apiVersion: syncline.io/v1alpha1\nkind: Sync\nmetadata:\n  name: [unclosed\n',
    );
    const result = await syncline(['run', '-f', dir, '--state-dir', join(dir, 'state')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/broken\.yaml:\d+:\d+: invalid YAML/);
    expect(result.stderr).toContain('[InvalidResources]');
  });

  it('names file, resource and field of a resource that breaks a schema rule or a reference', async () => {
    const dir = copyQuickstart('bad-fields');
    const sync = readFileSync(join(dir, 'sync.yaml'), 'utf8');
    writeFileSync(
      join(dir, 'sync.yaml'),
      sync.replace('mode: upsert', 'mode: sideways').replace('name: local-crm', 'name: nowhere'),
    );
    writeFileSync(
      join(dir, 'more.yaml'),
      [
        'apiVersion: syncline.io/v1alpha1',
        'kind: Sync',
        'metadata: { name: twice }',
        'spec:',
        '  modelRef: { name: customers }',
        '  destinationRef: { name: local-crm }',
        '  mode: upsert',
        '  mappings: [{ to: a, from: id, template: "{{ row.id }}" }]',
      ].join('\n'),
    );
    const result = await syncline(['run', '-f', dir, '--state-dir', join(dir, 'state')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/sync\.yaml: Sync "customers-to-crm": spec\.mode: /);
    expect(result.stderr).toMatch(
      /more\.yaml: Sync "twice": spec\.mappings\[0\]: each mapping needs exactly one of from/,
    );
  });

  it('exits 1 when a Sync fails, and says why', async () => {
    const dir = copyQuickstart('dup-keys');
    writeFileSync(
      join(dir, 'customers.csv'),
      `${readFileSync(join(dir, 'customers.csv'), 'utf8')}${readFileSync(join(dir, 'customers.csv'), 'utf8').split('\n')[5]}\n`,
    );
    const result = await syncline(['run', '-f', dir, '--state-dir', join(dir, 'state')]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('Failed (DuplicatePrimaryKey)');
    expect(result.stdout).toContain('first 1: 5');
  });
});

describe('syncline run with PostgreSQL and a secrets file, then syncline debug', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
    const src = await server.createDatabase('src');
    await server.createDatabase('dst');
    await sql(src, 'CREATE TABLE accounts (id int PRIMARY KEY, name text)');
    await sql(src, "INSERT INTO accounts SELECT g, 'account ' || g FROM generate_series(1, 50) g");
  });
  afterAll(async () => server?.stop());

  it('resolves secretKeyRefs from --secrets-file, and debug finds the requests of one key', async () => {
    const dir = join(work, 'pg');
    const db = (name: string) =>
      `host: 127.0.0.1\n    port: ${server.port}\n    database: ${name}\n    user: postgres\n    tls: { mode: disable }\n    password: { secretKeyRef: { name: pg-creds, key: password } }`;
    const yaml = [
      `apiVersion: syncline.io/v1alpha1\nkind: Source\nmetadata: { name: warehouse }\nspec:\n  type: postgres\n  postgres:\n    ${db('src')}`,
      `apiVersion: syncline.io/v1alpha1\nkind: Model\nmetadata: { name: accounts }\nspec:\n  sourceRef: { name: warehouse }\n  table: accounts\n  primaryKey: id`,
      `apiVersion: syncline.io/v1alpha1\nkind: Destination\nmetadata: { name: app-db }\nspec:\n  type: postgres\n  postgres:\n    ${db('dst')}`,
      `apiVersion: syncline.io/v1alpha1\nkind: Sync\nmetadata: { name: accounts-to-app }\nspec:\n  modelRef: { name: accounts }\n  destinationRef: { name: app-db }\n  mode: upsert\n  target: { table: accounts }\n  delivery: { batchSize: 10 }`,
    ].join('\n---\n');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    writeFileSync(join(dir, 'resources.yaml'), yaml);
    const secretsFile = join(work, 'secrets.yaml');
    writeFileSync(secretsFile, `pg-creds:\n  password: ${server.password}\n`);
    const state = join(dir, 'state');

    const missing = await syncline(['run', '-f', dir, '--state-dir', state]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain('SYNCLINE_SECRET_PG_CREDS__PASSWORD');
    expect(missing.stdout).not.toContain(server.password);

    const ok = await syncline([
      'run',
      '-f',
      dir,
      '--state-dir',
      state,
      '--secrets-file',
      secretsFile,
      '--output',
      'json',
    ]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout.trim()).counts.delivered).toBe(50);

    const debug = await syncline([
      'debug',
      '--state-dir',
      state,
      'accounts-to-app',
      '--key',
      '23',
      '--output',
      'json',
    ]);
    expect(debug.code).toBe(0);
    const found = JSON.parse(debug.stdout) as {
      summary: { counts: { delivered: number } };
      requests: { keys: string[]; target: string }[];
    };
    expect(found.summary.counts.delivered).toBe(50);
    expect(found.requests.length).toBeGreaterThanOrEqual(1);
    expect(found.requests.every((r) => r.keys.includes('23'))).toBe(true);
    expect(found.requests[0]?.target).toContain('accounts');
    expect(debug.stdout).not.toContain(server.password);

    const text = await syncline(['debug', '--state-dir', state, 'accounts-to-app', '--key', '23']);
    expect(text.stdout).toContain('touching key 23');
  });

  it('names the secretKeyRef of an empty password, and keeps a secrets file value as written', async () => {
    const src = await server.createDatabase('digits');
    await sql(src, "CREATE ROLE digits LOGIN PASSWORD '007'");
    await sql(src, 'CREATE TABLE t (id int PRIMARY KEY, v text)');
    await sql(src, "INSERT INTO t VALUES (1, 'one'), (2, 'two')");
    await sql(src, 'GRANT SELECT ON t TO digits');
    const dir = join(work, 'pg-empty-password');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'resources.yaml'),
      [
        `apiVersion: syncline.io/v1alpha1\nkind: Source\nmetadata: { name: db }\nspec:\n  type: postgres\n  postgres:\n    host: 127.0.0.1\n    port: ${server.port}\n    database: digits\n    user: digits\n    tls: { mode: disable }\n    password: { secretKeyRef: { name: db-creds, key: password } }`,
        'apiVersion: syncline.io/v1alpha1\nkind: Model\nmetadata: { name: t }\nspec:\n  sourceRef: { name: db }\n  table: t\n  primaryKey: id',
        'apiVersion: syncline.io/v1alpha1\nkind: Destination\nmetadata: { name: out }\nspec:\n  type: files\n  files: { url: ./out }',
        'apiVersion: syncline.io/v1alpha1\nkind: Sync\nmetadata: { name: t-to-files }\nspec:\n  modelRef: { name: t }\n  destinationRef: { name: out }\n  mode: upsert',
      ].join('\n---\n'),
    );
    const state = join(dir, 'state');
    const secretsFile = join(work, 'empty-password-secrets.yaml');

    writeFileSync(secretsFile, 'db-creds:\n  password: ""\n');
    const fromFile = await syncline(['run', '-f', dir, '--state-dir', state, '--secrets-file', secretsFile]);
    expect(fromFile.code).toBe(1);
    expect(fromFile.stdout, fromFile.stderr).toContain('Failed (EmptySecret)');
    expect(fromFile.stdout).toContain(
      `Secret "db-creds" key "password" (a secretKeyRef) resolved to an empty value, from the secrets file ${secretsFile}`,
    );
    expect(fromFile.stdout).not.toContain('client password must be a string');

    const fromEnv = await syncline(['run', '-f', dir, '--state-dir', state], {
      SYNCLINE_SECRET_DB_CREDS__PASSWORD: '',
    });
    expect(fromEnv.code).toBe(1);
    expect(fromEnv.stdout).toContain('from the environment variable SYNCLINE_SECRET_DB_CREDS__PASSWORD');

    // YAML would read 007 as the number 7: a secrets file value is the text written.
    writeFileSync(secretsFile, 'db-creds:\n  password: 007\n');
    const ok = await syncline([
      'run',
      '-f',
      dir,
      '--state-dir',
      state,
      '--secrets-file',
      secretsFile,
      '-o',
      'json',
    ]);
    expect(ok.stdout).toContain('"result":"Succeeded"');
    expect(ok.code).toBe(0);
  });

  it('syncline job runs a plan from the environment and writes a compact summary to the termination log', async () => {
    const state = tempState();
    const plan = makePlan({
      server,
      sourceDb: 'src',
      query: 'SELECT id, name FROM accounts',
      destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
      sync: { mode: 'upsert', target: { table: 'accounts_job' } },
      stateUrl: state.url,
      name: 'job-sync',
    });
    const termination = join(work, 'termination-log');
    const env = {
      SYNCLINE_RUN_PLAN: JSON.stringify(plan),
      SYNCLINE_TERMINATION_LOG: termination,
      SYNCLINE_SECRET_PG__PASSWORD: server.password,
    };
    const result = await syncline(['job'], env);
    expect(result.code).toBe(0);
    const logs = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; level: string });
    expect(logs.some((l) => l.msg === 'run starting')).toBe(true);
    expect(result.stdout).not.toContain(server.password);
    const message = readFileSync(termination, 'utf8');
    expect(Buffer.byteLength(message)).toBeLessThanOrEqual(4096);
    expect(JSON.parse(message)).toMatchObject({
      result: 'Succeeded',
      runId: plan.runId,
      counts: { delivered: 50 },
    });

    const failed = await syncline(['job'], {
      ...env,
      SYNCLINE_RUN_PLAN: JSON.stringify({
        ...plan,
        runId: `${plan.runId}-b`,
        model: { ...plan.model, spec: { ...plan.model.spec, query: 'SELECT id, name FROM nowhere' } },
      }),
    });
    expect(failed.code).toBe(1);
    expect(JSON.parse(readFileSync(termination, 'utf8'))).toMatchObject({ result: 'Failed' });
    state.remove();
  });

  it('syncline check reports whether a Source can be reached', async () => {
    const termination = join(work, 'check-log');
    const checkPlan = () => ({
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'CheckPlan',
      namespace: 'test',
      target: {
        kind: 'Source',
        name: 'warehouse',
        spec: { type: 'postgres', postgres: pgSettings(server, 'src') },
      },
    });
    const ok = await syncline(['check'], {
      SYNCLINE_CHECK_PLAN: JSON.stringify(checkPlan()),
      SYNCLINE_TERMINATION_LOG: termination,
      SYNCLINE_SECRET_PG__PASSWORD: server.password,
    });
    expect(ok.code).toBe(0);
    expect(JSON.parse(readFileSync(termination, 'utf8'))).toMatchObject({ ok: true });
    const bad = await syncline(['check'], {
      SYNCLINE_CHECK_PLAN: JSON.stringify(checkPlan()),
      SYNCLINE_TERMINATION_LOG: termination,
      SYNCLINE_SECRET_PG__PASSWORD: 'wrong-password',
    });
    expect(bad.code).toBe(1);
    const result = JSON.parse(readFileSync(termination, 'utf8')) as {
      ok: boolean;
      reason: string;
      message: string;
    };
    expect(result.ok).toBe(false);
    expect(result.reason).toMatch(/^[A-Z][A-Za-z]+$/);
    expect(result.message).not.toContain('wrong-password');
  });
});

/** Another files Destination and a Sync of the quickstart's Model into it, as more.yaml. */
function addSync(dir: string, name: string, extra: Record<string, unknown> = {}): void {
  const docs = [
    {
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'Destination',
      metadata: { name: `${name}-files` },
      spec: { type: 'files', files: { url: `./out-${name}`, format: 'jsonl' } },
    },
    {
      apiVersion: 'syncline.io/v1alpha1',
      kind: 'Sync',
      metadata: { name },
      spec: {
        modelRef: { name: 'customers' },
        destinationRef: { name: `${name}-files` },
        mode: 'upsert',
        ...extra,
      },
    },
  ];
  appendFileSync(join(dir, 'more.yaml'), docs.map((d) => `---\n${stringify(d)}`).join(''));
}

describe('syncline run checks resources as the API server and the operator do', () => {
  it('rejects every case of the shared invalid-resource table, naming file, resource and problem', async () => {
    const dir = join(work, 'invalid-table');
    mkdirSync(dir, { recursive: true });
    const valid = [
      objectFor('Source', 'db', VALID_SPECS.Source),
      objectFor('Model', 'customers', VALID_SPECS.Model),
      objectFor('Destination', 'crm', VALID_SPECS.Destination),
    ];
    const invalid = INVALID_CASES.map((c, i) => ({ c, obj: caseObject(c, `bad-${i}`) }));
    const stalled = OPERATOR_INVALID_SYNCS.map((c, i) => ({
      c,
      obj: objectFor('Sync', `stalled-${i}`, c.spec(VALID_SPECS.Sync)),
    }));
    const objects = [...valid, ...invalid.map((x) => x.obj), ...stalled.map((x) => x.obj)];
    writeFileSync(join(dir, 'resources.yaml'), objects.map((o) => `---\n${stringify(o)}`).join(''));

    const result = await syncline(['run', '-f', dir, '--state-dir', join(dir, 'state')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('[InvalidResources]');
    const lines = result.stderr.split('\n');
    for (const { c, obj } of invalid) {
      const named = `resources.yaml: ${c.kind} "${(obj['metadata'] as { name: string }).name}": `;
      const line = lines.find((l) => l.includes(named) && (!c.rule || l.includes(c.api)));
      expect(line, `${c.name}: ${named}${c.rule ? c.api : ''}`).toBeDefined();
    }
    for (const [i, { c }] of stalled.entries()) {
      const line = lines.find((l) => l.includes(`resources.yaml: Sync "stalled-${i}": `));
      expect(line, c.name).toContain(c.message);
      expect(line, c.name).toContain(`(${c.reason})`);
    }
    // What the acceptance run found dropped in silence: the typo, the field and its closest valid name.
    expect(result.stderr).toContain('unknown field "spec.deleteBehaviour": did you mean "deleteBehavior"?');
  });

  it('skips a paused Sync with a notice and runs the others', async () => {
    const dir = copyQuickstart('paused');
    addSync(dir, 'paused-sync', { paused: true });
    addSync(dir, 'running-sync');
    const result = await syncline(['run', '-f', dir, '--state-dir', join(dir, 'state'), '-o', 'json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { sync?: string; result: string; reason?: string; message?: string });
    expect(lines).toHaveLength(3);
    expect(lines.find((l) => l.sync === 'default/paused-sync')).toMatchObject({
      result: 'Skipped',
      reason: 'SyncPaused',
      message: expect.stringContaining('spec.paused is true'),
    });
    expect(lines.filter((l) => l.result === 'Succeeded')).toHaveLength(2);
    expect(existsSync(join(dir, 'out-paused-sync'))).toBe(false);
    expect(readdirSync(join(dir, 'out-running-sync', 'default', 'running-sync'))).toHaveLength(1);
  });

  it('an empty folder, or one without a Sync, is an error', async () => {
    const empty = join(work, 'empty-folder');
    mkdirSync(empty, { recursive: true });
    const none = await syncline(['run', '-f', empty]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('[ResourcesNotFound]');

    const noSync = copyQuickstart('no-sync');
    rmSync(join(noSync, 'sync.yaml'));
    writeFileSync(join(noSync, 'blank.yaml'), '# nothing yet\n');
    const result = await syncline(['plan', '-f', noSync, '--state-dir', join(noSync, 'state')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /no Sync in .*no-sync \(4 YAML file\(s\), 3 other Syncline resource\(s\)\)/,
    );
    expect(result.stderr).toContain('[NoSyncs]');
  });

  it('refuses a mapping to a field the files destination writes itself (_operation, _key)', async () => {
    const dir = copyQuickstart('reserved');
    const sync = readFileSync(join(dir, 'sync.yaml'), 'utf8');
    writeFileSync(
      join(dir, 'sync.yaml'),
      sync.replace('{ to: plan, from: plan }', '{ to: _operation, from: plan }'),
    );
    const result = await syncline(['run', '-f', dir, '--state-dir', join(dir, 'state')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('sync.yaml: Sync "customers-to-crm": spec.mappings write "_operation"');
    expect(result.stderr).toContain('files destinations write _operation (the row operation)');
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('refuses, before any Sync runs, an upsert to HubSpot that names no target.matchField', async () => {
    const dir = copyQuickstart('no-match-field');
    const docs = [
      {
        apiVersion: 'syncline.io/v1alpha1',
        kind: 'Destination',
        metadata: { name: 'hubspot' },
        spec: { type: 'hubspot', hubspot: { privateAppToken: { secretKeyRef: { name: 'hs', key: 't' } } } },
      },
      {
        apiVersion: 'syncline.io/v1alpha1',
        kind: 'Sync',
        metadata: { name: 'to-hubspot' },
        spec: {
          modelRef: { name: 'customers' },
          destinationRef: { name: 'hubspot' },
          mode: 'upsert',
          target: { object: 'contacts' },
          mappings: [{ to: 'email', from: 'email' }],
        },
      },
    ];
    writeFileSync(join(dir, 'more.yaml'), docs.map((d) => `---\n${stringify(d)}`).join(''));
    const result = await syncline(['run', '-f', dir, '--state-dir', join(dir, 'state')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('[InvalidResources]');
    expect(result.stderr).toContain(
      'more.yaml: Sync "to-hubspot": mode "upsert" matches rows to records of the hubspot destination by ' +
        'spec.target.matchField, which is not set: set it to a property with unique values',
    );
    expect(result.stderr).toContain('(MatchFieldRequired)');
    // The quickstart's own Sync did not run either.
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('names the file of a YAML alias bomb, and stops expanding it', async () => {
    const dir = copyQuickstart('alias-bomb');
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) {
      const [prev, next] = [String.fromCharCode(96 + i), String.fromCharCode(97 + i)];
      levels.push(`${next}: &${next} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    writeFileSync(join(dir, 'laughs.yaml'), `${levels.join('\n')}\n`);
    const started = Date.now();
    const result = await syncline(['run', '-f', dir, '--state-dir', join(dir, 'state')]);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/laughs\.yaml \(document 1\): YAML aliases expand to more than 100 nodes/);
  });

  it('says which values --memory-limit and --log-level take', async () => {
    const dir = copyQuickstart('bad-flags');
    const memory = await syncline(['run', '-f', dir, '--memory-limit', '80%']);
    expect(memory.code).toBe(1);
    expect(memory.stderr).toContain("option '--memory-limit <size>' argument '80%' is invalid");
    expect(memory.stderr).toContain('KB, MB, GB, TB');
    expect(memory.stderr).not.toContain('InternalError');
    const level = await syncline(['run', '-f', dir, '--log-level', 'loud']);
    expect(level.code).toBe(1);
    expect(level.stderr).toContain('Allowed choices are fatal, error, warn, info, debug, trace, silent');
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });
});

describe('syncline run when its surroundings fail', () => {
  it('keeps running the remaining Syncs when the reader of stdout goes away (run | head -1)', async () => {
    const dir = copyQuickstart('epipe');
    addSync(dir, 'second');
    addSync(dir, 'third');
    const state = join(dir, 'state');
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, 'run', '-f', dir, '--state-dir', state], {
        cwd: work,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout.once('data', () => child.stdout.destroy()); // what head -1 does after its line
      child.once('error', reject);
      child.once('exit', (exitCode) => resolve({ code: exitCode, stderr: err }));
    });
    expect(stderr).not.toContain('Unhandled');
    expect(stderr).toContain('stdout was closed by its reader (EPIPE)');
    expect(code).toBe(0);
    for (const sync of ['customers-to-crm', 'second', 'third']) {
      expect(
        readdirSync(join(state, 'default', sync, 'runs')).filter((f) => f.endsWith('.json')),
      ).toHaveLength(1);
    }
    expect(readdirSync(join(dir, 'out-third', 'default', 'third'))).toHaveLength(1);
  });

  it('reports a read-only state folder as EROFS, with the path and the fix', async () => {
    const dir = copyQuickstart('read-only');
    const ro = join(work, 'read-only-mount');
    mkdirSync(ro, { recursive: true });
    // A read-only file system of its own, in a private mount namespace that ends with the process.
    const script = `mount -t tmpfs -o ro tmpfs "$0" && exec "${process.execPath}" "${BIN}" run -f "${dir}" --state-dir "$0/state"`;
    const result = spawnSync('unshare', ['--mount', 'sh', '-c', script, ro], { cwd: work, encoding: 'utf8' });
    expect(result.error).toBeUndefined();
    expect(result.status).toBe(1);
    expect(result.stdout).toContain('EROFS');
    expect(result.stdout).toContain(`${ro}/state`);
    expect(result.stdout).toContain('the file system is read-only');
    expect(result.stdout).toContain('--state-dir');
    expect(result.stdout).not.toContain('ENOENT');
  });

  it('removes the temp folders of killed runs at start, and only those', async () => {
    const tmp = join(work, 'private-tmp');
    mkdirSync(tmp, { recursive: true });
    const dir = copyQuickstart('killed');
    const state = join(dir, 'state');
    // A run killed while its temp folder (model rows, spill files) exists.
    const child = spawn(process.execPath, [BIN, 'run', '-f', dir, '--state-dir', state], {
      cwd: work,
      env: { ...process.env, TMPDIR: tmp },
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const owned = () =>
      readdirSync(tmp).find((f) => f.startsWith('syncline-run-') && existsSync(join(tmp, f, 'owner.json')));
    const deadline = Date.now() + 60_000;
    while (!owned() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const killed = owned();
    expect(killed, 'the run never made its temp folder').toBeDefined();
    child.kill('SIGKILL');
    await exited;
    expect(existsSync(join(tmp, killed!))).toBe(true);
    // Folders a live process (this one), another machine, or a run just starting may still use.
    const keep = {
      live: { pid: process.pid, host: hostname() },
      elsewhere: { pid: 999_999_999, host: `not-${hostname()}` },
    };
    for (const [name, owner] of Object.entries(keep)) {
      mkdirSync(join(tmp, `syncline-run-${name}`));
      writeFileSync(join(tmp, `syncline-run-${name}`, 'owner.json'), JSON.stringify(owner));
    }
    mkdirSync(join(tmp, 'syncline-run-starting'));

    const result = await syncline(['run', '-f', dir, '--state-dir', state], { TMPDIR: tmp });
    expect(result.code).toBe(0);
    expect(readdirSync(tmp).sort()).toEqual([
      'syncline-run-elsewhere',
      'syncline-run-live',
      'syncline-run-starting',
    ]);
  });
});

describe('syncline debug on a damaged diff store', () => {
  let dir: string;
  let runs: string;
  let runId: string;
  beforeAll(async () => {
    dir = copyQuickstart('debug-damaged');
    const result = await syncline(['run', '-f', dir, '--state-dir', join(dir, 'state')]);
    expect(result.code).toBe(0);
    runs = join(dir, 'state', 'default', 'customers-to-crm', 'runs');
    runId = readdirSync(runs)
      .find((f) => f.endsWith('.json'))!
      .replace(/\.json$/, '');
  });

  it('names a truncated request log as corrupt, after the requests it could read', async () => {
    const log = join(runs, `${runId}.requests.jsonl.gz`);
    const whole = readFileSync(log);
    writeFileSync(log, whole.subarray(0, Math.floor(whole.length / 2)));
    const result = await syncline(['debug', '--state-dir', join(dir, 'state'), 'customers-to-crm']);
    writeFileSync(log, whole);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`run ${runId}`);
    expect(result.stderr).toContain(`the request log file://${runs}/${runId}.requests.jsonl.gz is corrupt`);
    expect(result.stderr).toContain('[DiffStoreCorrupt]');
    expect(result.stderr).not.toContain('TypeError');
  });

  it('names a run summary of the wrong shape as corrupt', async () => {
    const file = join(runs, `${runId}.json`);
    const whole = readFileSync(file);
    writeFileSync(file, JSON.stringify({ apiVersion: 'syncline.io/v1alpha1', kind: 'RunSummary', runId }));
    const result = await syncline([
      'debug',
      '--state-dir',
      join(dir, 'state'),
      'customers-to-crm',
      '--key',
      '3',
    ]);
    writeFileSync(file, whole);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`the run summary file://${runs}/${runId}.json is corrupt`);
    expect(result.stderr).toContain('[DiffStoreCorrupt]');
    expect(result.stderr).not.toContain('TypeError');
  });
});
