// Files as a Source: CSV, JSON lines and Parquet read by DuckDB from a local folder, or downloaded from
// s3:// or gs:// into the run's scratch folder first (DuckDB's httpfs extension is not available offline).
import { mkdir, stat } from 'node:fs/promises';
import { isAbsolute, join, matchesGlob, normalize, relative, resolve, sep } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { SourceSpec } from '../../crds/index.ts';
import { SynclineError, isSynclineError } from '../../core/errors.ts';
import { remoteStore } from '../shared/blobs.ts';
import { countRows, describeTable } from '../shared/duck.ts';
import { formatOfName, parseLocation, type FileFormat } from '../shared/location.ts';
import { quoteIdent, quoteLiteral } from '../shared/sql.ts';
import type { ConnectorContext, SourceConnector, StageRequest, StageResult } from '../../core/connectors.ts';
import { assertComplete, type SourceFile } from './complete.ts';
import { csvOptions, explainReadFailure, type CsvDialect } from './diagnose.ts';
import { stageSandboxedQuery } from './sandbox.ts';

type FilesSettings = NonNullable<SourceSpec['files']>;

function settingsOf(spec: SourceSpec): FilesSettings {
  if (!spec.files) throw new SynclineError('InvalidSource', 'a files Source needs the files block with url');
  return spec.files;
}

async function assertLocalFolder(path: string, url: string): Promise<void> {
  try {
    const info = await stat(path);
    if (!info.isDirectory()) {
      throw new SynclineError(
        'PathNotFound',
        `${url} is a file; files.url must name the folder that holds the files`,
      );
    }
  } catch (error) {
    if (isSynclineError(error)) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new SynclineError('PathNotFound', `the folder ${url} does not exist; check files.url`);
    }
    throw new SynclineError('PathNotFound', `cannot read the folder ${url}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Quoted string literals of a query: the file names and globs it reads. */
function literalsOf(query: string): string[] {
  return [...query.matchAll(/'((?:[^']|'')+)'/g)].map((m) => (m[1] ?? '').replaceAll("''", "'"));
}

/**
 * Download the remote files the model reads (its table glob, or the file names quoted in its query) into
 * a local folder laid out like the bucket prefix; return that folder.
 */
async function downloadRemote(
  settings: FilesSettings,
  model: StageRequest['model'],
  ctx: ConnectorContext,
  table: string,
) {
  const store = remoteStore(settings.url, settings, ctx.secrets);
  const folder = join(ctx.tmpDir, `files-source-${table}`);
  // A query's working folder, even when it names no file of the bucket.
  await mkdir(folder, { recursive: true });
  const patterns = model.table !== undefined ? [model.table] : literalsOf(model.query ?? '');
  const entries = await store.list('');
  const wanted = entries.filter((e) => patterns.some((p) => e.path === p || matchesGlob(e.path, p)));
  if (model.table !== undefined && wanted.length === 0) {
    throw new SynclineError(
      'PathNotFound',
      `no file under ${settings.url} matches "${model.table}"; check the Model's table`,
    );
  }
  for (const entry of wanted) {
    ctx.signal.throwIfAborted();
    await store.getToFile(entry.path, join(folder, ...entry.path.split('/')));
  }
  ctx.log.info(
    { url: settings.url, files: wanted.length, bytes: wanted.reduce((n, e) => n + e.size, 0) },
    'downloaded source files',
  );
  return folder;
}

async function localFiles(duck: DuckDBConnection, pattern: string): Promise<string[]> {
  const reader = await duck.runAndReadAll(`SELECT file FROM glob(${quoteLiteral(pattern)}) ORDER BY file`);
  return reader.getRowObjectsJS().map((r) => String(r.file));
}

function dialectOf(settings: FilesSettings): CsvDialect {
  return { header: settings.csv?.header ?? true, delimiter: settings.csv?.delimiter ?? ',' };
}

function readerSql(format: FileFormat, files: string[], settings: FilesSettings): string {
  const list = `[${files.map(quoteLiteral).join(', ')}]`;
  switch (format) {
    case 'csv':
      // sample_size=-1: types are detected from every row, so a late value cannot break the read.
      // allow_quoted_nulls=false: "" is an empty string, only an empty unquoted field is NULL.
      return `read_csv(${list}, ${csvOptions(dialectOf(settings))}, sample_size = -1, allow_quoted_nulls = false, union_by_name = true)`;
    case 'jsonl':
      return `read_json(${list}, format = 'auto', sample_size = -1, union_by_name = true)`;
    case 'parquet':
      return `read_parquet(${list}, union_by_name = true)`;
  }
}

