import { describe, expect, it } from 'vitest';
import { destinationConnector } from '../connectors/registry.ts';
import { probeCapabilities } from './capabilities.ts';

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
});
