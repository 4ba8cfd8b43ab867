// Reading dbt's manifest.json from where a Model says it is: a ConfigMap key (through the caller), an
// object-storage or https:// URL, or a local file. Only the fields Syncline needs are typed.
import { readFile } from 'node:fs/promises';
import type { ModelSpec } from '../../crds/index.ts';
import { SynclineError, isSynclineError } from '../../core/errors.ts';
import type { SecretResolver } from '../../core/secrets.ts';
import { openBlobStore } from '../../core/storage/index.ts';

export interface ManifestNode {
  unique_id: string;
  resource_type: string;
  name: string;
  package_name: string;
  database?: string | null;
  schema: string;
  alias?: string | null;
  relation_name?: string | null;
  version?: string | number | null;
  latest_version?: string | number | null;
  config?: { materialized?: string; unique_key?: string | string[] | null; enabled?: boolean };
  constraints?: { type: string; columns?: string[] }[];
  columns?: Record<string, { name: string; constraints?: { type: string }[] }>;
}

export interface Manifest {
  metadata: {
    dbt_schema_version?: string;
    dbt_version?: string;
    adapter_type?: string;
    project_name?: string;
  };
  nodes: Record<string, ManifestNode>;
  disabled?: Record<string, ManifestNode[]>;
}

export interface ManifestContext {
  secrets: SecretResolver;
  readConfigMap?: (name: string, key: string) => Promise<string>;
  tmpDir: string;
}

type ManifestLocation = NonNullable<ModelSpec['dbt']>['manifest'];

function describeLocation(location: ManifestLocation): string {
  if (location.configMapRef)
    return `ConfigMap "${location.configMapRef.name}" key "${location.configMapRef.key ?? 'manifest.json'}"`;
  return location.url ?? location.path ?? 'the manifest';
}

function unreadable(location: ManifestLocation, why: string, cause?: unknown): SynclineError {
  return new SynclineError(
    'DbtManifestUnreadable',
    `cannot read the dbt manifest from ${describeLocation(location)}: ${why}`,
    {
      cause,
    },
  );
}

async function readText(location: ManifestLocation, ctx: ManifestContext): Promise<string> {
  if (location.configMapRef) {
    if (!ctx.readConfigMap)
      throw unreadable(location, 'ConfigMaps cannot be read here (the run plan should carry the manifest)');
    return ctx.readConfigMap(location.configMapRef.name, location.configMapRef.key ?? 'manifest.json');
  }
  if (location.path !== undefined) return readFile(location.path, 'utf8');
  const url = location.url ?? '';
  if (/^https?:\/\//i.test(url)) {
    const response = await fetch(url, { signal: AbortSignal.timeout(60_000) });
    if (!response.ok) throw unreadable(location, `HTTP ${response.status} ${response.statusText}`);
    return response.text();
  }
  const match = /^((?:s3|gs):\/\/.+)\/([^/]+)$/.exec(url);
  if (!match)
    throw unreadable(location, 'the URL must be s3://bucket/path/manifest.json, gs://... or https://...');
  const object = await openBlobStore(match[1] ?? '', { secrets: ctx.secrets }).get(match[2] ?? '');
  if (!object) throw unreadable(location, 'the object does not exist');
  return object.body.toString('utf8');
}

export async function loadManifest(location: ManifestLocation, ctx: ManifestContext): Promise<Manifest> {
  let text: string;
  try {
    text = await readText(location, ctx);
  } catch (error) {
    if (isSynclineError(error) && error.reason === 'DbtManifestUnreadable') throw error;
    const why = isSynclineError(error) ? `${error.reason}: ${error.message}` : (error as Error).message;
    throw unreadable(location, why, error);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw unreadable(location, `it is not JSON (${(error as Error).message})`, error);
  }
  const manifest = parsed as Partial<Manifest> | null;
  if (
    !manifest ||
    typeof manifest !== 'object' ||
    typeof manifest.nodes !== 'object' ||
    manifest.nodes === null ||
    typeof manifest.metadata !== 'object'
  ) {
    throw unreadable(
      location,
      'it is not a dbt manifest.json (no metadata and nodes); use target/manifest.json from dbt parse, compile or run',
    );
  }
  return manifest as Manifest;
}
