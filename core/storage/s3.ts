import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { SynclineError } from '../errors.ts';
import type { SecretResolver } from '../secrets.ts';
import { networkErrorCode, passThrough, storageError, type Classified } from './errors.ts';
import type { BlobEntry, BlobStore, PutCondition, ReadOptions, S3Credentials } from './index.ts';
import { assertRelativePath } from './url.ts';

/** Files up to this size go up in one PutObject; larger ones as a multipart upload of parts this size. */
export const S3_PART_SIZE = 16 * 1024 * 1024;

export function openS3Store(
  location: { url: string; bucket: string; prefix: string },
  credentials: S3Credentials,
  secrets: SecretResolver,
  options: { partSize?: number } = {},
): BlobStore {
  return new S3Store(location, credentials, secrets, options);
}

class S3Store implements BlobStore {
  readonly url: string;
  private readonly bucket: string;
  private readonly base: string;
  /** Secret values to redact from error messages. */
  private readonly secretValues: string[] = [];
  private readonly client: S3Client;
  private readonly partSize: number;

  constructor(
    location: { url: string; bucket: string; prefix: string },
    credentials: S3Credentials,
    secrets: SecretResolver,
    options: { partSize?: number },
  ) {
    this.url = location.url;
    this.bucket = location.bucket;
    this.base = location.prefix ? `${location.prefix}/` : '';
    this.client = new S3Client(clientConfig(credentials, secrets, this.url, this.secretValues));
    this.partSize = Math.max(options.partSize ?? S3_PART_SIZE, 5 * 1024 * 1024);
  }

  async get(path: string, options: ReadOptions = {}): Promise<{ body: Buffer; etag: string } | undefined> {
    try {
      options.signal?.throwIfAborted();
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.key(path) }),
        options.signal ? { abortSignal: options.signal } : {},
      );
      const body = Buffer.from(await response.Body!.transformToByteArray());
      return { body, etag: response.ETag ?? '' };
    } catch (error) {
      if (isNoSuchKey(error)) return undefined;
      if (options.signal?.aborted) throw options.signal.reason;
      throw this.fail(error, `read ${path}`);
    }
  }

  async getToFile(path: string, localFile: string): Promise<boolean> {
    const temp = `${localFile}.${randomBytes(6).toString('hex')}.download`;
    try {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.key(path) }),
      );
      await mkdir(dirname(localFile), { recursive: true });
      await pipeline(response.Body as Readable, createWriteStream(temp));
      await rename(temp, localFile);
      return true;
    } catch (error) {
      if (isNoSuchKey(error)) return false;
      throw this.fail(error, `download ${path}`);
    } finally {
      await rm(temp, { force: true });
    }
  }

  async put(path: string, body: Buffer | string, cond?: PutCondition): Promise<{ etag: string }> {
    try {
      const response = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key(path),
          Body: body,
          ...conditionParams(cond),
        }),
      );
      return { etag: response.ETag ?? '' };
    } catch (error) {
      throw this.fail(error, `write ${path}`);
    }
  }

  async putFile(path: string, localFile: string, cond?: PutCondition): Promise<{ etag: string }> {
    try {
      const objectKey = this.key(path);
      const { size } = await stat(localFile);
      return size <= this.partSize
        ? await this.putWhole(objectKey, localFile, size, cond)
        : await this.putMultipart(objectKey, localFile, size, cond);
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
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(path) }));
    } catch (error) {
      if (isNoSuchKey(error)) return;
      throw this.fail(error, `delete ${path}`);
    }
  }

  async deletePrefix(prefix: string): Promise<number> {
    try {
      const entries = await this.listKeys(prefix);
      for (let i = 0; i < entries.length; i += 1000)
        await this.deleteBatch(entries.slice(i, i + 1000), prefix);
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

  /** One PutObject. */
  private async putWhole(
    objectKey: string,
    localFile: string,
    size: number,
    cond: PutCondition | undefined,
  ): Promise<{ etag: string }> {
    const response = await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: objectKey,
        Body: createReadStream(localFile),
        ContentLength: size,
        ...conditionParams(cond),
      }),
    );
    return { etag: response.ETag ?? '' };
  }

  /** Multipart: lib-storage passes the condition on to CompleteMultipartUpload, where S3 checks it. */
  private async putMultipart(
    objectKey: string,
    localFile: string,
    size: number,
    cond: PutCondition | undefined,
  ): Promise<{ etag: string }> {
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: objectKey,
        Body: createReadStream(localFile),
        ContentLength: size,
        ...conditionParams(cond),
      },
      partSize: this.partSize,
      queueSize: 2,
      leavePartsOnError: false,
    });
    const response = await upload.done();
    return { etag: response.ETag ?? '' };
  }

  /** One DeleteObjects request (at most 1000 keys); any object it could not delete fails the call. */
  private async deleteBatch(batch: BlobEntry[], prefix: string): Promise<void> {
    const response = await this.client.send(
      new DeleteObjectsCommand({
        Bucket: this.bucket,
        Delete: { Objects: batch.map((e) => ({ Key: this.base + e.path })), Quiet: true },
      }),
    );
    const failed = response.Errors ?? [];
    if (failed.length > 0) {
      const first = failed[0]!;
      throw new SynclineError(
        first.Code === 'AccessDenied' ? 'StorageAccessDenied' : 'StorageError',
        `cannot delete ${failed.length} object(s) under ${this.url}/${prefix}: ${first.Code ?? 'error'} on ${first.Key ?? '?'}`,
      );
    }
  }

  private async listKeys(prefix: string): Promise<BlobEntry[]> {
    assertRelativePath(prefix, this.url, 'prefix');
    const entries: BlobEntry[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.base + prefix,
          ContinuationToken: token,
        }),
      );
      for (const object of page.Contents ?? []) {
        if (!object.Key) continue;
        entries.push({
          path: object.Key.slice(this.base.length),
          size: object.Size ?? 0,
          updatedAt: (object.LastModified ?? new Date(0)).toISOString(),
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return entries;
  }
}

/** The client's configuration: region, retries, timeouts, endpoint and keys (their values noted in `secretValues`). */
function clientConfig(
  credentials: S3Credentials,
  secrets: SecretResolver,
  url: string,
  secretValues: string[],
): S3ClientConfig {
  const config: S3ClientConfig = {
    region:
      credentials.region ?? process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'] ?? 'us-east-1',
    maxAttempts: 4,
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 300_000 },
  };
  if (credentials.endpoint) config.endpoint = credentials.endpoint;
  if (credentials.forcePathStyle !== undefined) config.forcePathStyle = credentials.forcePathStyle;
  if (credentials.accessKeyId || credentials.secretAccessKey) {
    if (!credentials.accessKeyId || !credentials.secretAccessKey) {
      throw new SynclineError(
        'InvalidStorageCredentials',
        `s3 credentials for ${url} need both accessKeyId and secretAccessKey, or neither (workload identity)`,
      );
    }
    const accessKeyId = secrets(credentials.accessKeyId.secretKeyRef);
    const secretAccessKey = secrets(credentials.secretAccessKey.secretKeyRef);
    secretValues.push(accessKeyId, secretAccessKey);
    config.credentials = { accessKeyId, secretAccessKey };
  }
  return config;
}

