// The files a Model's table names on the server: a file name or a glob under sftp.path, matched segment by
// segment (each glob segment lists one folder), then the newest of them or all, and their download.
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import type { Stats } from 'ssh2';
import { SynclineError } from '../../core/errors.ts';
import { remoteName, requestError, type SftpSession } from './session.ts';

export interface RemoteFile {
  /** The path relative to the Source folder, with / between segments. */
  relative: string;
  /** The path the server is asked for. */
  remote: string;
  size: number;
  mtime: number;
}

const GLOB_CHARS = /[*?[\]{}]/;

/** The Model's table, checked: relative, inside the folder, no recursive **. */
export function checkedPattern(pattern: string): string[] {
  const normal = posix.normalize(pattern);
  const segments = normal.split('/').filter((s) => s !== '' && s !== '.');
  if (pattern.startsWith('/') || segments.includes('..') || segments.length === 0) {
    throw new SynclineError(
      'InvalidModel',
      `the Model's table "${pattern}" is not inside the Source folder: name a file or glob relative to sftp.path`,
    );
  }
  if (segments.includes('**')) {
    throw new SynclineError(
      'InvalidModel',
      `the Model's table "${pattern}" uses **: name the folders (exports/*/customers-*.csv), each * matches within one folder`,
    );
  }
  return segments;
}

/** The Source folder as the server resolves it, checked to be a folder. */
export async function sourceFolder(session: SftpSession, path: string): Promise<string> {
  let info: Stats;
  try {
    info = await session.stat(path);
  } catch (error) {
    const failure = requestError('source', session.where, `the folder "${path}" (sftp.path)`, error);
    if (failure.reason === 'PathNotFound') {
      throw new SynclineError('PathNotFound', `${failure.message}: check sftp.path`, { cause: error });
    }
    throw failure;
  }
  if (!info.isDirectory()) {
    throw new SynclineError(
      'PathNotFound',
      `${remoteName(session.where, path)} is a file: sftp.path names the folder, the Model's table the file in it`,
    );
  }
  return path;
}

async function listFolder(session: SftpSession, folder: string) {
  try {
    return await session.readdir(folder);
  } catch (error) {
    throw requestError('source', session.where, `listing "${folder}"`, error);
  }
}

/** Every regular file matching the segments, relative paths sorted. */
export async function matchFiles(
  session: SftpSession,
  folder: string,
  segments: string[],
): Promise<RemoteFile[]> {
  let level: { relative: string; attrs?: Stats }[] = [{ relative: '' }];
  for (const [index, segment] of segments.entries()) {
    const last = index === segments.length - 1;
    const next: { relative: string; attrs?: Stats }[] = [];
    for (const at of level) {
      const base = at.relative === '' ? folder : posix.join(folder, at.relative);
      if (!GLOB_CHARS.test(segment)) {
        try {
          const attrs = await session.stat(posix.join(base, segment));
          next.push({ relative: posix.join(at.relative, segment), attrs });
        } catch (error) {
          const failure = requestError('source', session.where, posix.join(base, segment), error);
          if (failure.reason !== 'PathNotFound') throw failure;
        }
        continue;
      }
      for (const entry of await listFolder(session, base)) {
        if (entry.filename.startsWith('.') && !segment.startsWith('.')) continue;
        if (posix.matchesGlob(entry.filename, segment)) {
          next.push({ relative: posix.join(at.relative, entry.filename), attrs: entry.attrs as Stats });
        }
      }
    }
    level = next.filter((n) => (last ? n.attrs?.isFile?.() : n.attrs?.isDirectory?.()));
  }
  return level
    .map((n) => ({
      relative: n.relative,
      remote: posix.join(folder, n.relative),
      size: n.attrs?.size ?? 0,
      mtime: n.attrs?.mtime ?? 0,
    }))
    .sort((a, b) => (a.relative < b.relative ? -1 : a.relative > b.relative ? 1 : 0));
}

/** newest: the file modified last (the greatest name of those modified in the same second); all: every one. */
export function pickFiles(files: RemoteFile[], pick: 'newest' | 'all'): RemoteFile[] {
  if (pick === 'all' || files.length <= 1) return files;
  const newest = files.reduce((best, f) =>
    f.mtime > best.mtime || (f.mtime === best.mtime && f.relative > best.relative) ? f : best,
  );
  return [newest];
}

/**
 * Download into `into`, laid out as on the server. A file whose size or modification time changed while
 * it was downloaded (still being written) is refused: the read would be of a file that no longer exists.
 */
export async function downloadFiles(
  session: SftpSession,
  files: RemoteFile[],
  into: string,
  signal: AbortSignal,
): Promise<string[]> {
  const paths: string[] = [];
  for (const file of files) {
    signal.throwIfAborted();
    const local = join(into, ...file.relative.split('/'));
    await mkdir(dirname(local), { recursive: true });
    try {
      await session.download(file.remote, local);
    } catch (error) {
      throw requestError('source', session.where, `downloading "${file.remote}"`, error);
    }
    const after = await session.stat(file.remote);
    const { size } = await stat(local);
    if (after.size !== file.size || after.mtime !== file.mtime || size !== file.size) {
      throw new SynclineError(
        'SourceFileUnreadable',
        `${remoteName(session.where, file.remote)} changed while it was downloaded (${file.size} bytes when listed, ${after.size} after, ` +
          `${size} read): it may still be being written or uploaded; run again once it is complete`,
      );
    }
    paths.push(local);
  }
  return paths;
}
