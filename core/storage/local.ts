import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type BigIntStats } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink, utimes } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import lockfile from 'proper-lockfile';
import { SynclineError, isSynclineError } from '../errors.ts';
import type { BlobEntry, BlobStore, PutCondition, ReadOptions } from './index.ts';
import { assertRelativePath } from './url.ts';

const TEMP_SUFFIX = '.syncline-tmp';
const LOCK_SUFFIX = '.syncline-lock';
const ABANDONED_TEMP_MS = 10 * 60 * 1000;

/**
 * A folder as an object store (a PVC, or the embedded default's state dir). Writes go to a temp file
 * that is renamed into place, so a reader never sees half an object. Every mutation of a path holds an
 * exclusive lock (a lock folder beside it, also between processes) around check-and-rename, which
 * makes conditional puts a real compare-and-swap. The etag is inode + mtime + size, and every write
 * gets a strictly newer mtime, so an etag never comes back.
 */
export function openLocalStore(root: string): BlobStore {
  return new LocalStore(root);
}

class LocalStore implements BlobStore {
  readonly url: string;
  private readonly root: string;

  constructor(root: string) {
    this.root = root;
    this.url = pathToFileURL(root).href.replace(/\/+$/, '');
  }

  async get(path: string, options: ReadOptions = {}): Promise<{ body: Buffer; etag: string } | undefined> {
    const file = this.target(path);
    try {
      options.signal?.throwIfAborted();
      // Body and etag from one open file: a concurrent replace cannot pair them wrongly.
      const handle = await open(file, 'r');
      try {
        const info = await handle.stat({ bigint: true });
        return { body: await handle.readFile({ signal: options.signal }), etag: etagOf(info) };
      } finally {
        await handle.close();
      }
    } catch (error) {
      if (isAbsent(error)) return undefined;
      if (options.signal?.aborted) throw options.signal.reason;
      throw this.fail(error, `read ${path}`);
    }
  }

  async getToFile(path: string, localFile: string): Promise<boolean> {
    const file = this.target(path);
    const temp = tempName(localFile);
    try {
      await makeDirectory(dirname(localFile));
      await pipeline(createReadStream(file), createWriteStream(temp));
      await rename(temp, localFile);
      return true;
    } catch (error) {
      if (isAbsent(error) && !(await statOrUndefined(file))) return false;
      throw this.fail(error, `copy ${path} to ${localFile}`);
    } finally {
      await removeQuietly(temp);
    }
  }

  async put(path: string, body: Buffer | string, cond?: PutCondition): Promise<{ etag: string }> {
    return this.write(
      path,
      `write ${path}`,
      async (temp) => {
        const handle = await open(temp, 'wx');
        try {
          await handle.writeFile(typeof body === 'string' ? Buffer.from(body) : body);
          await handle.sync();
        } finally {
          await handle.close();
        }
      },
      cond,
    );
  }

  async putFile(path: string, localFile: string, cond?: PutCondition): Promise<{ etag: string }> {
    return this.write(
      path,
      `upload ${localFile} to ${path}`,
      (temp) => pipeline(createReadStream(localFile), createWriteStream(temp, { flags: 'wx', flush: true })),
      cond,
    );
  }

