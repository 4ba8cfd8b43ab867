import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DestinationCapabilities } from '../core/connectors.ts';
import type { DestinationType } from '../crds/index.ts';
import { SynclineError } from '../core/errors.ts';

const PROBE = fileURLToPath(new URL('../runner/capabilities-probe.ts', import.meta.url));

type ProbeAnswer =
  { ok: true; capabilities: DestinationCapabilities } | { ok: false; reason: string; message: string };

/**
 * The capabilities of a destination connector, read by a short child process: loading the connector here
 * would keep its drivers (DuckDB's native bindings, cloud SDKs: 50–150 MB) in the operator for good.
 * The connector's own answers (an unknown type, a type that is not a destination) keep their reasons; a
 * probe that gives no answer (it timed out, crashed, was killed) is `CapabilityProbeFailed`, transient:
 * nothing is wrong with the Sync, and the next probe may well answer.
 */
export function probeCapabilities(
  type: DestinationType,
  options: { timeoutMs?: number; /** The probe script (tests). */ probe?: string } = {},
): Promise<DestinationCapabilities> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [options.probe ?? PROBE, type],
      { timeout: options.timeoutMs ?? 60_000, maxBuffer: 1 << 20 },
      (error, stdout, stderr) => {
        let answer: ProbeAnswer | undefined;
        try {
          answer = JSON.parse(stdout) as ProbeAnswer;
        } catch {
          const detail = (error?.message ?? stderr).trim().split('\n').slice(-3).join(' ');
          reject(
            new SynclineError(
              'CapabilityProbeFailed',
              `could not read the capabilities of the "${type}" connector: ${detail || 'no answer'}; retrying`,
              { retryable: true },
            ),
          );
          return;
        }
        if (answer.ok) resolve(answer.capabilities);
        else reject(new SynclineError(answer.reason, answer.message));
      },
    );
  });
}
