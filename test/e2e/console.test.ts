// The web console in a real browser: headless Chromium (Debian's, driven by playwright-core) against the
// operator process, which serves it on its API port, and the real kube-apiserver of the test stack,
// which authenticates the ServiceAccount tokens (TokenReview) and answers RBAC (SubjectAccessReview). The
// operator runs as a process and a real run (Postgres → an HTTP sink that rejects one row) fills the
// Sync's history and the diff store the run page reads.
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildConsole } from '../../operator/console/build.ts';
import { Agent } from '../agent/agent.ts';
import { ensureChromium } from '../stack/chromium.ts';
import { startOperator, type OperatorProcess } from './operator-process.ts';
import { applyScenario, startWarehouse, type Sink, type Warehouse } from './scenario.ts';
import { eventually, Kube, loadKubeConfig } from './support.ts';

const VIEWPORT = { width: 1280, height: 860 };
const REJECTED_ID = 3;
const REJECTION = 'is on the suppression list';

let kube: Kube;
let agent: Agent;
let sink: Sink;
let warehouse: Warehouse;
let operator: OperatorProcess;
let browser: Browser;
let dir: string;
let base: string;
let nsA: string;
let nsB: string;
const tokens = { alice: '', bob: '' };
const pageProblems: string[] = [];
let firstRunId: string;

/** An HTTP API that accepts every row but id 3, which it refuses with 422 and a reason. */
async function startRejectingSink(): Promise<Sink> {
  const received: Record<string, unknown>[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const row = body ? (JSON.parse(body) as Record<string, unknown>) : undefined;
      if (row) received.push(row);
      if (row && row['id'] === REJECTED_ID) {
        res
          .writeHead(422, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: `${String(row['email'])} ${REJECTION}` }));
      } else res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/contacts`,
    received,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A ServiceAccount with a Role of `verbs` on syncs in its namespace, and a token for it (TokenRequest). */
async function serviceAccountToken(namespace: string, name: string, verbs: string[]): Promise<string> {
  await kube.must('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name },
  });
  const rbac = `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}`;
  await kube.must('POST', `${rbac}/roles`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: `${name}-syncs` },
    rules: [{ apiGroups: ['syncline.io'], resources: ['syncs'], verbs }],
  });
  await kube.must('POST', `${rbac}/rolebindings`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: `${name}-syncs` },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${name}-syncs` },
    subjects: [{ kind: 'ServiceAccount', name, namespace }],
  });
  const request = await kube.must<{ status: { token: string } }>(
    'POST',
    `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
    { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  );
  return request.status.token;
}

beforeAll(async () => {
  const kubeconfigPath = inject('kubeconfigPath');
  dir = mkdtempSync(join(tmpdir(), 'syncline-console-e2e-'));
  const [executablePath] = await Promise.all([ensureChromium(), buildConsole(join(dir, 'dist'))]);
  kube = new Kube(loadKubeConfig(kubeconfigPath));
  [warehouse, sink] = await Promise.all([startWarehouse(5), startRejectingSink()]);
  [nsA, nsB] = await Promise.all([kube.namespace('console-a'), kube.namespace('console-b')]);
  const storeUrl = pathToFileURL(join(dir, 'store')).href;
  agent = new Agent({ kubeConfig: kube.kc, namespace: nsA, retryMs: 500 });
  await agent.start();
  // The operator runs the Syncs and serves the API with the console. It watches both namespaces; the Sync
  // of B references nothing that exists, so it never runs.
  operator = startOperator([
    ...['--kubeconfig', kubeconfigPath, '--namespaces', `${nsA},${nsB}`, '--metrics-port', '0'],
    ...['--diff-store-url', storeUrl, '--pod-start-timeout-seconds', '20', '--no-leader-elect'],
    ...['--api-port', '0', '--api-host', '127.0.0.1', '--api-rate-limit', '10000'],
    ...['--console-dir', join(dir, 'dist')],
  ]);
  await operator.port();
  await applyScenario(kube, nsA, warehouse, sink, { name: 'customers', schedule: { interval: '1h' } });
  // Only get and list in namespace B; its Sync is never run (the operator does not watch B).
  await kube.create('syncs', nsB, {
    kind: 'Sync',
    metadata: { name: 'leads' },
    spec: { modelRef: { name: 'leads' }, destinationRef: { name: 'crm' }, mode: 'upsert' },
  });
  [tokens.alice, tokens.bob] = await Promise.all([
    serviceAccountToken(nsA, 'alice', ['get', 'list', 'trigger']),
    serviceAccountToken(nsB, 'bob', ['get', 'list']),
  ]);
  base = `http://127.0.0.1:${await operator.apiPort()}`;
  browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
  // The first run (on creation: an interval Sync runs at once) rejects one row.
  const lastRun = await eventually(
    'the first run',
    async () => {
      const run = (await kube.get('syncs', nsA, 'customers'))?.status?.['lastRun'] as
        { id: string; result?: string } | undefined;
      return run?.result ? run : undefined;
    },
    { timeoutMs: 180_000 },
  );
  expect(lastRun.result).toBe('PartiallySucceeded');
  firstRunId = lastRun.id;
}, 400_000);

