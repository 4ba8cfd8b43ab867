import { describe, expect, it } from 'vitest';
import { Pipeline } from './pipeline.ts';

describe('Pipeline', () => {
  it('times each stage into its phase timing, reports phases, and names the stage that failed', async () => {
    const phases: string[] = [];
    const pipeline = new Pipeline((phase) => phases.push(phase));
    expect(await pipeline.stage('query', () => 1)).toBe(1);
    await pipeline.stage('fetch', async () => new Promise((r) => setTimeout(r, 20)));
    await expect(
      pipeline.stage('diff', () => {
        throw new Error('broken');
      }),
    ).rejects.toThrow('broken');
    expect(pipeline.current).toBe('diff');
    const { timings } = pipeline.finish();
    expect(phases).toEqual(['Querying', 'Diffing']);
    expect(timings.queryMs).toBeGreaterThan(0);
    expect(timings.diffMs).toBeDefined();
    expect(timings.totalMs).toBeGreaterThanOrEqual(timings.queryMs ?? 0);
  });
});
