// SFTP as a Source: the files a Model's table names (a file or a glob under sftp.path; the newest or all)
// are downloaded into the run's scratch folder, then read by DuckDB with the files Source's checks: a file
// cut off, empty or malformed fails the run and stages nothing (connectors/files/complete.ts, diagnose.ts).
import { mkdir } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { SourceSpec } from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import type { ConnectorContext, SourceConnector, StageRequest, StageResult } from '../../core/connectors.ts';
import { assertComplete, unreadable, type SourceFile } from '../files/complete.ts';
import { csvOptions, explainReadFailure, type CsvDialect } from '../files/diagnose.ts';
import { stageSandboxedQuery } from '../files/sandbox.ts';
import { countRows, describeTable } from '../shared/duck.ts';
import { formatOfName, type FileFormat } from '../shared/location.ts';
import { quoteIdent, quoteLiteral } from '../shared/sql.ts';
import { checkedPattern, downloadFiles, matchFiles, pickFiles, sourceFolder } from './remote-files.ts';
import { openSession, remoteName, requestError } from './session.ts';

type SftpSettings = NonNullable<SourceSpec['sftp']>;

function settingsOf(spec: SourceSpec): SftpSettings {
  if (!spec.sftp) throw new SynclineError('InvalidSource', 'an sftp Source needs the sftp block');
  return spec.sftp;
}

function dialectOf(settings: SftpSettings): CsvDialect {
  return { header: settings.csv?.header ?? true, delimiter: settings.csv?.delimiter ?? ',' };
}

function readerSql(format: FileFormat, paths: string[], settings: SftpSettings): string {
  const list = `[${paths.map(quoteLiteral).join(', ')}]`;
  switch (format) {
    case 'csv':
      // As the files Source reads CSV: types from every row, "" an empty string, not NULL.
      return `read_csv(${list}, ${csvOptions(dialectOf(settings))}, sample_size = -1, allow_quoted_nulls = false, union_by_name = true)`;
    case 'jsonl':
      return `read_json(${list}, format = 'auto', sample_size = -1, union_by_name = true)`;
    case 'parquet':
      return `read_parquet(${list}, union_by_name = true)`;
  }
}

/** With pick all, every file must have the first one's columns: a missing column would read as NULLs. */
async function assertSameColumns(
  duck: DuckDBConnection,
  files: SourceFile[],
  format: FileFormat,
  settings: SftpSettings,
) {
  let first: { file: SourceFile; columns: string } | undefined;
  for (const file of files) {
    const reader = await duck.runAndReadAll(
      `DESCRIBE SELECT * FROM ${readerSql(format, [file.path], settings)}`,
    );
    const columns = reader
      .getRowObjectsJS()
      .map((r) => String(r.column_name))
      .sort()
      .join(', ');
    if (first === undefined) first = { file, columns };
    else if (columns !== first.columns) {
      throw unreadable(
        file,
        undefined,
        `has the columns ${columns} where ${first.file.name} has ${first.columns}: with pick all, every file the Model's table matches needs the same columns`,
      );
    }
  }
}

/** Read the files into the table, checking beside the read that each is whole, as the files Source does. */
async function readWhole(
  req: StageRequest,
  files: SourceFile[],
  format: FileFormat,
  settings: SftpSettings,
  pattern: string,
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
    throw await explainReadFailure(req.duck, done.reason, {
      files,
      format,
      dialect: dialectOf(settings),
      pattern,
    });
  }
  if (files.length > 1)
    await assertSameColumns(req.duck, files, format, settings).catch(async (error: unknown) => {
      await req.duck.run(`DROP TABLE ${quoteIdent(req.table)}`);
      throw error;
    });
}

/** Quoted string literals of a query that can name files under the folder (relative, no .., no **). */
function fileLiteralsOf(query: string): string[][] {
  return [...query.matchAll(/'((?:[^']|'')+)'/g)]
    .map((m) => (m[1] ?? '').replaceAll("''", "'"))
    .filter((text) => {
      const segments = posix.normalize(text).split('/');
      // Anything else is a value, or a path the sandbox refuses to read anyway.
      const named = segments.some((part) => part !== '' && part !== '.');
      return named && !text.startsWith('/') && !segments.includes('..') && !segments.includes('**');
    })
    .map(checkedPattern);
}

