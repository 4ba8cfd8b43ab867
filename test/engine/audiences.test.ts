// A segment Model through the real engine, PostgreSQL to PostgreSQL: its compiled SQL is the model, its
// split column is synced like any column, and when the definition changes the members that leave are
// deleted by a Sync with deleteBehavior delete (and come back when they meet it again).
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../core/logger.ts';
import { secretResolver } from '../../core/secrets.ts';
import { buildRunPlan } from '../../runner/cli/plans.ts';
import { loadResources } from '../../runner/cli/resources.ts';
import { executeRun } from '../../runner/run.ts';
import { modelSpec, type ModelSpec } from '../../crds/index.ts';
import { segmentQueryModel, splitGroupOf } from '../../core/segments/index.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { TABLES, baseModels, seedSql } from '../warehouses/audiences-data.ts';
import { makePlan, pgSettings, run, sql, tempState } from './helpers.ts';

let server: PostgresServer;
let srcUrl: string;
let dstUrl: string;
const state = tempState();
const source = { type: 'postgres' as const };

beforeAll(async () => {
  server = await startPostgres();
  srcUrl = await server.createDatabase('src');
  dstUrl = await server.createDatabase('dst');
  for (const table of TABLES)
    for (const statement of seedSql('postgres', table)) await sql(srcUrl, statement);
});
afterAll(async () => {
  await server?.stop();
  state.remove();
});

const SPLITS = {
  splits: [
    { name: 'treatment', percent: 50 },
    { name: 'holdout', percent: 50 },
  ],
  splitSalt: 'q3',
};

function audience(where: Record<string, unknown>): ModelSpec {
  return modelSpec.parse({
    sourceRef: { name: 'warehouse' },
    segment: { parent: { name: 'people' }, where, ...SPLITS },
  });
}

async function sync(where: Record<string, unknown>) {
  const models = { ...baseModels((n) => n), audience: audience(where) };
  const { spec } = segmentQueryModel(
    'audience',
    models.audience,
    source,
    (n) => models[n as keyof typeof models],
  );
  const plan = makePlan({
    server,
    sourceDb: 'src',
    query: spec.query ?? '',
    destination: { type: 'postgres', postgres: { ...pgSettings(server, 'dst'), schema: 'public' } },
    sync: { mode: 'upsert', deleteBehavior: 'delete', target: { table: 'audience' } },
    stateUrl: state.url,
    name: 'audience-to-crm',
  });
  return run(plan, server);
}

const members = async () =>
  (
    await sql<{ id: number; split_group: string }>(
      dstUrl,
      'SELECT id::int AS id, split_group FROM audience ORDER BY id',
    )
  ).map((r) => [r.id, r.split_group]);
const group = (id: number) => splitGroupOf(SPLITS, String(id));

describe('a segment Model through the engine', () => {
  it('sends its members with their split group, and deletes the members that leave when the definition changes', async () => {
    const germany = { column: 'country', equals: 'DE' };
    const first = await sync(germany);
    expect(first.result, first.message).toBe('Succeeded');
    expect(await members()).toEqual([1, 2, 5].map((id) => [id, group(id)]));

    const again = await sync(germany);
    expect(again.counts).toMatchObject({ added: 0, changed: 0, removed: 0, delivered: 0 });

    const valuable = await sync({ and: [germany, { column: 'ltv', gte: 500 }] });
    expect(valuable.operations).toEqual({ delete: 1 });
    expect(await members()).toEqual([1, 5].map((id) => [id, group(id)]));

    await sql(srcUrl, 'UPDATE people SET ltv = 700 WHERE id = 2');
    const back = await sync({ and: [germany, { column: 'ltv', gte: 500 }] });
    expect(back.operations).toEqual({ upsert: 1 });
    expect(await members()).toEqual([1, 2, 5].map((id) => [id, group(id)]));
  });
});

describe('examples/audiences through the embedded CLI', () => {
  const folder = join(tempState().dir, 'audiences');
  cpSync(new URL('../../examples/audiences/', import.meta.url), folder, { recursive: true });
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  async function runExample() {
    const set = loadResources(folder);
    const plan = buildRunPlan(set, 'default/winback-campaign', { stateDir: join(folder, '.state') });
    return executeRun(plan, {
      secrets: secretResolver({}, set.secrets),
      log: silentLogger(),
      signal: new AbortController().signal,
    });
  }

  /** Every operation the files destination wrote, oldest first. */
  const written = () =>
    readdirSync(join(folder, 'out'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.jsonl'))
      .sort()
      .flatMap((f) =>
        readFileSync(join(folder, 'out', f), 'utf8')
          .trim()
          .split('\n'),
      )
      .map((line) => JSON.parse(line) as { _operation: string; _key: string });

  it('sends the segment, and deletes a member that no longer meets it', async () => {
    const first = await runExample();
    expect(first.result, first.message).toBe('Succeeded');
    expect(first.operations).toEqual({ upsert: 2 });
    expect(written().map((w) => [w._operation, w._key])).toEqual([
      ['upsert', '1'],
      ['upsert', '5'],
    ]);
    const people = join(folder, 'people.csv');
    writeFileSync(
      people,
      readFileSync(people, 'utf8').replace('5,eli@example.com,DE,510', '5,eli@example.com,DE,400'),
    );
    const second = await runExample();
    expect(second.operations).toEqual({ delete: 1 });
    expect(written().at(-1)).toMatchObject({ _operation: 'delete', _key: '5' });
  });

  it('refuses, before any run, a segment naming a column the parent does not list', () => {
    const resources = join(folder, 'resources.yaml');
    writeFileSync(
      resources,
      readFileSync(resources, 'utf8').replace(
        '{ column: lifetime_value, gt: 500 }',
        '{ column: lifetime_valu, gt: 500 }',
      ),
    );
    expect(() => loadResources(folder)).toThrow(
      /Model "germany-repeat-buyers": spec.segment.where.and\[2\]: column "lifetime_valu" is not a filterable column of Model "customers": did you mean "lifetime_value"\? \(UnknownSegmentColumn\)/,
    );
  });
});