afterAll(async () => {
  await browser?.close();
  await operator?.kill();
  await agent?.stop();
  await sink?.close();
  await warehouse?.postgres.stop();
  if (dir && !process.env['SYNCLINE_KEEP_SCREENSHOTS']) rmSync(dir, { recursive: true, force: true });
  else if (dir) console.log(`[console] screenshots in ${dir}`);
});

async function newPage(options: { extraHTTPHeaders?: Record<string, string> } = {}): Promise<Page> {
  const context: BrowserContext = await browser.newContext({ viewport: VIEWPORT, ...options });
  const page = await context.newPage();
  page.on('pageerror', (error) => pageProblems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content.Security.Policy|Refused to/i.test(message.text()))
      pageProblems.push(`console: ${message.text()}`);
  });
  return page;
}

async function signIn(page: Page, token: string): Promise<void> {
  const response = await page.goto(`${base}/`);
  // Redirected to /console/, served with the strict headers.
  expect(response!.url()).toBe(`${base}/console/`);
  expect(response!.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
  await page.getByRole('heading', { name: 'Sign in to Syncline' }).waitFor();
  await page.getByLabel('Kubernetes token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** A viewport screenshot under the test's temp dir, checked to be a PNG of the viewport's size. */
async function screenshot(page: Page, name: string): Promise<void> {
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path });
  const png = readFileSync(path);
  expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  expect(png.subarray(12, 16).toString('ascii')).toBe('IHDR');
  expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([VIEWPORT.width, VIEWPORT.height]);
  expect(png.length).toBeGreaterThan(5_000);
}

async function visible(page: Page, text: string | RegExp): Promise<boolean> {
  const locator = page.getByText(text).first();
  await locator.waitFor({ state: 'visible' });
  return locator.isVisible();
}

describe('the web console in Chromium', () => {
  let alice: Page;

  it('refuses an invalid token on the sign-in page', async () => {
    const page = await newPage();
    await signIn(page, 'not-a-kubernetes-token');
    expect(await visible(page, /Not signed in: the API server did not accept the bearer token/)).toBe(true);
    expect(await page.getByRole('heading', { name: 'Sign in to Syncline' }).isVisible()).toBe(true);
    expect(await visible(page, 'kubectl create token')).toBe(true);
    await screenshot(page, 'sign-in-error');
    await page.context().close();
  });

  it("signs in with the first ServiceAccount's token and lists only its namespace's Syncs", async () => {
    alice = await newPage();
    await signIn(alice, tokens.alice);
    const table = alice.getByRole('table', { name: 'Syncs' });
    await table.waitFor();
    await table.getByRole('link', { name: 'customers' }).waitFor();
    const namespaces = await table.locator('tbody tr td:first-child').allTextContents();
    expect(new Set(namespaces)).toEqual(new Set([nsA]));
    expect(await table.getByText('leads').count()).toBe(0);
    // Health (Ready's reason) and the last result: the run rejected a row.
    expect(await table.getByText('PartiallySucceeded').count()).toBe(2);
    // The token is in this tab's sessionStorage, never in a URL.
    expect(alice.url()).not.toContain(tokens.alice);
    expect(await alice.evaluate(() => sessionStorage.getItem('syncline.token'))).toBe(tokens.alice);
    await screenshot(alice, 'syncs');
  });

  it('shows the Sync with its run history and the chart canvas', async () => {
    await alice.getByRole('link', { name: 'customers' }).click();
    await alice.getByRole('heading', { name: `${nsA}/customers` }).waitFor();
    const history = alice.getByRole('table', { name: 'Run history' });
    await history.getByRole('link', { name: firstRunId }).waitFor();
    expect(await history.getByText('PartiallySucceeded').first().isVisible()).toBe(true);
    const canvas = alice.locator('.chart canvas').first();
    await canvas.waitFor({ state: 'visible' });
    const box = await canvas.boundingBox();
    expect(box!.width).toBeGreaterThan(200);
    expect(box!.height).toBeGreaterThan(100);
    expect(await visible(alice, 'Delivered')).toBe(true);
    await screenshot(alice, 'sync');
  });

  it("finds the rejected row's reason on the run page by searching its primary key", async () => {
    await alice.getByRole('link', { name: firstRunId }).click();
    await alice.getByRole('heading', { name: `Run ${firstRunId}` }).waitFor();
    await alice.getByRole('table', { name: 'Stage timings' }).waitFor();
    await alice.getByLabel('Primary key').fill(String(REJECTED_ID));
    await alice.getByRole('button', { name: 'Search' }).click();
    await alice.getByRole('heading', { name: `Rejected rows of key ${REJECTED_ID}` }).waitFor();
    const rejected = alice.getByRole('table', { name: 'Rejected rows' });
    await rejected.getByText(REJECTION).waitFor();
    expect(await rejected.getByText(/HTTP 422/).isVisible()).toBe(true);
    const requests = alice.getByRole('table', { name: 'Request log' });
    await requests.waitFor();
    expect(await requests.locator('tbody tr').count()).toBe(1);
    expect(await requests.getByText('422', { exact: true }).isVisible()).toBe(true);
    expect(alice.url()).toContain(`?key=${REJECTED_ID}`);
    await screenshot(alice, 'run');
  });

  it('shows Run now to the first ServiceAccount, whose click requests a run on the API server', async () => {
    await alice.getByRole('link', { name: 'customers' }).click();
    const button = alice.getByRole('button', { name: 'Run now' });
    await button.waitFor();
    const before = (await kube.get('syncs', nsA, 'customers'))?.metadata.annotations ?? {};
    expect(before['syncline.io/run-requested-at']).toBeUndefined();
    await button.click();
    const requested = await eventually('the run-requested-at annotation', async () => {
      const sync = await kube.get('syncs', nsA, 'customers');
      return sync?.metadata.annotations?.['syncline.io/run-requested-at'];
    });
    expect(requested).toMatch(/^api-/);
    // The run ledger names the ServiceAccount that clicked: the console acts with the caller's identity.
    const sync = await kube.get('syncs', nsA, 'customers');
    const ledger = JSON.parse(sync!.metadata.annotations!['syncline.io/run-requests']!) as {
      by?: string;
      trigger: string;
    }[];
    expect(ledger.at(-1)).toMatchObject({ trigger: 'api', by: `system:serviceaccount:${nsA}:alice` });
    // The page follows the run with long polls until the operator has run it.
    await alice
      .locator('.run-phase')
      .getByText(/^(Succeeded|PartiallySucceeded|Failed)$/)
      .waitFor({ timeout: 150_000 });
    await screenshot(alice, 'run-now');
  }, 200_000);

  it('shows the second ServiceAccount only its namespace, without Run now', async () => {
    const bob = await newPage();
    await signIn(bob, tokens.bob);
    const table = bob.getByRole('table', { name: 'Syncs' });
    await table.getByRole('link', { name: 'leads' }).waitFor();
    expect(new Set(await table.locator('tbody tr td:first-child').allTextContents())).toEqual(new Set([nsB]));
    await table.getByRole('link', { name: 'leads' }).click();
    await bob.getByRole('heading', { name: `${nsB}/leads` }).waitFor();
    await bob.getByRole('heading', { name: 'Run history' }).waitFor();
    expect(await bob.getByRole('button', { name: 'Run now' }).count()).toBe(0);
    await screenshot(bob, 'sync-read-only');
    await bob.context().close();
  });

  it("is signed in without a stored token when an auth proxy sends the caller's Authorization header", async () => {
    const proxied = await newPage({ extraHTTPHeaders: { authorization: `Bearer ${tokens.bob}` } });
    await proxied.goto(`${base}/console/`);
    await proxied.getByRole('table', { name: 'Syncs' }).getByRole('link', { name: 'leads' }).waitFor();
    expect(await visible(proxied, 'signed in through the cluster’s proxy')).toBe(true);
    expect(await proxied.evaluate(() => sessionStorage.getItem('syncline.token'))).toBeNull();
    await proxied.context().close();
  });

  it('loaded every page without a script error or a Content-Security-Policy violation', () => {
    expect(pageProblems).toEqual([]);
  });
});
