// The Python client's own tests (unittest, against a fake run API in a thread), run as part of `npm test`.
import { describe, expect, it } from 'vitest';
import { unittestSuite } from './run-unittest.ts';

describe('the Python client (clients/python)', () => {
  it('passes its unittest suite against a fake run API', async () => {
    const { ran, output } = await unittestSuite('clients/python/tests');
    expect(ran).toBeGreaterThanOrEqual(20);
    expect(output).toMatch(/^test_tls_with_a_ca_file .* ok$/m);
    expect(output).not.toMatch(/skipped/);
  }, 120_000);
});
