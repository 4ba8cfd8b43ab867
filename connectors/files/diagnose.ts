// A failed DuckDB read of source files, explained: which file, which line, what is wrong and the fix.
// DuckDB's strict CSV reader finds every problem but, when its dialect sniffer trips over one, says only
// that it could not sniff the file; its rejects table (one file at a time) then names the line.
import type { DuckDBConnection } from '@duckdb/node-api';
import { SynclineError } from '../../core/errors.ts';
import type { FileFormat } from '../shared/location.ts';
import { quoteLiteral } from '../shared/sql.ts';
import { unreadable, type SourceFile } from './complete.ts';

export interface CsvDialect {
  header: boolean;
  delimiter: string;
}

/**
 * read_csv's options: RFC 4180 quoting, strict, every line's field count checked (unless padded, to
 * diagnose), no line skipped. The sniffer would otherwise skip lines silently: leading lines narrower
 * than a later one (skip), and lines starting with # (comment); ignore_errors is off by default.
 */
export function csvOptions(dialect: CsvDialect, nullPadding = false): string {
  return (
    `header = ${dialect.header}, delim = ${quoteLiteral(dialect.delimiter)}, quote = '"', escape = '"', ` +
    `strict_mode = true, null_padding = ${nullPadding}, skip = 0, comment = ''`
  );
}

function textOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Local paths in a DuckDB message replaced by the files' names (their URLs), longest first. */
function withNames(text: string, files: SourceFile[]): string {
  return [...files]
    .sort((a, b) => b.path.length - a.path.length)
    .reduce((out, f) => out.replaceAll(f.path, f.name), text);
}

function fileIn(text: string, files: SourceFile[]): SourceFile | undefined {
  return [...files].sort((a, b) => b.path.length - a.path.length).find((f) => text.includes(f.path));
}

const FIX_QUOTE = 'close the quote, and double every quote inside a quoted value ("")';

/** A CSV problem in words, from DuckDB's error text or rejects table. */
function csvProblem(text: string, header: boolean): string {
  const columns = /Expected Number of Columns: (\d+) Found: (\d+)/.exec(text);
  if (columns) {
    const [, expected, found] = columns;
    const of = header ? 'the header has' : 'the first line has';
    const fix =
      Number(found) > Number(expected)
        ? 'quote values that hold the delimiter'
        : 'every line needs every field (an empty one is NULL)';
    return `the line has ${found} fields where ${of} ${expected}: ${fix}`;
  }
  if (/unicode|utf-?8/i.test(text)) {
    return 'the line is not valid UTF-8: save the file as UTF-8 (files in another encoding are not read)';
  }
  if (/unterminated quote/i.test(text)) return `a quoted value is not closed: ${FIX_QUOTE}`;
  if (/quote/i.test(text)) return `a quote is out of place: ${FIX_QUOTE}`;
  if (/maximum line size/i.test(text)) return 'the line is longer than DuckDB reads (max_line_size)';
  const conversion = /(?:Could not convert|Error when converting)[^\n]*/.exec(text)?.[0];
  return conversion ?? text.split('\n')[0] ?? text;
}

async function firstRejected(duck: DuckDBConnection, file: SourceFile, dialect: CsvDialect, id: string) {
  const errors = `syncline_rejects_${id}`;
  const scans = `syncline_reject_scans_${id}`;
  try {
    await duck.run(
      `SELECT count(*) FROM read_csv(${quoteLiteral(file.path)}, ${csvOptions(dialect)}, ` +
        `sample_size = -1, store_rejects = true, rejects_table = '${errors}', rejects_scan = '${scans}')`,
    );
    const reader = await duck.runAndReadAll(
      `SELECT line, error_type, error_message FROM ${errors} ORDER BY line LIMIT 1`,
    );
    const row = reader.getRowObjectsJS()[0];
    return row
      ? { line: Number(row.line), text: `${String(row.error_type)} ${String(row.error_message)}` }
      : undefined;
  } finally {
    await duck.run(`DROP TABLE IF EXISTS ${errors}; DROP TABLE IF EXISTS ${scans}`);
  }
}

