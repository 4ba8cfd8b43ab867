// SFTP as a Destination: file drops. Each run's records are written by the files Destination into the
// run's scratch folder (the same records, CSV or JSON lines), then uploaded as .NAME.partial beside the
// target and renamed to NAME once the upload is complete and its size checked: a reader listing the
// folder sees the whole file or none. A run that fails or is killed before the rename leaves at most a
// hidden .NAME.partial, never counted as delivered; the next run overwrites it and renames.
import { randomBytes } from 'node:crypto';
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { DELETE_BEHAVIORS, SYNC_MODES, type DestinationSpec } from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import type {
  ConnectorContext,
  DeliveryContext,
  DestinationConnector,
  DestinationWriter,
  RowChange,
  RowResult,
} from '../../core/connectors.ts';
import { filesDestination } from '../files/destination.ts';
import { openSession, remoteName, requestError, type SftpSession } from './session.ts';

type Settings = NonNullable<DestinationSpec['sftp']>;

function settingsOf(spec: DestinationSpec): Settings {
  if (!spec.sftp) throw new SynclineError('InvalidDestination', 'an sftp Destination needs the sftp block');
  return spec.sftp;
}

function safe(value: string): string {
  return value.replace(/[^A-Za-z0-9._-]/g, '_');
}

/** The fileName template with the run's values (each made safe for a file name). */
export function renderFileName(
  template: string,
  values: { runId: string; started: Date; namespace: string; sync: string },
): string {
  const iso = values.started.toISOString();
  const fields: Record<string, string> = {
    runId: values.runId,
    date: iso.slice(0, 10).replaceAll('-', ''),
    time: `${iso.slice(0, 19).replace(/[-:]/g, '')}Z`,
    namespace: values.namespace,
    sync: values.sync,
  };
  return template.replace(/\{\{ ?([A-Za-z]+) ?\}\}/g, (whole, name: string) =>
    fields[name] === undefined ? whole : safe(fields[name]),
  );
}

/** The temporary name an upload goes by until it is complete: hidden, and not matching NAME's pattern. */
export function partialName(fileName: string): string {
  return `.${fileName}.partial`;
}

/** The folder on the server, checked to exist and be a folder. */
async function targetFolder(session: SftpSession, path: string): Promise<void> {
  try {
    const info = await session.stat(path);
    if (info.isDirectory()) return;
  } catch (error) {
    const failure = requestError('destination', session.where, `the folder "${path}" (sftp.path)`, error);
    if (failure.reason !== 'PathNotFound') throw failure;
    throw new SynclineError(
      'PathNotFound',
      `${failure.message}: create it on the server, or fix sftp.path (Syncline does not create folders)`,
      { cause: error },
    );
  }
  throw new SynclineError(
    'PathNotFound',
    `${remoteName(session.where, path)} is a file, not a folder: sftp.path names the folder to drop files in`,
  );
}

/** Upload and remove an empty hidden file: the folder can be written (a clear PathNotWritable otherwise). */
async function probeWrite(session: SftpSession, path: string, ctx: ConnectorContext): Promise<void> {
  const name = partialName(`syncline-check-${randomBytes(4).toString('hex')}`);
  const local = join(ctx.tmpDir, name);
  const remote = posix.join(path, name);
  await writeFile(local, '');
  try {
    await session.upload(local, remote);
  } catch (error) {
    throw requestError('destination', session.where, `writing to the folder "${path}" (sftp.path)`, error);
  } finally {
    await rm(local, { force: true });
  }
  await session.unlink(remote).catch((error: unknown) => {
    throw requestError('destination', session.where, `removing ${remoteName(session.where, remote)}`, error);
  });
}

/** The one file the files writer published under `dir`, if it wrote any records. */
async function producedFile(dir: string): Promise<string | undefined> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  });
  const files = entries.filter((e) => e.isFile());
  return files[0] ? join(files[0].parentPath, files[0].name) : undefined;
}

class SftpWriter implements DestinationWriter {
  private readonly ctx: DeliveryContext;
  private readonly settings: Settings;
  private readonly inner: DestinationWriter;
  private readonly localDir: string;
  private readonly fileName: string;

  constructor(
    ctx: DeliveryContext,
    settings: Settings,
    inner: DestinationWriter,
    localDir: string,
    fileName: string,
  ) {
    this.ctx = ctx;
    this.settings = settings;
    this.inner = inner;
    this.localDir = localDir;
    this.fileName = fileName;
  }

  write(batch: RowChange[]): Promise<RowResult[]> {
    return this.inner.write(batch);
  }

