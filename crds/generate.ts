// Writes crds/*.yaml from the zod schemas, and docs/api/openapi.yaml from the API's routes. `npm run generate`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { API_ROUTES } from './api-routes.ts';
import { renderApiDocument } from './api-doc.ts';
import { renderCustomResourceDefinitions } from './render.ts';

for (const { file, yaml } of renderCustomResourceDefinitions()) {
  writeFileSync(new URL(file, import.meta.url), yaml);
  console.log(`wrote crds/${file}`);
}
mkdirSync(new URL('../docs/api/', import.meta.url), { recursive: true });
writeFileSync(new URL('../docs/api/openapi.yaml', import.meta.url), renderApiDocument(API_ROUTES));
console.log('wrote docs/api/openapi.yaml');
