// The orchestrator examples against a fake run API: Airflow, Prefect and Mage with stand-ins for their
// decorators, Dagster with the real package (installed once into a venv in the test stack's cache).
import { beforeAll, describe, expect, it } from 'vitest';
import { unittestSuite } from '../../clients/python/run-unittest.ts';
import { ensureOrchestratorVenv } from '../../test/stack/orchestrators.ts';

describe('the orchestrator examples (examples/orchestrators)', () => {
  let python: string;
  beforeAll(async () => {
    python = await ensureOrchestratorVenv();
  }, 600_000);

  it('call the run API from each orchestrator, Dagster for real', async () => {
    const { ran, output } = await unittestSuite('examples/orchestrators/tests', {
      executable: python,
      env: { DO_NOT_TRACK: '1', DAGSTER_DISABLE_TELEMETRY: '1' },
    });
    expect(ran).toBeGreaterThanOrEqual(9);
    expect(output).not.toMatch(/skipped/);
    // Dagster's own log lines come between a test's name and its "ok"; a skip or a failure shows above.
    for (const example of ['Airflow', 'Prefect', 'Mage', 'Dagster'])
      expect(output).toContain(`(test_examples.${example}Test.test_`);
  }, 120_000);
});