  async list(prefix: string): Promise<BlobEntry[]> {
    assertRelativePath(prefix, this.url, 'prefix');
    const entries: BlobEntry[] = [];
    try {
      for (const file of await walk(this.startOf(prefix))) {
        const path = relative(this.root, file).split(sep).join('/');
        if (!path.startsWith(prefix)) continue;
        const info = await statOrUndefined(file); // undefined: deleted while listing
        if (info) entries.push({ path, size: Number(info.size), updatedAt: info.mtime.toISOString() });
      }
    } catch (error) {
      throw this.fail(error, `list ${prefix || '/'}`);
    }
    return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  async delete(path: string): Promise<void> {
    const file = this.target(path);
    try {
      if (!(await statOrUndefined(file))) return;
      await withPathLock(file, () => unlink(file).catch(ignoreAbsent));
    } catch (error) {
      throw this.fail(error, `delete ${path}`);
    }
  }

  async deletePrefix(prefix: string): Promise<number> {
    const entries = await this.list(prefix);
    for (const entry of entries) await this.delete(entry.path);
    try {
      await removeAbandonedTempFiles(this.startOf(prefix), this.root, prefix);
      await removeEmptyDirectories(this.startOf(prefix), this.root);
    } catch (error) {
      throw this.fail(error, `clean up folders under ${prefix || '/'}`);
    }
    return entries.length;
  }

  private fail(error: unknown, what: string): SynclineError {
    return localError(error, what, this.url);
  }

  private target(path: string): string {
    assertRelativePath(path, this.url);
    return join(this.root, ...path.split('/'));
  }

  /** The folder to walk for `prefix`: the one its last `/` names (the root when it has none). */
  private startOf(prefix: string): string {
    const slash = prefix.lastIndexOf('/');
    return slash < 0 ? this.root : join(this.root, ...prefix.slice(0, slash).split('/'));
  }

  /** Stage the content with `stage`, then commit it; the temp file never outlives the call. */
  private async write(
    path: string,
    what: string,
    stage: (temp: string) => Promise<void>,
    cond?: PutCondition,
  ): Promise<{ etag: string }> {
    const file = this.target(path);
    const temp = tempName(file);
    try {
      await makeDirectory(dirname(file));
      await stage(temp);
      return await this.commitTemp(file, temp, cond);
    } catch (error) {
      throw this.fail(error, what);
    } finally {
      await removeQuietly(temp);
    }
  }

  /** Move a fully written temp file into place under the path's lock, checking `cond` first. */
  private async commitTemp(
    file: string,
    temp: string,
    cond: PutCondition | undefined,
  ): Promise<{ etag: string }> {
    const etag = await withPathLock(file, async () => {
      const previous = await statOrUndefined(file);
      if (cond)
        checkCondition(
          previous && etagOf(previous),
          cond,
          this.url,
          relative(this.root, file).split(sep).join('/'),
        );
      const stamped = await stampNewerThan(temp, previous?.mtimeNs);
      await rename(temp, file);
      return stamped;
    });
    await syncDirectory(dirname(file));
    return { etag };
  }
}

function tempName(file: string): string {
  return `${file}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`;
}

function etagOf(info: BigIntStats): string {
  return `${info.ino.toString(36)}-${info.mtimeNs.toString(36)}-${info.size.toString(36)}`;
}

/**
 * Give the staged file an mtime strictly after the version it replaces (runs under the path's lock),
 * so that writes within one clock tick, or onto a reused inode number, still get a new etag. Coarser
 * steps are tried where the filesystem keeps less than microseconds.
 */
async function stampNewerThan(temp: string, previousNs: bigint | undefined): Promise<string> {
  for (let step = 1_000n; ; step *= 1_000n) {
    const now = BigInt(Date.now()) * 1_000_000n;
    const wanted = previousNs !== undefined && now <= previousNs ? previousNs + step : now;
    const seconds = Number(wanted / 1_000n) / 1_000_000;
    await utimes(temp, seconds, seconds);
    const info = await stat(temp, { bigint: true });
    if (previousNs === undefined || info.mtimeNs > previousNs || step >= 1_000_000_000n) return etagOf(info);
  }
}

function checkCondition(current: string | undefined, cond: PutCondition, url: string, path: string): void {
  if ('ifNoneMatch' in cond ? current !== undefined : current !== cond.ifMatch) {
    const expected = 'ifNoneMatch' in cond ? 'to be absent' : `to have etag ${cond.ifMatch}`;
    throw new SynclineError(
      'PreconditionFailed',
      `${url}/${path} changed meanwhile: expected it ${expected}`,
      { retryable: false }, // as the s3 and gcs stores say: the caller reads again
    );
  }
}

/** Exclusive, cross-process lock on one path. A lock left by a killed process goes stale after 10 s. */
async function withPathLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  let compromised: Error | undefined;
  const release = await lockfile.lock(file, {
    realpath: false,
    lockfilePath: `${file}${LOCK_SUFFIX}`,
    stale: 10_000,
    retries: { retries: 200, factor: 1.3, minTimeout: 5, maxTimeout: 200, randomize: true },
    onCompromised: (error) => {
      compromised = error;
    },
  });
  try {
    const result = await fn();
    if (compromised) {
      throw new SynclineError(
        'StorageError',
        `the lock on ${file} was lost while writing: ${compromised.message}`,
      );
    }
    return result;
  } finally {
    await release().catch((error: unknown) => {
      if (!compromised) throw error;
    });
  }
}

