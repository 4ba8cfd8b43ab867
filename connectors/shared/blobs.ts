// Remote folders (s3://, gs://) of the files connectors go through the runner's BlobStore.
import { openBlobStore, type BlobStore } from '../../core/storage/index.ts';
import type { SecretResolver } from '../../core/secrets.ts';
import type { S3Credentials, GcsCredentials } from '../../core/storage/index.ts';

export function remoteStore(
  url: string,
  settings: { s3?: S3Credentials; gcs?: GcsCredentials },
  secrets: SecretResolver,
): BlobStore {
  return openBlobStore(url, { s3: settings.s3, gcs: settings.gcs, secrets });
}
