import type { z } from 'zod';
import type { gcsCredentials, s3Credentials } from '../../crds/index.ts';
import type { SecretResolver } from '../secrets.ts';
import { openGcsStore } from './gcs.ts';
import { openLocalStore } from './local.ts';
import { openS3Store } from './s3.ts';
import { parseStorageUrl } from './url.ts';

export type S3Credentials = z.infer<typeof s3Credentials>;
export type GcsCredentials = z.infer<typeof gcsCredentials>;

/** `ifMatch`: the object must still have this etag. `ifNoneMatch: '*'`: the object must not exist yet. */
export type PutCondition = { ifMatch: string } | { ifNoneMatch: '*' };

export interface BlobEntry {
  /** Relative to the store's base URL. */
  path: string;
  size: number;
  /** ISO 8601, from the store's own clock. */
  updatedAt: string;
}

/**
 * Objects under one base URL. Paths are relative to the base (`a/b/c.json`, no leading slash, no `..`).
 * Every failure is a SynclineError; see STORAGE_REASONS.
 */
/** A read that a caller may give up on: an aborted signal cancels the request and rejects with its reason. */
export interface ReadOptions {
  signal?: AbortSignal | undefined;
}

export interface BlobStore {
  /** Normalised base URL, e.g. s3://bucket/prefix, gs://bucket, file:///var/lib/syncline. */
  readonly url: string;
  /**
   * The object and its etag; undefined when absent. An etag changes whenever the content does (file:
   * on every write; gs: the generation, on every write; s3: the content's MD5), which is what a
   * compare-and-swap of a manifest that names its run needs.
   */
  get(path: string, options?: ReadOptions): Promise<{ body: Buffer; etag: string } | undefined>;
  /** Stream the object into a local file (written atomically); false when absent. */
  getToFile(path: string, localFile: string): Promise<boolean>;
  /** Throws SynclineError('PreconditionFailed') when `cond` does not hold. */
  put(path: string, body: Buffer | string, cond?: PutCondition): Promise<{ etag: string }>;
  /** Streams the local file (multipart where the backend has it). */
  putFile(path: string, localFile: string, cond?: PutCondition): Promise<{ etag: string }>;
  /** Every object whose path starts with `prefix` (a plain string prefix, recursive). */
  list(prefix: string): Promise<BlobEntry[]>;
  /** No error when absent. */
  delete(path: string): Promise<void>;
  /** Deletes every object whose path starts with `prefix`; returns how many. */
  deletePrefix(prefix: string): Promise<number>;
}

export interface BlobStoreOptions {
  s3?: S3Credentials;
  gcs?: GcsCredentials;
  secrets: SecretResolver;
}

/** Stable reasons of the SynclineErrors a BlobStore throws. */
export const STORAGE_REASONS = {
  invalidUrl: 'InvalidStorageUrl',
  invalidPath: 'InvalidStoragePath',
  invalidCredentials: 'InvalidStorageCredentials',
  bucketNotFound: 'StorageBucketNotFound',
  accessDenied: 'StorageAccessDenied',
  unreachable: 'StorageUnreachable',
  preconditionFailed: 'PreconditionFailed',
  failed: 'StorageError',
} as const;

/** Open the store for `file:///abs/path` (or a plain local path), `s3://bucket/prefix` or `gs://bucket/prefix`. */
export function openBlobStore(url: string, options: BlobStoreOptions): BlobStore {
  const location = parseStorageUrl(url);
  switch (location.scheme) {
    case 'file':
      return openLocalStore(location.root);
    case 's3':
      return openS3Store(location, options.s3 ?? {}, options.secrets);
    case 'gs':
      return openGcsStore(location, options.gcs ?? {}, options.secrets);
  }
}

export { parseStorageUrl, type StorageLocation } from './url.ts';
