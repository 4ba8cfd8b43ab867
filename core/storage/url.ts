import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SynclineError } from '../errors.ts';

export type StorageLocation =
  | { scheme: 'file'; url: string; root: string }
  | { scheme: 's3' | 'gs'; url: string; bucket: string; prefix: string };

const BUCKET = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

/** Parse and normalise a store URL: no trailing slash, prefix without leading or trailing slashes. */
export function parseStorageUrl(raw: string): StorageLocation {
  const url = raw.trim();
  const invalid = (why: string) =>
    new SynclineError(
      'InvalidStorageUrl',
      `Storage URL "${url}" is invalid: ${why}. Use s3://bucket/prefix, gs://bucket/prefix or file:///absolute/path`,
    );
  const cloud = /^(s3|gs):\/\/([^/]*)\/?(.*)$/.exec(url);
  if (cloud) {
    const scheme = cloud[1] as 's3' | 'gs';
    const bucket = cloud[2] ?? '';
    if (!BUCKET.test(bucket)) throw invalid(`"${bucket}" is not a bucket name`);
    const prefix = (cloud[3] ?? '').replace(/\/+$/, '');
    if (prefix === '') return { scheme, url: `${scheme}://${bucket}`, bucket, prefix };
    if (prefix.split('/').some((s) => s === '' || s === '.' || s === '..'))
      throw invalid(`"${prefix}" is not a valid prefix`);
    return { scheme, url: `${scheme}://${bucket}/${prefix}`, bucket, prefix };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !url.startsWith('file://')) throw invalid('unsupported scheme');
  let root: string;
  if (url.startsWith('file://')) {
    try {
      root = fileURLToPath(url);
    } catch (error) {
      throw invalid(error instanceof Error ? error.message : String(error));
    }
  } else {
    if (url === '') throw invalid('it is empty');
    root = isAbsolute(url) ? url : resolve(url);
  }
  root = resolve(root);
  return { scheme: 'file', url: pathToFileURL(root).href.replace(/\/+$/, ''), root };
}

/**
 * Object paths are relative, slash-separated, without empty, `.` or `..` segments, so that a path
 * means the same object on every backend and can never escape the base.
 */
export function assertRelativePath(path: string, base: string, kind: 'object' | 'prefix' = 'object'): void {
  if (path === '' && kind === 'prefix') return;
  const segments = path.split('/');
  const bad =
    path === '' ||
    path.startsWith('/') ||
    path.includes('\\') ||
    path.includes('\0') ||
    segments.some(
      (s, i) => s === '.' || s === '..' || (s === '' && !(kind === 'prefix' && i === segments.length - 1)),
    );
  if (bad) {
    throw new SynclineError(
      'InvalidStoragePath',
      `"${path}" is not a valid object path under ${base}: use relative paths like a/b/c.json`,
    );
  }
}
