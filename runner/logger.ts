import { pino, type Logger as PinoLogger } from 'pino';

/**
 * JSON lines through pino: to stdout in a runner pod (where the cluster collects them), to stderr from
 * the CLI (whose stdout carries results). Never log a credential.
 */
export function createLogger(options: { level?: string; fd?: 1 | 2 } = {}): PinoLogger {
  return pino(
    {
      level: options.level ?? process.env['SYNCLINE_LOG_LEVEL'] ?? 'info',
      base: { component: 'syncline-runner' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: options.fd ?? 1, sync: true }),
  );
}

/** A logger that drops everything, for quiet CLI runs and tests. */
export function silentLogger(): PinoLogger {
  return pino({ level: 'silent' });
}
