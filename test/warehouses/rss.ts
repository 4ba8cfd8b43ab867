// Runs stage-rss.ts in a fresh Node process and returns its measurement.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';

export interface StageMeasurement {
  rows: number;
  maxRssMb: number;
  peakHeapMb: number;
}

/**
 * Stage in a child process whose JavaScript heap is capped at `heapLimitMb`: a connector that held the
 * result in memory would die of heap exhaustion there instead of finishing.
 */
export async function measureStage(
  source: SourceSpec,
  model: ModelSpec,
  env: Record<string, string>,
  heapLimitMb: number,
): Promise<StageMeasurement> {
  const script = new URL('./stage-rss.ts', import.meta.url).pathname;
  const args = [`--max-old-space-size=${heapLimitMb}`, script, JSON.stringify({ source, model })];
  const { stdout } = await promisify(execFile)(process.execPath, args, {
    env: { ...process.env, ...env },
    maxBuffer: 1 << 20,
  });
  const line = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as StageMeasurement;
}
