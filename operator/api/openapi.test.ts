import { readFileSync } from 'node:fs';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { API_ROUTES } from '../../crds/api-routes.ts';
import { renderApiDocument } from '../../crds/api-doc.ts';
import { runList, runView } from '../../crds/index.ts';
import { sync } from '../testdata/fixtures.ts';
import { buildApiApp, routesOf } from './server.ts';
import { FakeApiKube } from './testing.ts';
import { defaultConfig } from '../config.ts';
import { consoleRoutes } from './routes-console.ts';
import { webhookRoutes } from './webhooks/index.ts';

describe('the OpenAPI document of the API (docs/api/openapi.yaml)', () => {
  it('is up to date (run npm run generate)', () => {
    const committed = readFileSync(new URL('../../docs/api/openapi.yaml', import.meta.url), 'utf8');
    expect(committed).toBe(renderApiDocument(API_ROUTES));
  });

  it('documents every route the run API serves, and no route it does not serve', async () => {
    const app = await buildApiApp({
      kube: new FakeApiKube(),
      log: pino({ level: 'silent' }),
      plugins: [webhookRoutes([]), consoleRoutes({ config: defaultConfig(), secrets: () => '' })],
    });
    const served = routesOf(app).map((r) => r.replace(/:(\w+)/g, '{$1}'));
    const documented = API_ROUTES.map((r) => `${r.method.toUpperCase()} ${r.path}`);
    expect(served.sort()).toEqual(documented.sort());
    await app.close();
  });

  it('describes the bodies the server answers with', async () => {
    const kube = new FakeApiKube();
    kube.putSync(sync());
    kube.addUser('t', 'ci');
    for (const verb of ['get', 'trigger']) kube.allow({ user: 'ci', verb, namespace: 'team' });
    const app = await buildApiApp({ kube, log: pino({ level: 'silent' }) });
    const url = '/api/v1/namespaces/team/syncs/customers-to-crm/runs';
    const posted = await app.inject({ method: 'POST', url, headers: { authorization: 'Bearer t' } });
    expect(runView.strict().safeParse(posted.json()).success).toBe(true);
    const listed = await app.inject({ method: 'GET', url, headers: { authorization: 'Bearer t' } });
    expect(runList.safeParse(listed.json()).success).toBe(true);
    expect(listed.json().items).toHaveLength(1);
    await app.close();
  });
});
