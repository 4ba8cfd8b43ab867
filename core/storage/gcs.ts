import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { addAbortSignal } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import {
  Storage,
  type Bucket,
  type File,
  type PreconditionOptions,
  type StorageOptions,
} from '@google-cloud/storage';
import { SynclineError } from '../errors.ts';
import type { SecretResolver } from '../secrets.ts';
import { networkErrorCode, passThrough, storageError, type Classified } from './errors.ts';
import type { BlobEntry, BlobStore, GcsCredentials, PutCondition, ReadOptions } from './index.ts';
import { assertRelativePath } from './url.ts';

/** Files above this size are uploaded with a resumable upload (chunked), smaller ones in one request. */
const RESUMABLE_ABOVE = 8 * 1024 * 1024;

/**
 * Google Cloud Storage. The etag is the object's generation, so conditional puts are
 * `ifGenerationMatch` (and `ifNoneMatch: '*'` is `ifGenerationMatch: 0`, "must not exist").
 */
export function openGcsStore(
  location: { url: string; bucket: string; prefix: string },
  credentials: GcsCredentials,
  secrets: SecretResolver,
): BlobStore {
  return new GcsStore(location, credentials, secrets);
}

class GcsStore implements BlobStore {
  readonly url: string;
  private readonly base: string;
  /** Secret values to redact from error messages. */
  private readonly secretValues: string[] = [];
  private readonly bucket: Bucket;

  constructor(
    location: { url: string; bucket: string; prefix: string },
    credentials: GcsCredentials,
    secrets: SecretResolver,
  ) {
    this.url = location.url;
    this.base = location.prefix ? `${location.prefix}/` : '';
    const options = storageOptions(credentials, secrets, this.url, this.secretValues);
    this.bucket = new Storage(options).bucket(location.bucket);
  }