function conditionParams(cond: PutCondition | undefined) {
  return cond === undefined
    ? {}
    : 'ifNoneMatch' in cond
      ? { IfNoneMatch: '*' as const }
      : { IfMatch: cond.ifMatch };
}

function errorName(error: unknown): string {
  const e = error as { name?: unknown; Code?: unknown };
  return typeof e?.Code === 'string' ? e.Code : typeof e?.name === 'string' ? e.name : '';
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function isNoSuchKey(error: unknown): boolean {
  const name = errorName(error);
  return name === 'NoSuchKey' || (name === 'NotFound' && httpStatus(error) === 404);
}

function classify(error: unknown): Classified {
  const name = errorName(error);
  const status = httpStatus(error);
  const network = networkErrorCode(error);
  if (network && status === undefined)
    return { reason: 'StorageUnreachable', detail: `endpoint unreachable (${network})`, retryable: true };
  if (name === 'NoSuchBucket')
    return { reason: 'StorageBucketNotFound', detail: 'the bucket does not exist', retryable: false };
  if (
    status === 412 ||
    name === 'PreconditionFailed' ||
    name === 'ConditionalRequestConflict' ||
    (status === 409 && name !== 'BucketAlreadyExists')
  ) {
    return {
      reason: 'PreconditionFailed',
      detail: `the object changed meanwhile (${name || status})`,
      retryable: false,
    };
  }
  if (
    status === 401 ||
    status === 403 ||
    [
      'AccessDenied',
      'InvalidAccessKeyId',
      'SignatureDoesNotMatch',
      'ExpiredToken',
      'InvalidToken',
      'CredentialsProviderError',
    ].includes(name)
  ) {
    return { reason: 'StorageAccessDenied', detail: `access denied (${name || status})`, retryable: false };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    reason: 'StorageError',
    detail: `${name || 'error'}${status ? ` (HTTP ${status})` : ''}: ${message}`,
    retryable: status === undefined || status >= 500 || status === 429,
  };
}