/** Read without sniffing (up to 4,096 fields a line, short lines padded): finds unclosed quotes. */
async function unsniffed(duck: DuckDBConnection, file: SourceFile, dialect: CsvDialect) {
  const columns = Array.from({ length: 4096 }, (_, i) => `'c${i}': 'VARCHAR'`).join(', ');
  const options = csvOptions({ ...dialect, header: false }, true);
  try {
    await duck.run(
      `SELECT count(*) FROM read_csv(${quoteLiteral(file.path)}, ${options}, auto_detect = false, columns = {${columns}})`,
    );
    return undefined;
  } catch (error) {
    const line = /CSV Error on Line: (\d+)/.exec(textOf(error));
    return line ? { line: Number(line[1]), text: textOf(error) } : undefined;
  }
}

/** The first problem DuckDB finds in one CSV file, with its line, or undefined when it finds none. */
async function csvFileProblem(duck: DuckDBConnection, file: SourceFile, dialect: CsvDialect, id: string) {
  try {
    const rejected = await firstRejected(duck, file, dialect, id);
    if (rejected) return rejected;
  } catch {
    // The sniffer could not read it at all: an unclosed quote, most often.
  }
  return unsniffed(duck, file, dialect);
}

async function explainCsv(duck: DuckDBConnection, text: string, files: SourceFile[], dialect: CsvDialect) {
  const line = /CSV Error on Line: (\d+)/.exec(text);
  const named = /^\s*file = (.+)$/m.exec(text)?.[1]?.trim();
  const file = named === undefined ? undefined : files.find((f) => f.path === named);
  if (line && file) return unreadable(file, Number(line[1]), csvProblem(text, dialect.header));
  const suspects = fileIn(text, files) ? [fileIn(text, files)!] : files;
  for (const [i, suspect] of suspects.entries()) {
    const found = await csvFileProblem(duck, suspect, dialect, `${Date.now()}_${i}`);
    if (found) return unreadable(suspect, found.line, csvProblem(found.text, dialect.header));
  }
  return undefined;
}

function explainJson(text: string, files: SourceFile[]) {
  const malformed = /Malformed JSON in file "(.+?)", at byte (\d+) in line (\d+): (.+?)\.?\s*$/m.exec(text);
  const file = malformed ? files.find((f) => f.path === malformed[1]) : undefined;
  if (!malformed || !file) return undefined;
  // DuckDB 1.5 numbers JSON lines from 2 (strict.test.ts pins it).
  const line = Math.max(1, Number(malformed[3]) - 1);
  return unreadable(
    file,
    line,
    `malformed JSON at byte ${malformed[2]} (${malformed[4]}): each line must hold one complete JSON object`,
  );
}

function explainParquet(text: string, files: SourceFile[]) {
  const file = fileIn(text, files);
  if (!file) return undefined;
  let detail = (text.split('\n')[0] ?? text).replace(/^[A-Za-z ]+Error: /, '');
  for (const quoted of [` '${file.path}'`, ` "${file.path}"`, file.path])
    detail = detail.replaceAll(quoted, '');
  return unreadable(
    file,
    undefined,
    `is not a complete Parquet file (${detail}): it may still be being written or uploaded, or is not Parquet`,
  );
}

/**
 * The error for a failed read of `files`: SourceFileUnreadable naming the file (and line) where it can
 * tell, else SourceQueryFailed with DuckDB's message, local paths replaced by the files' names.
 */
export async function explainReadFailure(
  duck: DuckDBConnection,
  error: unknown,
  request: { files: SourceFile[]; format: FileFormat; dialect: CsvDialect; pattern: string },
): Promise<SynclineError> {
  const text = textOf(error);
  const { files, format } = request;
  let explained: SynclineError | undefined;
  if (format === 'csv') explained = await explainCsv(duck, text, files, request.dialect);
  else if (format === 'jsonl') explained = explainJson(text, files);
  else explained = explainParquet(text, files);
  if (explained) {
    explained.cause = error;
    return explained;
  }
  const first = withNames(text.split('\n')[0] ?? text, files);
  return new SynclineError('SourceQueryFailed', `cannot read ${request.pattern} as ${format}: ${first}`, {
    cause: error,
  });
}