  async get(path: string, options: ReadOptions = {}): Promise<{ body: Buffer; etag: string } | undefined> {
    const { signal } = options;
    signal?.throwIfAborted();
    try {
      return await this.withCurrentGeneration(path, `read ${path}`, async (file, etag) => {
        if (!signal) return { body: (await file.download())[0], etag };
        // download() takes no signal; a read stream can be destroyed by one.
        return { body: await buffer(addAbortSignal(signal, file.createReadStream())), etag };
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw error;
    }
  }

  async getToFile(path: string, localFile: string): Promise<boolean> {
    const temp = `${localFile}.${randomBytes(6).toString('hex')}.download`;
    try {
      await mkdir(dirname(localFile), { recursive: true });
      const done = await this.withCurrentGeneration(path, `download ${path}`, async (file) => {
        await pipeline(file.createReadStream(), createWriteStream(temp));
        await rename(temp, localFile);
        return true;
      });
      return done ?? false;
    } catch (error) {
      throw this.fail(error, `download ${path}`);
    } finally {
      await rm(temp, { force: true });
    }
  }

  async put(path: string, body: Buffer | string, cond?: PutCondition): Promise<{ etag: string }> {
    const file = this.bucket.file(this.key(path));
    try {
      assertGenerationEtag(cond, this.url, path);
      const preconditionOpts = precondition(cond);
      await file.save(typeof body === 'string' ? Buffer.from(body) : body, {
        resumable: false,
        ...(preconditionOpts ? { preconditionOpts } : {}),
      });
      return { etag: String(file.metadata.generation) };
    } catch (error) {
      throw this.fail(error, `write ${path}`);
    }
  }

  async putFile(path: string, localFile: string, cond?: PutCondition): Promise<{ etag: string }> {
    try {
      assertGenerationEtag(cond, this.url, path);
      const { size } = await stat(localFile);
      const preconditionOpts = precondition(cond);
      const [file] = await this.bucket.upload(localFile, {
        destination: this.key(path),
        resumable: size > RESUMABLE_ABOVE,
        ...(preconditionOpts ? { preconditionOpts } : {}),
      });
      return { etag: String(file.metadata.generation) };
    } catch (error) {
      throw this.fail(error, `upload ${localFile} to ${path}`);
    }
  }

  async list(prefix: string): Promise<BlobEntry[]> {
    try {
      return await this.listKeys(prefix);
    } catch (error) {
      throw this.fail(error, `list ${prefix || '/'}`);
    }
  }

  async delete(path: string): Promise<void> {
    try {
      await this.bucket.file(this.key(path)).delete({ ignoreNotFound: true });
    } catch (error) {
      throw this.fail(error, `delete ${path}`);
    }
  }

  async deletePrefix(prefix: string): Promise<number> {
    try {
      const entries = await this.listKeys(prefix);
      const parallel = 8;
      for (let i = 0; i < entries.length; i += parallel) {
        await Promise.all(
          entries
            .slice(i, i + parallel)
            .map((e) => this.bucket.file(this.base + e.path).delete({ ignoreNotFound: true })),
        );
      }
      return entries.length;
    } catch (error) {
      throw this.fail(error, `delete ${prefix || '/'}`);
    }
  }

  private key(path: string): string {
    assertRelativePath(path, this.url);
    return this.base + path;
  }

  private fail(error: unknown, what: string): SynclineError {
    return passThrough(error) ?? storageError(classify(error), what, this.url, this.secretValues);
  }

  /** A 404 means "no such object" only when the bucket exists. */
  private async absentOrThrow(error: unknown, what: string): Promise<undefined> {
    if (statusOf(error) !== 404) throw this.fail(error, what);
    const [bucketExists] = await this.bucket.exists().catch((inner: unknown) => {
      throw this.fail(inner, what);
    });
    if (!bucketExists)
      throw storageError(
        { reason: 'StorageBucketNotFound', detail: 'the bucket does not exist', retryable: false },
        what,
        this.url,
        this.secretValues,
      );
    return undefined;
  }

  /** The current generation's file, pinned so that body and etag belong together. */
  private async pinned(path: string): Promise<{ file: File; generation: string }> {
    const [metadata] = await this.bucket.file(this.key(path)).getMetadata();
    const generation = String(metadata.generation);
    return { file: this.bucket.file(this.key(path), { generation }), generation };
  }

  private async listKeys(prefix: string): Promise<BlobEntry[]> {
    assertRelativePath(prefix, this.url, 'prefix');
    const [files] = await this.bucket.getFiles({ prefix: this.base + prefix, autoPaginate: true });
    return files.map((file) => ({
      path: file.name.slice(this.base.length),
      size: Number(file.metadata.size ?? 0),
      updatedAt: new Date(file.metadata.updated ?? file.metadata.timeCreated ?? 0).toISOString(),
    }));
  }

  /** The object may be replaced between reading its generation and its body: then read again. */
  private async withCurrentGeneration<T>(
    path: string,
    what: string,
    read: (file: File, generation: string) => Promise<T>,
  ): Promise<T | undefined> {
    for (let attempt = 0; ; attempt++) {
      let current;
      try {
        current = await this.pinned(path);
      } catch (error) {
        return this.absentOrThrow(error, what);
      }
      try {
        return await read(current.file, current.generation);
      } catch (error) {
        if (statusOf(error) !== 404 || attempt >= 4) throw this.fail(error, what);
      }
    }
  }
}

/** The client's options: retries, project, endpoint and the service-account key (its secrets noted in `secretValues`). */
function storageOptions(
  credentials: GcsCredentials,
  secrets: SecretResolver,
  url: string,
  secretValues: string[],
): StorageOptions {
  const options: StorageOptions = {
    retryOptions: {
      autoRetry: true,
      maxRetries: 3,
      retryDelayMultiplier: 2,
      maxRetryDelay: 8,
      totalTimeout: 120,
    },
  };
  if (credentials.projectId) options.projectId = credentials.projectId;
  if (credentials.endpoint) options.apiEndpoint = credentials.endpoint;
  if (credentials.serviceAccountKey) {
    const raw = secrets(credentials.serviceAccountKey.secretKeyRef);
    secretValues.push(raw);
    const key = parseServiceAccountKey(raw, url, credentials.serviceAccountKey.secretKeyRef.name);
    secretValues.push(key.private_key);
    options.credentials = key as StorageOptions['credentials'];
    if (!options.projectId && typeof key.project_id === 'string') options.projectId = key.project_id;
    // An explicit key is meant to be used, also against a custom endpoint (private or restricted API).
    options.useAuthWithCustomEndpoint = true;
  }
  return options;
}

function parseServiceAccountKey(
  raw: string,
  url: string,
  secretName: string,
): { client_email: string; private_key: string; project_id?: unknown } {
  let key: { client_email?: unknown; private_key?: unknown; project_id?: unknown };
  try {
    key = JSON.parse(raw) as typeof key;
  } catch {
    throw new SynclineError(
      'InvalidStorageCredentials',
      `the service-account key for ${url} (Secret "${secretName}") is not valid JSON`,
    );
  }
  if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string') {
    throw new SynclineError(
      'InvalidStorageCredentials',
      `the service-account key for ${url} (Secret "${secretName}") lacks client_email or private_key`,
    );
  }
  return key as { client_email: string; private_key: string; project_id?: unknown };
}

function precondition(cond: PutCondition | undefined): PreconditionOptions | undefined {
  return cond === undefined ? undefined : { ifGenerationMatch: 'ifNoneMatch' in cond ? 0 : cond.ifMatch };
}

/** Our etags are generations; any other etag (say, from another store) cannot match. */
function assertGenerationEtag(cond: PutCondition | undefined, url: string, path: string): void {
  if (cond && 'ifMatch' in cond && !/^[1-9][0-9]*$/.test(cond.ifMatch)) {
    throw new SynclineError(
      'PreconditionFailed',
      `cannot write ${path} in ${url}: etag "${cond.ifMatch}" is not a generation of this object`,
      { retryable: false }, // as classify() says: the caller reads again, retrying the write cannot help
    );
  }
}

function statusOf(error: unknown): number | undefined {
  const e = error as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  for (const candidate of [e?.code, e?.status, e?.response?.status]) {
    if (typeof candidate === 'number') return candidate;
  }
  return undefined;
}

function classify(error: unknown): Classified {
  const status = statusOf(error);
  const message = error instanceof Error ? error.message : String(error);
  const network = networkErrorCode(error);
  if (network && status === undefined)
    return { reason: 'StorageUnreachable', detail: `endpoint unreachable (${network})`, retryable: true };
  if (status === 412)
    return { reason: 'PreconditionFailed', detail: 'the object changed meanwhile (412)', retryable: false };
  // Object-level 404s are handled where they mean "absent" (get, delete); any other 404 is the bucket.
  if (status === 404)
    return { reason: 'StorageBucketNotFound', detail: 'the bucket does not exist', retryable: false };
  if (
    status === 401 ||
    status === 403 ||
    /invalid_grant|invalid_client|unauthorized_client|Could not load the default credentials/i.test(message)
  ) {
    return {
      reason: 'StorageAccessDenied',
      detail: `access denied (${status ?? 'token refused'})`,
      retryable: false,
    };
  }
  return {
    reason: 'StorageError',
    detail: `${status ? `HTTP ${status}: ` : ''}${message}`,
    retryable: status === undefined || status >= 500 || status === 429,
  };
}
