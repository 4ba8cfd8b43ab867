// A files Source fails on any file it cannot read completely and exactly, naming the file, the line and
// the problem: cut-off compressed files (an upload in progress), lines cut off, unterminated quotes, ragged
// rows, empty files, invalid UTF-8, malformed JSON lines and cut-off Parquet. Real files, real DuckDB.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import { openDuck, rowsOf, synclineFailure, testContext } from '../shared/test-context.ts';
import type { StageRequest } from '../../core/connectors.ts';
import { source } from './index.ts';

const ctx = testContext();
const folder = join(ctx.tmpDir, 'data');
let duck: Awaited<ReturnType<typeof openDuck>>;
let n = 0;

function request(model: Partial<ModelSpec>): StageRequest {
  n += 1;
  return {
    ...ctx,
    source: { type: 'files', files: { url: folder } } as SourceSpec,
    model: { sourceRef: { name: 'files' }, primaryKey: 'id', ...model } as ModelSpec,
    duck: duck.duck,
    table: `strict_${n}`,
    labels: { namespace: 'default', sync: 's', runId: `r${n}` },
  };
}

/** The SynclineError staging `table` fails with. */
async function failure(table: string) {
  return synclineFailure(source!.stage(request({ table })));
}

/** 100,000 rows without quotes, so a cut inside a row still parses as a (shorter) row. */
const manyRows = 'id,name\n' + Array.from({ length: 100_000 }, (_, i) => `${i + 1},name${i + 1}\n`).join('');

function half(bytes: Buffer): Buffer {
  return bytes.subarray(0, Math.floor(bytes.length / 2));
}

function write(name: string, content: string | Buffer): void {
  writeFileSync(join(folder, name), content);
}

beforeAll(async () => {
  duck = await openDuck();
  mkdirSync(folder, { recursive: true });
  write('whole.csv.gz', gzipSync(manyRows));
  write('cut.csv.gz', half(gzipSync(manyRows)));
  write('whole.csv.zst', zstdCompressSync(manyRows));
  write('cut.csv.zst', half(zstdCompressSync(manyRows)));
  write('cut-line.csv', 'id,name,amount\n1,a,10.5\n2,b,7.');
  write('unterminated.csv', 'id,name\n1,a\n2,"abc\n3,b\n');
  write('too-many.csv', 'id,name\n1,a\n2,b,c\n3,d\n');
  write('too-few.csv', 'id,name,x\n1,a,1\n2,b\n3,d,3\n');
  write('wide-last.csv', 'id,name\n1,a\n2,b\n3,c,d\n');
  write('hash.csv', 'id,name\n1,a\n#2,b\n3,c\n');
  write('empty.csv', '');
  write('empty.jsonl', '');
  write('header-only.csv', 'id,name\n');
  write(
    'latin1.csv',
    Buffer.concat([Buffer.from('id,name\n1,a\n2,'), Buffer.from([0x5a, 0xf6, 0x65]), Buffer.from('\n')]),
  );
  write('malformed.jsonl', '{"id": 1}\n{"id": 2, "name": }\n{"id": 3}\n');
  write('cut.jsonl', '{"id": 1}\n{"id": 2, "name": "ab');
  await duck.duck.run(
    `COPY (SELECT range AS id, 'x' || range AS s FROM range(100000)) TO '${join(folder, 'whole.parquet')}' (FORMAT parquet)`,
  );
  write('cut.parquet', half(readFileSync(join(folder, 'whole.parquet'))));
});

afterAll(() => {
  duck.close();
  ctx.cleanup();
});

