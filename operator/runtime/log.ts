import { randomUUID } from 'node:crypto';
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export interface LoggerOptions {
  name?: string;
  level?: string;
  /** Where JSON lines go; stdout by default (tests pass a stream to read them back). */
  destination?: DestinationStream;
}

/**
 * Paths that could carry a credential if a caller ever logs a raw object (a Secret, a request's headers).
 * Messages are written without credentials in the first place; this is the second line of defence.
 */
const REDACT = [
  'password',
  'token',
  'authorization',
  '*.password',
  '*.token',
  '*.authorization',
  'headers.authorization',
  'headers.Authorization',
  'data',
  '*.data',
  'stringData',
  '*.stringData',
];

/** The operator's JSON logger: one line per entry, ISO timestamps, level names, credentials redacted. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const config = {
    name: options.name ?? 'syncline-operator',
    level: options.level ?? process.env['SYNCLINE_LOG_LEVEL'] ?? 'info',
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: { paths: REDACT, censor: '[redacted]' },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}

/** Splits a work-queue key "namespace/name" (or "name" for cluster-scoped objects). */
export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return slash < 0
    ? { namespace: '', name: key }
    : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** The key of an object as work queues and informers use it. */
export function objectKey(obj: { metadata?: { namespace?: string; name?: string } }): string {
  const namespace = obj.metadata?.namespace ?? '';
  const name = obj.metadata?.name ?? '';
  return namespace ? `${namespace}/${name}` : name;
}

/** A child logger for one reconcile of one object: every line carries namespace, name and a reconcile id. */
export function reconcileLogger(log: Logger, key: string, extra: Record<string, unknown> = {}): Logger {
  const { namespace, name } = splitKey(key);
  return log.child({ namespace, name, reconcileId: randomUUID(), ...extra });
}
