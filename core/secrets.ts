import type { SecretKeySelector } from '../crds/index.ts';
import { SynclineError } from './errors.ts';

/** Resolves a `secretKeyRef` to its value. */
export type SecretResolver = (ref: SecretKeySelector) => string;

/**
 * The environment variable a runner pod receives a Secret key in. The operator sets `env[].valueFrom.
 * secretKeyRef` under this name; the embedded CLI reads the same name, so one YAML works in both places.
 * Example: Secret `pg-creds`, key `password` -> SYNCLINE_SECRET_PG_CREDS__PASSWORD.
 */
export function secretEnvName(ref: SecretKeySelector): string {
  const part = (s: string) => s.replace(/[^A-Za-z0-9]/g, '_').toUpperCase();
  return `SYNCLINE_SECRET_${part(ref.name)}__${part(ref.key)}`;
}

/**
 * An empty credential is never meant (a driver would fail with a message that names nothing, such as
 * "client password must be a string"): name the reference, where the value came from, and the fix.
 */
function nonEmpty(value: string, ref: SecretKeySelector, from: string): string {
  if (value !== '') return value;
  throw new SynclineError(
    'EmptySecret',
    `Secret "${ref.name}" key "${ref.key}" (a secretKeyRef) resolved to an empty value, from ${from}: ` +
      `put the credential there (in a cluster: kubectl create secret generic ${ref.name} --from-literal=${ref.key}=...; ` +
      `locally: ${secretEnvName(ref)} or the secrets file), or remove the field that references it if no credential is needed`,
  );
}

/**
 * Resolve from environment variables first, then from a map of Secret name -> key -> value (a local
 * secrets file for the embedded CLI; `origin` says where a key of it came from). The error names the
 * Secret and key, never a value.
 */
export function secretResolver(
  env: NodeJS.ProcessEnv,
  secrets: Record<string, Record<string, string>> = {},
  origin: (ref: SecretKeySelector) => string | undefined = () => undefined,
): SecretResolver {
  return (ref) => {
    const fromEnv = env[secretEnvName(ref)];
    if (fromEnv !== undefined)
      return nonEmpty(fromEnv, ref, `the environment variable ${secretEnvName(ref)}`);
    const fromFile = secrets[ref.name]?.[ref.key];
    if (fromFile !== undefined) return nonEmpty(fromFile, ref, origin(ref) ?? 'the secrets file');
    throw new SynclineError(
      'SecretNotFound',
      `Secret "${ref.name}" key "${ref.key}" is not available: set ${secretEnvName(ref)} or add it to the secrets file`,
    );
  };
}
