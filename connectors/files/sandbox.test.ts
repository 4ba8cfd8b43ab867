// A files Model's query runs in a DuckDB that sees only the Source's folder: it cannot read other local
// files, write files, attach databases, load extensions or change settings, and it is one SELECT only.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import { openDuck, rowsOf, synclineFailure, testContext } from '../shared/test-context.ts';
import type { StageRequest } from '../../core/connectors.ts';
import { source } from './index.ts';

const ctx = testContext();
const folder = join(ctx.tmpDir, 'source');
const outside = join(ctx.tmpDir, 'outside');
let duck: Awaited<ReturnType<typeof openDuck>>;
let n = 0;

function request(query: string): StageRequest {
  n += 1;
  return {
    ...ctx,
    source: { type: 'files', files: { url: folder } } as SourceSpec,
    model: { sourceRef: { name: 'files' }, primaryKey: 'id', query } as ModelSpec,
    duck: duck.duck,
    table: `sandboxed_${n}`,
    labels: { namespace: 'default', sync: 's', runId: `r${n}` },
  };
}

async function failure(query: string) {
  return synclineFailure(source!.stage(request(query)));
}

beforeAll(async () => {
  duck = await openDuck();
  mkdirSync(join(folder, 'parts'), { recursive: true });
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(folder, 'customers.csv'), 'id,name\n1,Ada\n2,Bob\n');
  writeFileSync(join(folder, 'parts', 'a.csv'), 'id,v\n1,x\n');
  writeFileSync(join(outside, 'secret.csv'), 'id,secret\n1,hunter2\n');
  await duck.duck.run('CREATE TABLE victim AS SELECT 1 AS id');
});

afterAll(() => {
  duck.close();
  ctx.cleanup();
});

describe('files source: a model query sees only the Source folder', () => {
  it('still reads the folder through relative paths, globs and absolute paths inside it', async () => {
    const req = request(
      `SELECT c.id, c.name, p.v FROM read_csv('customers.csv') c LEFT JOIN 'parts/*.csv' p USING (id)
       UNION ALL SELECT id, name, NULL FROM read_csv('${join(folder, 'customers.csv')}') WHERE id = 99`,
    );
    const result = await source!.stage(req);
    expect(result.rows).toBe(2);
    const rows = await rowsOf(duck.duck, `SELECT id, name, v FROM ${req.table} ORDER BY id`);
    expect(rows).toEqual([
      { id: '1', name: 'Ada', v: 'x' },
      { id: '2', name: 'Bob', v: null },
    ]);
  });

  it('cannot read a file outside the folder, by absolute path, ../ or glob', async () => {
    for (const query of [
      "SELECT 1 AS id, content FROM read_text('/etc/hostname')",
      `SELECT * FROM read_csv('${join(outside, 'secret.csv')}')`,
      "SELECT * FROM read_csv('../outside/secret.csv')",
      "SELECT * FROM read_csv('parts/../../outside/secret.csv')",
      "SELECT 1 AS id, file FROM glob('/etc/*')",
      "SELECT 1 AS id, * FROM read_text('/proc/self/environ')",
    ]) {
      const error = await failure(query);
      expect(error.reason, query).toBe('SourceAccessDenied');
      expect(error.message, query).toMatch(/outside the Source folder/);
      expect(error.message, query).not.toContain('hunter2');
    }
  });

  it('runs one SELECT statement only: no writes, no second statement', async () => {
    for (const query of [
      `COPY (SELECT 1 AS id) TO '${join(folder, 'written.csv')}'`,
      `EXPORT DATABASE '${join(folder, 'exported')}'`,
      `ATTACH '${join(folder, 'attached.duckdb')}' AS a`,
      'INSTALL httpfs',
      'LOAD httpfs',
      'SET enable_external_access = true',
      'CREATE TABLE t AS SELECT 1 AS id',
      'SELECT 1 AS id; DROP TABLE victim',
      'SELECT 1 AS id; SELECT 2 AS id',
      'CALL pragma_version()',
    ]) {
      const error = await failure(query);
      expect(error.reason, query).toBe('ModelNotReadOnly');
      expect(error.message, query).toMatch(/must be a single read-only SELECT.*not one SELECT statement/);
    }
    // Nothing wraps the query, so text that closes a wrapper is a syntax error, and nothing runs.
    const injected = await failure('SELECT 1 AS id) AS m; DROP TABLE victim; SELECT * FROM (SELECT 1 AS id');
    expect(injected.message).toMatch(/Parser Error/);
    expect(readdirSync(folder).sort(), 'files in the Source folder').toEqual(['customers.csv', 'parts']);
    expect(await rowsOf(duck.duck, 'SELECT id FROM victim')).toEqual([{ id: 1 }]);
  });

  it('cannot write a file or reach another database from inside a SELECT', async () => {
    const written = join(folder, 'from-query.csv');
    for (const query of [
      `SELECT * FROM query('COPY (SELECT 1) TO ''${written}''')`,
      'SELECT 1 AS id FROM victim',
      'SELECT id FROM memory.main.victim',
    ]) {
      await synclineFailure(source!.stage(request(query)));
    }
    expect(existsSync(written)).toBe(false);
  });

  it('stages a table only from inside the folder', async () => {
    for (const table of ['../outside/secret.csv', join(outside, 'secret.csv'), 'parts/../../outside/*.csv']) {
      const req = {
        ...request(''),
        model: { sourceRef: { name: 'files' }, primaryKey: 'id', table } as ModelSpec,
      };
      const error = await synclineFailure(source!.stage(req));
      expect(error.reason, table).toBe('InvalidModel');
      expect(error.message, table).toMatch(/inside the Source folder/);
    }
  });

  it('kills the query process when the run is aborted, and removes its scratch folder', async () => {
    const controller = new AbortController();
    const req = {
      ...request('SELECT sum(a.range * b.range) AS id FROM range(100000) a, range(100000) b'),
      signal: controller.signal,
    };
    const started = performance.now();
    setTimeout(() => controller.abort(new Error('run aborted')), 1500);
    await expect(source!.stage(req)).rejects.toThrow('run aborted');
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(readdirSync(ctx.tmpDir).filter((f) => f.startsWith('files-query-'))).toEqual([]);
  });

  it('leaves the engine connection as it was', async () => {
    await source!.stage(request("SELECT * FROM read_csv('customers.csv')"));
    const setting = await rowsOf(
      duck.duck,
      "SELECT current_setting('enable_external_access') AS access, current_setting('file_search_path') AS path",
    );
    expect(setting[0]).toEqual({ access: true, path: '' });
    expect(
      (await rowsOf(duck.duck, 'SELECT database_name FROM duckdb_databases() WHERE NOT internal')).map(
        (r) => r.database_name,
      ),
    ).toEqual(['memory']);
  });
});
