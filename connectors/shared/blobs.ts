// Remote folders (s3://, gs://) of the files connectors go through the runner's BlobStore.
import { openBlobStore, type BlobStore } from '../../runner/storage/index.ts';
import type { SecretResolver } from '../../runner/secrets.ts';
import type { S3Credentials, GcsCredentials } from '../../runner/storage/index.ts';

export function remoteStore(
  url: string,
  settings: { s3?: S3Credentials; gcs?: GcsCredentials },
  secrets: SecretResolver,
): BlobStore {
  return openBlobStore(url, { s3: settings.s3, gcs: settings.gcs, secrets });
}
