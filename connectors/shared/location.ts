// Where a files Source or Destination points: a local folder (a path or file:// URL) or a bucket prefix.
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SynclineError } from '../../core/errors.ts';

export type Location = { kind: 'local'; path: string } | { kind: 'remote'; scheme: 's3' | 'gs'; url: string };

export function parseLocation(url: string): Location {
  if (url.startsWith('s3://') || url.startsWith('gs://')) {
    return { kind: 'remote', scheme: url.startsWith('s3://') ? 's3' : 'gs', url: url.replace(/\/+$/, '') };
  }
  if (url.startsWith('file://')) return { kind: 'local', path: fileURLToPath(url) };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new SynclineError(
      'UnsupportedLocation',
      `"${url}" is not a supported location: use a local path, file://, s3:// or gs://`,
    );
  }
  return { kind: 'local', path: isAbsolute(url) ? url : resolve(url) };
}

/** Join relative path segments onto a remote URL with exactly one slash between them. */
export function joinUrl(base: string, ...parts: string[]): string {
  return [base.replace(/\/+$/, ''), ...parts.map((p) => p.replace(/^\/+|\/+$/g, ''))]
    .filter((p) => p !== '')
    .join('/');
}

export type FileFormat = 'csv' | 'jsonl' | 'parquet';

/** The format of a file from its name (compression suffixes ignored), or undefined when unknown. */
export function formatOfName(name: string): FileFormat | undefined {
  const base = name.toLowerCase().replace(/\.(gz|gzip|zst|zstd)$/, '');
  if (/\.(csv|tsv|txt)$/.test(base)) return 'csv';
  if (/\.(jsonl|ndjson|json)$/.test(base)) return 'jsonl';
  if (/\.parquet$/.test(base)) return 'parquet';
  return undefined;
}
