// The `syncline` command as a user runs it: a child process on the YAML of a folder.
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
