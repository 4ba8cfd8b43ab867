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
 * Resolve from environment variables first, then from a map of Secret name -> key -> value (a local
 * secrets file for the embedded CLI). The error names the Secret and key, never a value.
 */
export function secretResolver(
  env: NodeJS.ProcessEnv,
  secrets: Record<string, Record<string, string>> = {},
): SecretResolver {
  return (ref) => {
    const fromEnv = env[secretEnvName(ref)];
    if (fromEnv !== undefined) return fromEnv;
    const fromFile = secrets[ref.name]?.[ref.key];
    if (fromFile !== undefined) return fromFile;
    throw new SynclineError(
      'SecretNotFound',
      `Secret "${ref.name}" key "${ref.key}" is not available: set ${secretEnvName(ref)} or add it to the secrets file`,
    );
  };
}
