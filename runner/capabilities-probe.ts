// Prints the capabilities of one destination connector as JSON: `node runner/capabilities-probe.ts <type>`.
// The operator runs this in a child process so that it never loads connector drivers (DuckDB, cloud SDKs)
// itself: they would stay in its memory for good, and it needs only this small JSON.
import { destinationConnector } from '../connectors/registry.ts';
import { describeError } from '../core/errors.ts';

try {
  const connector = await destinationConnector((process.argv[2] ?? '') as never);
  process.stdout.write(JSON.stringify({ ok: true, capabilities: connector.capabilities }));
} catch (error) {
  const { reason, message } = describeError(error, 'ConnectorLoadFailed');
  process.stdout.write(JSON.stringify({ ok: false, reason, message }));
}
// Drivers may hold handles open; the answer is out.
process.exit(0);
