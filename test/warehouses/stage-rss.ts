// Stages one model in a child process with the engine's embedded DuckDB settings and prints, as one JSON
// line, the row count and the process's peak resident memory. Used by memory.test.ts: measuring in a fresh
// process keeps the figure free of whatever the test runner itself holds.
// Usage: node stage-rss.ts '<json {type, source, model}>'   (Secrets come from SYNCLINE_SECRET_* variables)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import { sourceConnector } from '../../connectors/registry.ts';
import { captureLogger } from '../../connectors/shared/test-context.ts';
import { openEmbeddedDuck } from '../../runner/duck.ts';
import { secretResolver } from '../../core/secrets.ts';

const input = JSON.parse(process.argv[2] ?? '{}') as { source: SourceSpec; model: ModelSpec };
const connector = await sourceConnector(input.source.type);
const duck = await openEmbeddedDuck();
const tmpDir = mkdtempSync(join(tmpdir(), 'syncline-rss-'));
let peakHeap = 0;
const sampler = setInterval(() => (peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)), 50);
try {
  const result = await connector.stage({
    secrets: secretResolver(process.env),
    log: captureLogger(),
    signal: new AbortController().signal,
    tmpDir,
    source: input.source,
    model: input.model,
    duck: duck.connection,
    table: 'staged',
    labels: { namespace: 'bench', sync: 'memory', runId: 'rss' },
  });
  const maxRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  console.log(JSON.stringify({ rows: result.rows, maxRssMb, peakHeapMb: Math.round(peakHeap / 2 ** 20) }));
} finally {
  clearInterval(sampler);
  duck.close();
  rmSync(tmpDir, { recursive: true, force: true });
}
