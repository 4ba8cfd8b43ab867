// Files as a Destination: each run writes one file, <url>/<namespace>/<sync>/<runId>.<ext>, with one
// record per change. Records are buffered as JSON lines in the run's scratch folder; close() converts
// them with DuckDB (CSV, Parquet) and publishes the file: a rename into place, or an upload.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { DELETE_BEHAVIORS, SYNC_MODES, type DestinationSpec, type Mapping } from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import { remoteStore } from '../shared/blobs.ts';
import { duckMessage } from '../shared/duck.ts';
import { joinUrl, parseLocation } from '../shared/location.ts';
import { quoteIdent, quoteLiteral } from '../shared/sql.ts';
import { plainValue, toJson } from '../shared/values.ts';
import type {
  ColumnInfo,
  ConnectorContext,
  DeliveryContext,
  DestinationConnector,
  DestinationWriter,
  RowChange,
  RowResult,
} from '../../core/connectors.ts';

type Settings = NonNullable<DestinationSpec['files']>;
type Format = Settings['format'];

export const OPERATION_COLUMN = '_operation';
export const KEY_COLUMN = '_key';

/**
 * Every record starts with _operation and _key: a field of either name (a mapping's target, or a model
 * column sent as it is) would be dropped without a word, so it is refused. Used when a run opens the
 * destination and by the embedded CLI when it reads the resources.
 */
export function checkReservedFields(mappings: readonly { to: string }[], declared = true): void {
  const taken = mappings.filter((m) => [OPERATION_COLUMN, KEY_COLUMN].includes(m.to.split('.')[0] ?? ''));
  if (taken.length === 0) return;
  const names = taken.map((m) => `"${m.to}"`).join(', ');
  throw new SynclineError(
    'ReservedField',
    `${declared ? `spec.mappings write ${names}` : `the model's column(s) ${names} would be sent as field(s) of the same name`}, ` +
      `but files destinations write ${OPERATION_COLUMN} (the row operation) and ${KEY_COLUMN} (the primary key) in every record themselves: ` +
      `${declared ? 'send the value to another field' : 'map the column to another field in spec.mappings'}`,
  );
}

function settingsOf(spec: DestinationSpec): Settings {
  if (!spec.files)
    throw new SynclineError('InvalidDestination', 'a files Destination needs the files block with url');
  return { ...spec.files, format: spec.files.format ?? 'jsonl' };
}

const STATIC_TYPES: Record<Mapping['valueType'], string> = {
  string: 'VARCHAR',
  number: 'DOUBLE',
  boolean: 'BOOLEAN',
  json: 'JSON',
};

/**
 * The record's columns after _operation and _key: one per top-level destination field, typed from the model
 * (of two mappings to one field, as the later one says).
 */
export function recordColumns(mappings: Mapping[], columns: ColumnInfo[]): { name: string; type: string }[] {
  const types = new Map(columns.map((c) => [c.name, c.type]));
  const result = new Map<string, string>();
  for (const m of mappings) {
    const [top = m.to, ...rest] = m.to.split('.');
    if (top === OPERATION_COLUMN || top === KEY_COLUMN) continue;
    let type: string;
    if (rest.length > 0) type = 'JSON';
    else if (m.from !== undefined) type = types.get(m.from) ?? 'VARCHAR';
    else if (m.template !== undefined) type = 'VARCHAR';
    else type = STATIC_TYPES[m.valueType] ?? 'VARCHAR';
    // As the engine builds the fields (runner/fields.ts): a later mapping replaces an earlier one at the
    // same place (a nested one makes the field an object), which keeps the earlier one's position.
    result.set(top, type);
  }
  return [...result].map(([name, type]) => ({ name, type }));
}

