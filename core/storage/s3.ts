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
import type { BlobEntry, BlobStore, PutCondition, S3Credentials } from './index.ts';
import { assertRelativePath } from './url.ts';

/** Files up to this size go up in one PutObject; larger ones as a multipart upload of parts this size. */
export const S3_PART_SIZE = 16 * 1024 * 1024;

export function openS3Store(
  location: { url: string; bucket: string; prefix: string },
  credentials: S3Credentials,
  secrets: SecretResolver,
  options: { partSize?: number } = {},
): BlobStore {
  const { url, bucket } = location;
  const base = location.prefix ? `${location.prefix}/` : '';
  const secretValues: string[] = [];
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
  const client = new S3Client(config);
  const partSize = Math.max(options.partSize ?? S3_PART_SIZE, 5 * 1024 * 1024);

  const key = (path: string) => {
    assertRelativePath(path, url);
    return base + path;
  };
  const fail = (error: unknown, what: string) =>
    passThrough(error) ?? storageError(classify(error), what, url, secretValues);
  const conditionParams = (cond: PutCondition | undefined) =>
    cond === undefined ? {} : 'ifNoneMatch' in cond ? { IfNoneMatch: '*' } : { IfMatch: cond.ifMatch };

  async function listKeys(prefix: string): Promise<BlobEntry[]> {
    assertRelativePath(prefix, url, 'prefix');
    const entries: BlobEntry[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: base + prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) {
        if (!object.Key) continue;
        entries.push({
          path: object.Key.slice(base.length),
          size: object.Size ?? 0,
          updatedAt: (object.LastModified ?? new Date(0)).toISOString(),
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return entries;
  }

  return {
    url,

    async get(path) {
      try {
        const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key(path) }));
        const body = Buffer.from(await response.Body!.transformToByteArray());
        return { body, etag: response.ETag ?? '' };
      } catch (error) {
        if (isNoSuchKey(error)) return undefined;
        throw fail(error, `read ${path}`);
      }
    },

    async getToFile(path, localFile) {
      const temp = `${localFile}.${randomBytes(6).toString('hex')}.download`;
      try {
        const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key(path) }));
        await mkdir(dirname(localFile), { recursive: true });
        await pipeline(response.Body as Readable, createWriteStream(temp));
        await rename(temp, localFile);
        return true;
      } catch (error) {
        if (isNoSuchKey(error)) return false;
        throw fail(error, `download ${path}`);
      } finally {
        await rm(temp, { force: true });
      }
    },

    async put(path, body, cond) {
      try {
        const response = await client.send(
          new PutObjectCommand({ Bucket: bucket, Key: key(path), Body: body, ...conditionParams(cond) }),
        );
        return { etag: response.ETag ?? '' };
      } catch (error) {
        throw fail(error, `write ${path}`);
      }
    },

    async putFile(path, localFile, cond) {
      try {
        const objectKey = key(path);
        const { size } = await stat(localFile);
        if (size <= partSize) {
          const response = await client.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: objectKey,
              Body: createReadStream(localFile),
              ContentLength: size,
              ...conditionParams(cond),
            }),
          );
          return { etag: response.ETag ?? '' };
        }
        // Multipart: lib-storage passes the condition on to CompleteMultipartUpload, where S3 checks it.
        const upload = new Upload({
          client,
          params: {
            Bucket: bucket,
            Key: objectKey,
            Body: createReadStream(localFile),
            ContentLength: size,
            ...conditionParams(cond),
          },
          partSize,
          queueSize: 2,
          leavePartsOnError: false,
        });
        const response = await upload.done();
        return { etag: response.ETag ?? '' };
      } catch (error) {
        throw fail(error, `upload ${localFile} to ${path}`);
      }
    },

    async list(prefix) {
      try {
        return await listKeys(prefix);
      } catch (error) {
        throw fail(error, `list ${prefix || '/'}`);
      }
    },

    async delete(path) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(path) }));
      } catch (error) {
        if (isNoSuchKey(error)) return;
        throw fail(error, `delete ${path}`);
      }
    },

    async deletePrefix(prefix) {
      try {
        const entries = await listKeys(prefix);
        for (let i = 0; i < entries.length; i += 1000) {
          const batch = entries.slice(i, i + 1000);
          const response = await client.send(
            new DeleteObjectsCommand({
              Bucket: bucket,
              Delete: { Objects: batch.map((e) => ({ Key: base + e.path })), Quiet: true },
            }),
          );
          const failed = response.Errors ?? [];
          if (failed.length > 0) {
            const first = failed[0]!;
            throw new SynclineError(
              first.Code === 'AccessDenied' ? 'StorageAccessDenied' : 'StorageError',
              `cannot delete ${failed.length} object(s) under ${url}/${prefix}: ${first.Code ?? 'error'} on ${first.Key ?? '?'}`,
            );
          }
        }
        return entries.length;
      } catch (error) {
        throw fail(error, `delete ${prefix || '/'}`);
      }
    },
  };
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