/**
 * mkdir -p that fails with the real cause: Node's recursive mkdir says ENOENT on a read-only file system
 * (and where a parent may not be written). Creating the first missing folder alone gives EROFS or EACCES.
 */
async function makeDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    if (!isAbsent(error)) throw error;
    let missing = dir;
    while (dirname(missing) !== missing && !(await statOrUndefined(dirname(missing))))
      missing = dirname(missing);
    await mkdir(missing).catch((cause: NodeJS.ErrnoException) => {
      if (cause.code !== 'EEXIST') throw cause;
    });
    await mkdir(dir, { recursive: true });
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function walk(dir: string): Promise<string[]> {
  let names;
  try {
    names = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (isAbsent(error) || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw error;
  }
  const files: string[] = [];
  for (const entry of names) {
    if (entry.name.endsWith(TEMP_SUFFIX) || entry.name.endsWith(LOCK_SUFFIX)) continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await walk(full)));
    else if (entry.isFile()) files.push(full);
  }
  return files;
}

/** Temp files and locks of writers killed mid-write (a live writer renames its temp file within seconds). */
async function removeAbandonedTempFiles(dir: string, root: string, prefix: string): Promise<void> {
  const abandonedBefore = Date.now() - ABANDONED_TEMP_MS;
  let names;
  try {
    names = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch (error) {
    if (isAbsent(error) || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return;
    throw error;
  }
  for (const entry of names) {
    const temp = entry.isFile() && entry.name.endsWith(TEMP_SUFFIX);
    // A held lock is touched every few seconds, so an old one was left by a killed process.
    const lock = entry.isDirectory() && entry.name.endsWith(LOCK_SUFFIX);
    if (!temp && !lock) continue;
    const full = join(entry.parentPath, entry.name);
    if (!relative(root, full).split(sep).join('/').startsWith(prefix)) continue;
    const info = await statOrUndefined(full);
    if (info && Number(info.mtimeMs) < abandonedBefore) await rm(full, { recursive: true, force: true });
  }
}

/** Remove folders left empty below `dir` (and `dir` itself unless it is the root); true when `dir` went. */
async function removeEmptyDirectories(dir: string, root: string): Promise<boolean> {
  let names;
  try {
    names = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (isAbsent(error)) return true;
    throw error;
  }
  let empty = true;
  for (const entry of names) {
    const removable = entry.isDirectory() && !entry.name.endsWith(LOCK_SUFFIX);
    if (removable && (await removeEmptyDirectories(join(dir, entry.name), root))) continue;
    empty = false;
  }
  if (!empty || dir === root) return false;
  try {
    await rmdir(dir);
  } catch (error) {
    // Another writer may just have put something in it: then the folder stays, as it should.
    if ((error as NodeJS.ErrnoException).code === 'ENOTEMPTY') return false;
    ignoreAbsent(error);
  }
  return true;
}

async function statOrUndefined(file: string): Promise<BigIntStats | undefined> {
  try {
    return await stat(file, { bigint: true });
  } catch (error) {
    if (isAbsent(error)) return undefined;
    throw error;
  }
}

async function removeQuietly(file: string): Promise<void> {
  await rm(file, { force: true }).catch((error: unknown) => {
    // The folder itself is unusable: the caller's own error says why.
    if ((error as NodeJS.ErrnoException).code !== 'ENOTDIR') throw error;
  });
}

function isAbsent(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function ignoreAbsent(error: unknown): void {
  if (!isAbsent(error)) throw error;
}

function localError(error: unknown, what: string, url: string): SynclineError {
  if (isSynclineError(error)) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const detail = error instanceof Error ? error.message : String(error);
  if (code === 'EROFS') {
    return new SynclineError(
      'StorageAccessDenied',
      `cannot ${what} in ${url}: the file system is read-only (${detail}): mount it read-write, or keep the state in a writable folder (the CLI's --state-dir, a Sync's spec.diffStore.url)`,
    );
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new SynclineError(
      'StorageAccessDenied',
      `cannot ${what} in ${url}: permission denied (${detail}): let this user write the folder, or keep the state in another (the CLI's --state-dir, a Sync's spec.diffStore.url)`,
    );
  }
  return new SynclineError('StorageError', `cannot ${what} in ${url}: ${detail}`, {
    retryable: code === 'ELOCKED',
  });
}
