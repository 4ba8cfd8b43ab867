import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export interface LoggerOptions {
  /** The `name` on every line: syncline-operator, syncline-runner, ... */
  name?: string;
  level?: string;
  /** Where JSON lines go (tests pass a stream to read them back); else `fd`. */
  destination?: DestinationStream;
  /** stdout (1) by default: where the cluster collects a pod's logs. The CLI logs to stderr (2), its stdout carries results. */
  fd?: 1 | 2;
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

/** One JSON logger for every Syncline process: one line per entry, ISO timestamps, level names, credentials redacted. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const config = {
    name: options.name ?? 'syncline',
    level: options.level ?? process.env['SYNCLINE_LOG_LEVEL'] ?? 'info',
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: { paths: REDACT, censor: '[redacted]' },
  };
  return pino(config, options.destination ?? pino.destination({ fd: options.fd ?? 1, sync: true }));
}

/** A logger that drops everything, for quiet CLI runs and tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