/** A BLOB as DuckDB's text form (\xHH for every byte that is not printable ASCII), which casts back exactly. */
function duckBlobText(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes)
    out +=
      b >= 0x20 && b < 0x7f && b !== 0x5c
        ? String.fromCharCode(b)
        : `\\x${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

function recordLine(change: RowChange, blobColumns: Set<string>): string {
  const parts = [
    `${JSON.stringify(OPERATION_COLUMN)}:${JSON.stringify(change.operation)}`,
    `${JSON.stringify(KEY_COLUMN)}:${JSON.stringify(change.key)}`,
  ];
  for (const [name, raw] of Object.entries(change.fields)) {
    if (name === OPERATION_COLUMN || name === KEY_COLUMN || raw === undefined) continue;
    const value = plainValue(raw);
    const json =
      blobColumns.has(name) && value instanceof Uint8Array
        ? JSON.stringify(duckBlobText(value))
        : toJson(value);
    parts.push(`${JSON.stringify(name)}:${json}`);
  }
  return `{${parts.join(',')}}\n`;
}

const EXTENSIONS: Record<Format, string> = { csv: 'csv', jsonl: 'jsonl', parquet: 'parquet' };

class FilesWriter implements DestinationWriter {
  private readonly ctx: DeliveryContext;
  private readonly settings: Settings;
  private readonly handle: FileHandle;
  private readonly buffer: string;
  private readonly relativePath: string;
  private readonly columns: { name: string; type: string }[];
  private readonly blobColumns: Set<string>;
  private records = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    ctx: DeliveryContext,
    settings: Settings,
    handle: FileHandle,
    buffer: string,
    relativePath: string,
  ) {
    this.ctx = ctx;
    this.settings = settings;
    this.handle = handle;
    this.buffer = buffer;
    this.relativePath = relativePath;
    const mappings =
      ctx.mappings.length > 0
        ? ctx.mappings
        : ctx.columns.map((c) => ({ to: c.name, from: c.name, valueType: 'string' as const }));
    this.columns = recordColumns(mappings, ctx.columns);
    this.blobColumns = new Set(this.columns.filter((c) => c.type === 'BLOB').map((c) => c.name));
  }

  write(batch: RowChange[]): Promise<RowResult[]> {
    // Batches may arrive concurrently: appends are queued so lines never interleave.
    const run = this.queue.then(async () => {
      const started = performance.now();
      const results: RowResult[] = [];
      const lines: string[] = [];
      for (const change of batch) {
        try {
          lines.push(recordLine(change, this.blobColumns));
          results.push({ ok: true });
        } catch (error) {
          results.push({
            ok: false,
            reason: `the row cannot be written as a record: ${(error as Error).message}`,
            retryable: false,
          });
        }
      }
      await this.handle.write(lines.join(''));
      this.records += lines.length;
      // The records reach the destination when close() publishes the file; each batch is recorded here,
      // with its keys, so the debugger finds a row by its key.
      for (const operation of new Set(batch.map((c) => c.operation))) {
        const keys = batch.filter((c, i) => c.operation === operation && results[i]?.ok).map((c) => c.key);
        if (keys.length === 0) continue;
        this.ctx.debug({
          operation,
          target: `files ${this.publishedUrl()}`,
          keys,
          status: `${keys.length} records buffered`,
          latencyMs: Math.round(performance.now() - started),
        });
      }
      return results;
    });
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async close(): Promise<void> {
    await this.queue;
    await this.handle.close();
    try {
      if (this.records === 0) return;
      const started = performance.now();
      const published = (status: string, error?: unknown) =>
        this.ctx.debug({
          operation: 'publish',
          target: `files ${this.publishedUrl()}`,
          keys: [],
          status,
          latencyMs: Math.round(performance.now() - started),
          ...(error === undefined ? {} : { error: (error as Error).message }),
        });
      try {
        const file = this.settings.format === 'jsonl' ? this.buffer : await this.convert();
        await this.publish(file);
      } catch (error) {
        published('error', error);
        throw error;
      }
      published(`${this.records} records written`);
      this.ctx.log.info(
        { file: this.publishedUrl(), records: this.records, format: this.settings.format },
        'wrote the run file',
      );
    } finally {
      await rm(this.buffer, { force: true });
    }
  }

  private publishedUrl(): string {
    const location = parseLocation(this.settings.url);
    return location.kind === 'local'
      ? join(location.path, ...this.relativePath.split('/'))
      : joinUrl(location.url, this.relativePath);
  }

  /** CSV or Parquet through DuckDB, with the model's column types (exact decimals, big integers, timestamps). */
  private async convert(): Promise<string> {
    const out = `${this.buffer}.${EXTENSIONS[this.settings.format]}`;
    const instance = await DuckDBInstance.create(':memory:', {
      memory_limit: '256MB',
      temp_directory: join(this.ctx.tmpDir, 'files-destination-spill'),
      threads: '2',
    });
    const duck = await instance.connect();
    try {
      await duck.run("SET TimeZone = 'UTC'");
      const options =
        this.settings.format === 'csv' ? 'FORMAT csv, HEADER true' : "FORMAT parquet, COMPRESSION 'zstd'";
      // BLOBs are read as DuckDB's \xHH text and cast, which decodes the escapes (read_json would not).
      const typed = [
        `${quoteLiteral(OPERATION_COLUMN)}: 'VARCHAR'`,
        `${quoteLiteral(KEY_COLUMN)}: 'VARCHAR'`,
        ...this.columns.map(
          (c) => `${quoteLiteral(c.name)}: ${quoteLiteral(c.type === 'BLOB' ? 'VARCHAR' : c.type)}`,
        ),
      ].join(', ');
      const select = [OPERATION_COLUMN, KEY_COLUMN, ...this.columns.map((c) => c.name)]
        .map((name) =>
          this.blobColumns.has(name)
            ? `CAST(${quoteIdent(name)} AS BLOB) AS ${quoteIdent(name)}`
            : quoteIdent(name),
        )
        .join(', ');
      const read = (columns: string | undefined) =>
        `read_json(${quoteLiteral(this.buffer)}, format = 'newline_delimited'${columns ? `, columns = {${columns}}` : ', sample_size = -1'})`;
      try {
        await duck.run(`COPY (SELECT ${select} FROM ${read(typed)}) TO ${quoteLiteral(out)} (${options})`);
      } catch (error) {
        // A value that does not fit the model's type (a template, a mapped constant): let DuckDB infer instead.
        this.ctx.log.warn(
          { err: duckMessage(error) },
          'records do not fit the model types; writing them with inferred types',
        );
        await duck.run(`COPY (SELECT * FROM ${read(undefined)}) TO ${quoteLiteral(out)} (${options})`);
      }
      return out;
    } catch (error) {
      throw new SynclineError(
        'DestinationWriteFailed',
        `writing the ${this.settings.format} file failed: ${duckMessage(error)}`,
        { cause: error },
      );
    } finally {
      duck.closeSync();
      instance.closeSync();
    }
  }

  private async publish(file: string): Promise<void> {
    const location = parseLocation(this.settings.url);
    if (location.kind === 'remote') {
      await remoteStore(location.url, this.settings, this.ctx.secrets).putFile(this.relativePath, file);
      return;
    }
    const target = join(location.path, ...this.relativePath.split('/'));
    const temp = `${target}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(dirname(target), { recursive: true });
      // Copy beside the target, then rename: readers never see half a file.
      await copyFile(file, temp);
      await rename(temp, target);
    } catch (error) {
      await rm(temp, { force: true }).catch((cleanup: unknown) =>
        this.ctx.log.debug({ err: String(cleanup) }, 'removing a partial file'),
      );
      throw new SynclineError(
        'DestinationWriteFailed',
        `cannot write ${target}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
}

function safeSegment(value: string): string {
  return value.replace(/[^A-Za-z0-9._-]/g, '_');
}

export const filesDestination: DestinationConnector = {
  capabilities: {
    modes: SYNC_MODES,
    deleteBehaviors: DELETE_BEHAVIORS,
    comparesAllColumns: false,
    defaultBatchSize: 10000,
    publishesOnClose: true,
  },

  identity: (spec: DestinationSpec) => ({ type: 'files', url: settingsOf(spec).url }),

  async check(spec: DestinationSpec, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(spec);
    const location = parseLocation(settings.url);
    if (location.kind === 'remote') {
      await remoteStore(location.url, settings, ctx.secrets).list('');
      return;
    }
    // The folder is created on first write; check that it can be.
    const probe = join(location.path, `.syncline-check-${randomBytes(4).toString('hex')}`);
    try {
      await mkdir(location.path, { recursive: true });
      await (await open(probe, 'wx')).close();
    } catch (error) {
      throw new SynclineError(
        'PathNotWritable',
        `cannot write to ${location.path}: ${(error as Error).message}`,
        { cause: error },
      );
    } finally {
      await rm(probe, { force: true }).catch((cleanup: unknown) =>
        ctx.log.debug({ err: String(cleanup) }, 'removing the check file'),
      );
    }
  },

  async open(ctx: DeliveryContext): Promise<DestinationWriter> {
    const settings = settingsOf(ctx.destination);
    parseLocation(settings.url);
    checkReservedFields(ctx.mappings, ctx.sync.spec.mappings !== undefined);
    const runId = ctx.runId ?? `run-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const relativePath = [ctx.sync.namespace, ctx.sync.name, `${runId}.${EXTENSIONS[settings.format]}`]
      .map(safeSegment)
      .join('/');
    const buffer = join(
      ctx.tmpDir,
      `files-destination-${safeSegment(runId)}-${randomBytes(4).toString('hex')}.jsonl`,
    );
    const handle = await open(buffer, 'wx');
    return new FilesWriter(ctx, settings, handle, buffer, relativePath);
  },
};
