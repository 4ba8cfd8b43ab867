// Writes crds/*.yaml from the zod schemas. `npm run generate`.
import { writeFileSync } from 'node:fs';
import { renderCustomResourceDefinitions } from './render.ts';

for (const { file, yaml } of renderCustomResourceDefinitions()) {
  writeFileSync(new URL(file, import.meta.url), yaml);
  console.log(`wrote crds/${file}`);
}