describe('files source: input it cannot read completely and exactly', () => {
  it('reads whole .gz and .zst files', async () => {
    expect((await source!.stage(request({ table: 'whole.csv.gz' }))).rows).toBe(100_000);
    expect((await source!.stage(request({ table: 'whole.csv.zst' }))).rows).toBe(100_000);
  });

  it('fails on a .csv.gz cut at half (an upload in progress), naming the file', async () => {
    const error = await failure('cut.csv.gz');
    expect(error.reason).toBe('SourceFileUnreadable');
    expect(error.message).toContain(`${folder}/cut.csv.gz`);
    expect(error.message).toMatch(/cut off or corrupt.*unexpected end of file/);
  });

  it('fails on a .csv.zst cut at half', async () => {
    const error = await failure('cut.csv.zst');
    expect(error.reason).toBe('SourceFileUnreadable');
    expect(error.message).toContain('cut.csv.zst');
    expect(error.message).toMatch(/cut off or corrupt/);
  });

  it('fails on a CSV whose last line has no line break (cut off mid-line)', async () => {
    const error = await failure('cut-line.csv');
    expect(error.reason).toBe('SourceFileUnreadable');
    expect(error.message).toContain('cut-line.csv line 3');
    expect(error.message).toMatch(/does not end with a line break/);
  });

  it('fails on an unterminated quote, naming the line', async () => {
    const error = await failure('unterminated.csv');
    expect(error.reason).toBe('SourceFileUnreadable');
    expect(error.message).toContain('unterminated.csv line 3');
    expect(error.message).toMatch(/quote/);
  });

  it('fails on a row with too many fields, and on one with too few', async () => {
    const many = await failure('too-many.csv');
    expect(many.reason).toBe('SourceFileUnreadable');
    expect(many.message).toContain('too-many.csv line 3');
    expect(many.message).toMatch(/has 3 fields.*header has 2/);
    const few = await failure('too-few.csv');
    expect(few.reason).toBe('SourceFileUnreadable');
    expect(few.message).toContain('too-few.csv line 3');
    expect(few.message).toMatch(/has 2 fields.*header has 3/);
  });

  it('never skips lines: not those before a wider line, not those starting with #', async () => {
    const wide = await failure('wide-last.csv');
    expect(wide.reason).toBe('SourceFileUnreadable');
    expect(wide.message).toContain('wide-last.csv line 4');
    expect(wide.message).toMatch(/has 3 fields.*header has 2/);
    const req = request({ table: 'hash.csv' });
    expect((await source!.stage(req)).rows).toBe(3);
    const ids = await rowsOf(duck.duck, `SELECT id FROM ${req.table} ORDER BY id`);
    expect(ids.map((r) => r.id)).toEqual(['#2', '1', '3']);
  });

  it('fails on an empty (0-byte) file, but reads a header-only CSV as a model with no rows', async () => {
    for (const name of ['empty.csv', 'empty.jsonl']) {
      const error = await failure(name);
      expect(error.reason).toBe('SourceFileUnreadable');
      expect(error.message).toContain(`${name} is empty (0 bytes)`);
    }
    const req = request({ table: 'header-only.csv' });
    const result = await source!.stage(req);
    expect(result.rows).toBe(0);
    expect(result.columns.map((c) => c.name)).toEqual(['id', 'name']);
  });

  it('fails on invalid UTF-8, naming the file and line', async () => {
    const error = await failure('latin1.csv');
    expect(error.reason).toBe('SourceFileUnreadable');
    expect(error.message).toContain('latin1.csv line 3');
    expect(error.message).toMatch(/not valid UTF-8/);
  });

  it('fails on a malformed JSON line and on a JSON line cut off', async () => {
    const malformed = await failure('malformed.jsonl');
    expect(malformed.reason).toBe('SourceFileUnreadable');
    expect(malformed.message).toContain('malformed.jsonl line 2');
    expect(malformed.message).toMatch(/malformed JSON/);
    const cut = await failure('cut.jsonl');
    expect(cut.reason).toBe('SourceFileUnreadable');
    expect(cut.message).toContain('cut.jsonl line 2');
  });

  it('fails on a Parquet file cut off', async () => {
    const error = await failure('cut.parquet');
    expect(error.reason).toBe('SourceFileUnreadable');
    expect(error.message).toContain('cut.parquet');
    expect(error.message).toMatch(/not a complete Parquet file/);
  });

  it('names the bad file among the files a glob matches, and stages nothing', async () => {
    const req = request({ table: '*.csv.gz' });
    const error = await synclineFailure(source!.stage(req));
    expect(error.message).toContain('cut.csv.gz');
    const tables = await rowsOf(
      duck.duck,
      `SELECT count(*)::INTEGER AS n FROM duckdb_tables() WHERE table_name = '${req.table}'`,
    );
    expect(tables[0]?.n).toBe(0);
  });
});
