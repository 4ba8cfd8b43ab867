// Writes the chart's generated files (CRD templates, alerts, dashboard) and argocd/argocd-cm.yaml.
// `npm run generate:chart`, chained after the CRD generator by `npm run generate`.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO_DIR, renderGeneratedFiles, staleChartFiles } from './render.ts';

for (const path of staleChartFiles()) {
  rmSync(join(REPO_DIR, path));
  console.log(`removed ${path}`);
}
for (const { path, content } of renderGeneratedFiles()) {
  mkdirSync(dirname(join(REPO_DIR, path)), { recursive: true });
  writeFileSync(join(REPO_DIR, path), content);
  console.log(`wrote ${path}`);
}