  async close(): Promise<void> {
    await this.inner.close();
    const local = await producedFile(this.localDir);
    if (local === undefined) return;
    const started = performance.now();
    const session = await openSession(this.settings, this.ctx, 'destination');
    const target = posix.join(this.settings.path ?? '.', this.fileName);
    const partial = posix.join(this.settings.path ?? '.', partialName(this.fileName));
    const name = remoteName(session.where, target);
    const published = (status: string, error?: unknown) =>
      this.ctx.debug({
        operation: 'publish',
        target: `sftp ${name}`,
        keys: [],
        status,
        latencyMs: Math.round(performance.now() - started),
        ...(error === undefined ? {} : { error: (error as Error).message }),
      });
    try {
      await this.publish(session, local, partial, target);
      published('renamed into place');
      this.ctx.log.info({ file: name, bytes: (await stat(local)).size }, 'dropped the run file');
    } catch (error) {
      published('error', error);
      await session
        .unlink(partial)
        .catch((cleanup: unknown) =>
          this.ctx.log.debug({ err: String(cleanup) }, 'removing the partial upload'),
        );
      throw error;
    } finally {
      session.close();
    }
  }

  private async publish(session: SftpSession, local: string, partial: string, target: string) {
    const fail = (what: string, error: unknown) => {
      const failure = requestError('destination', session.where, what, error);
      return failure.reason === 'DestinationConnectionFailed'
        ? new SynclineError('DestinationWriteFailed', failure.message, { cause: error })
        : failure;
    };
    await session.upload(local, partial).catch((error: unknown) => {
      throw fail(`uploading ${remoteName(session.where, partial)}`, error);
    });
    const [sent, arrived] = await Promise.all([stat(local), session.stat(partial)]);
    if (sent.size !== arrived.size) {
      throw new SynclineError(
        'DestinationWriteFailed',
        `${remoteName(session.where, partial)} holds ${arrived.size} bytes of ${sent.size} after the upload; it was not renamed`,
      );
    }
    if (!session.atomicReplace) {
      // Plain SFTP rename refuses an existing target: remove it first (readers may briefly see no file, never half of one).
      await session.unlink(target).catch((error: unknown) => {
        if ((error as { code?: unknown }).code !== 2)
          throw fail(`replacing ${remoteName(session.where, target)}`, error);
      });
    }
    await session.rename(partial, target).catch((error: unknown) => {
      throw fail(`renaming ${remoteName(session.where, partial)} to ${this.fileName}`, error);
    });
  }
}

export const sftpDestination: DestinationConnector = {
  capabilities: {
    modes: SYNC_MODES,
    deleteBehaviors: DELETE_BEHAVIORS,
    comparesAllColumns: false,
    defaultBatchSize: 10000,
    publishesOnClose: true,
  },

  identity: (spec: DestinationSpec) => {
    const s = settingsOf(spec);
    return {
      type: 'sftp',
      host: s.host,
      port: s.port ?? 22,
      user: s.user,
      path: s.path ?? '.',
      fileName: s.fileName,
    };
  },

  async check(spec: DestinationSpec, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(spec);
    const session = await openSession(settings, ctx, 'destination');
    try {
      await targetFolder(session, settings.path ?? '.');
      await probeWrite(session, settings.path ?? '.', ctx);
    } finally {
      session.close();
    }
  },

  async open(ctx: DeliveryContext): Promise<DestinationWriter> {
    const settings = settingsOf(ctx.destination);
    const runId = ctx.runId ?? `run-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const fileName = renderFileName(settings.fileName ?? '{{ sync }}-{{ runId }}.csv', {
      runId,
      started: new Date(),
      namespace: ctx.sync.namespace,
      sync: ctx.sync.name,
    });
    // Fail before any row is read when the folder is missing or the login is refused.
    const session = await openSession(settings, ctx, 'destination');
    try {
      await targetFolder(session, settings.path ?? '.');
    } finally {
      session.close();
    }
    const localDir = join(ctx.tmpDir, `sftp-destination-${safe(runId)}`);
    const format = settings.format ?? 'csv';
    const inner = await filesDestination.open({
      ...ctx,
      runId,
      destination: { type: 'files', files: { url: localDir, format } },
      // The records' debugger entries name the file on the server, not the scratch copy.
      debug: (request) =>
        ctx.debug({
          ...request,
          target: request.target.startsWith('files ') ? `sftp ${fileName}` : request.target,
        }),
    });
    return new SftpWriter(ctx, settings, inner, localDir, fileName);
  },
};