async function withInterrupt<T>(
  duck: DuckDBConnection,
  signal: AbortSignal,
  run: () => Promise<T>,
): Promise<T> {
  const onAbort = () => duck.interrupt();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await run();
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** A table name or glob, relative to the Source folder and inside it. */
function confinedPattern(pattern: string): string {
  const normal = normalize(pattern);
  if (isAbsolute(pattern) || normal === '..' || normal.startsWith(`..${sep}`)) {
    throw new SynclineError(
      'InvalidModel',
      `the Model's table "${pattern}" is not inside the Source folder: name a file or glob relative to files.url`,
    );
  }
  return pattern;
}

/** The name a file goes by in messages: its URL under files.url (never a local scratch path). */
function sourceFile(settings: FilesSettings, folder: string, path: string): SourceFile {
  return { path, name: `${settings.url.replace(/\/+$/, '')}/${relative(folder, path).split(sep).join('/')}` };
}

/**
 * Read the files into the table while checking beside the read that each is whole (complete.ts); a
 * file that is not fails the stage and leaves no table behind.
 */
async function readWhole(
  req: StageRequest,
  files: SourceFile[],
  format: FileFormat,
  settings: FilesSettings,
) {
  let reading = true;
  const checks = (async () => {
    for (const file of files) await assertComplete(file, format, req.signal);
  })();
  checks.catch(() => reading && req.duck.interrupt());
  const sql = `CREATE TABLE ${quoteIdent(req.table)} AS SELECT * FROM ${readerSql(
    format,
    files.map((f) => f.path),
    settings,
  )}`;
  const read = req.duck.run(sql).finally(() => (reading = false));
  const [checked, done] = await Promise.allSettled([checks, read]);
  if (checked.status === 'rejected') {
    if (done.status === 'fulfilled') await req.duck.run(`DROP TABLE ${quoteIdent(req.table)}`);
    throw checked.reason;
  }
  if (done.status === 'rejected') {
    const pattern = req.model.table ?? '';
    throw await explainReadFailure(req.duck, done.reason, {
      files,
      format,
      dialect: dialectOf(settings),
      pattern,
    });
  }
}

async function stageTable(
  req: StageRequest,
  folder: string,
  settings: FilesSettings,
  pattern: string,
): Promise<void> {
  const paths = await localFiles(req.duck, resolve(folder, confinedPattern(pattern)));
  if (paths.length === 0) {
    throw new SynclineError(
      'PathNotFound',
      `no file in ${settings.url} matches "${pattern}"; check the Model's table`,
    );
  }
  const format = settings.format ?? formatOfName(pattern) ?? formatOfName(paths[0] ?? '');
  if (format === undefined) {
    throw new SynclineError(
      'UnknownFileFormat',
      `cannot tell the format of "${pattern}" from its extension: set files.format to csv, jsonl or parquet`,
    );
  }
  await readWhole(
    req,
    paths.map((path) => sourceFile(settings, folder, path)),
    format,
    settings,
  );
}

export const filesSource: SourceConnector = {
  async check(spec: SourceSpec, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(spec);
    const location = parseLocation(settings.url);
    if (location.kind === 'local') return assertLocalFolder(location.path, settings.url);
    const entries = await remoteStore(settings.url, settings, ctx.secrets).list('');
    if (entries.length === 0) {
      throw new SynclineError('PathNotFound', `there are no files under ${settings.url}; check files.url`);
    }
  },

  async stage(req: StageRequest): Promise<StageResult> {
    const settings = settingsOf(req.source);
    const location = parseLocation(settings.url);
    let folder: string;
    if (location.kind === 'local') {
      await assertLocalFolder(location.path, settings.url);
      folder = location.path;
    } else {
      folder = await downloadRemote(settings, req.model, req, req.table);
    }
    await withInterrupt(req.duck, req.signal, async () => {
      if (req.model.table !== undefined) await stageTable(req, folder, settings, req.model.table);
      else if (req.model.query !== undefined) {
        await stageSandboxedQuery({
          duck: req.duck,
          table: req.table,
          query: req.model.query,
          folder: resolve(folder),
          name: settings.url.replace(/\/+$/, ''),
          scratch: join(req.tmpDir, `files-query-${req.table}`),
          signal: req.signal,
          labels: req.labels,
        });
      } else
        throw new SynclineError(
          'InvalidModel',
          'a Model of a files Source needs table (a file name or glob) or query',
        );
    });
    const columns = await describeTable(req.duck, req.table);
    const rows = await countRows(req.duck, req.table);
    req.log.info({ table: req.model.table, rows, columns: columns.length }, 'staged files');
    return { columns, rows };
  },
};