/**
 * Download what each pattern matches (the newest, or all, as sftp.pick says) into `into`. A table's
 * pattern must match a file; a query's literals that match none are values, not files.
 */
async function fetchFiles(
  req: StageRequest,
  settings: SftpSettings,
  patterns: string[][],
  into: string,
  table: string | undefined,
): Promise<{ files: SourceFile[]; folder: string }> {
  const session = await openSession(settings, req, 'source');
  try {
    const folder = await sourceFolder(session, settings.path ?? '.');
    const files: SourceFile[] = [];
    let bytes = 0;
    for (const segments of patterns) {
      const matched = await matchFiles(session, folder, segments);
      if (matched.length === 0 && table !== undefined) {
        throw new SynclineError(
          'PathNotFound',
          `no file in ${remoteName(session.where, folder)} matches "${table}"; check the Model's table and sftp.path`,
        );
      }
      const picked = pickFiles(matched, settings.pick ?? 'newest');
      const paths = await downloadFiles(session, picked, into, req.signal);
      picked.forEach((f, i) =>
        files.push({ path: paths[i] ?? '', name: remoteName(session.where, f.remote) }),
      );
      bytes += picked.reduce((n, f) => n + f.size, 0);
    }
    req.log.info({ where: session.where, files: files.length, bytes }, 'downloaded source files');
    return { files, folder: remoteName(session.where, folder) };
  } finally {
    session.close();
  }
}

/**
 * A Model's query over the files it names: those its quoted literals match are downloaded (each checked
 * to be whole, as a table's are), then the query runs in the files Source's sandbox over that folder.
 */
async function stageQuery(req: StageRequest, settings: SftpSettings, query: string, into: string) {
  await mkdir(into, { recursive: true });
  const { files, folder } = await fetchFiles(req, settings, fileLiteralsOf(query), into, undefined);
  for (const file of files) {
    const format = settings.format ?? formatOfName(file.name);
    if (format !== undefined) await assertComplete(file, format, req.signal);
  }
  await stageSandboxedQuery({
    duck: req.duck,
    table: req.table,
    query,
    folder: resolve(into),
    name: folder,
    scratch: join(req.tmpDir, `sftp-query-${req.table}`),
    signal: req.signal,
    labels: req.labels,
  });
}

export const sftpSource: SourceConnector = {
  async check(spec: SourceSpec, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(spec);
    const session = await openSession(settings, ctx, 'source');
    try {
      const folder = await sourceFolder(session, settings.path ?? '.');
      // Listing is what a run does first: a folder that cannot be listed fails the check, not the run.
      await session.readdir(folder).catch((error: unknown) => {
        throw requestError('source', session.where, `listing "${folder}" (sftp.path)`, error);
      });
    } finally {
      session.close();
    }
  },

  async stage(req: StageRequest): Promise<StageResult> {
    const settings = settingsOf(req.source);
    const into = join(req.tmpDir, `sftp-source-${req.table}`);
    const onAbort = () => req.duck.interrupt();
    if (req.model.table !== undefined) {
      const pattern = req.model.table;
      const { files } = await fetchFiles(req, settings, [checkedPattern(pattern)], into, pattern);
      const format = settings.format ?? formatOfName(pattern) ?? formatOfName(files[0]?.name ?? '');
      if (format === undefined) {
        throw new SynclineError(
          'UnknownFileFormat',
          `cannot tell the format of "${pattern}" from its extension: set sftp.format to csv, jsonl or parquet`,
        );
      }
      req.signal.addEventListener('abort', onAbort, { once: true });
      try {
        await readWhole(req, files, format, settings, pattern);
      } finally {
        req.signal.removeEventListener('abort', onAbort);
      }
    } else if (req.model.query !== undefined) {
      await stageQuery(req, settings, req.model.query, into);
    } else {
      throw new SynclineError(
        'InvalidModel',
        "a Model of an sftp Source needs table (a file or glob relative to the Source's sftp.path) or query",
      );
    }
    const columns = await describeTable(req.duck, req.table);
    const rows = await countRows(req.duck, req.table);
    req.log.info({ table: req.model.table, rows, columns: columns.length }, 'staged sftp files');
    return { columns, rows };
  },
};
