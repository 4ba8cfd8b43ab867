import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { destinationConnector } from '../connectors/registry.ts';
import { probeCapabilities } from './capabilities.ts';
import { isTransientReason } from '../core/reasons.ts';

function script(body: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'syncline-probe-')), 'probe.mjs');
  writeFileSync(file, body);
  return file;
}

describe('probeCapabilities', () => {
  it("answers with the connector's own capabilities, read in a child process", async () => {
    const probed = await probeCapabilities('http');
    expect(probed).toEqual((await destinationConnector('http')).capabilities);
    expect(probed.modes).toContain('upsert');
  });

  it("keeps the connector's reason for a type it cannot load", async () => {
    await expect(probeCapabilities('no-such-type' as never)).rejects.toMatchObject({
      reason: 'UnknownConnector',
      message: expect.stringContaining('no-such-type'),
    });
  });

  it.each([
    ['times out', 'setTimeout(() => {}, 60_000);', 300],
    ['crashes', 'process.stderr.write("killed\\n"); process.exit(137);', 10_000],
  ])(
    'is transient (CapabilityProbeFailed, retryable) when its child process %s',
    async (_what, body, timeoutMs) => {
      const error = await probeCapabilities('http', { probe: script(body), timeoutMs }).catch(
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ reason: 'CapabilityProbeFailed', retryable: true });
      expect(isTransientReason((error as { reason: string }).reason)).toBe(true);
    },
  );
});
