// Delivery through Salesforce Bulk API 2.0: a generated PostgreSQL model of N changed rows synced by
// `syncline job` (a child process) to the Salesforce emulator (test/emulators/salesforce, in this process)
// as a first sync, `mode: upsert` by External_Id__c into Contact, with `bulkThreshold` and
// `delivery.batchSize` both `--batch-size` (default 10,000), so that every batch is one Bulk ingest job.
//
//   npm run bench:salesforce -- [--rows 100000] [--batch-size 10000] [--concurrency N] [--bulk-delay-ms 50]
//
// Salesforce documents no processing rate for Bulk API 2.0 ingest (only daily allocations: 150 million
// records, 100,000 API requests on the emulator's default), and the emulator has none either: each job
// waits `bulkDelayMs` in UploadComplete and again in InProgress, then processes its rows at once. So the
// baseline is the emulator's own ingest rate, measured in the same run on a second emulator by posting the
// very CSV bodies the sync uploaded, as jobs, with the same concurrency, polling every 5 ms (create, upload,
// UploadComplete, poll to JobComplete, read successful/failed/unprocessed results). Reported:
//   - the sync's records/s over its delivery phase, as a share of that ingest rate;
//   - the number of Bulk jobs, and the API requests the job used, read from `Sforce-Limit-Info`;
//   - failed and unprocessed rows (0 expected), and the records live in the emulator;
//   - the child's peak resident memory (VmHWM, Node and DuckDB together), as bench/hubspot.ts measures it.
import { runSyncJob } from './job.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { runPlan } from '../core/plan.ts';
import type { RunSummary } from '../core/summary.ts';
import {
  API_VERSION,
  generateTestKeyPair,
  signAssertion,
  startSalesforceEmulator,
  type SalesforceEmulator,
} from '../test/emulators/salesforce/server.ts';
import { startPostgres, type PostgresServer } from '../test/stack/postgres.ts';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    'batch-size': { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '4' },
    'bulk-delay-ms': { type: 'string', default: '50' },
  },
});
const ROWS = Number(args.rows);
const BATCH = Number(args['batch-size']);
const CONCURRENCY = Number(args.concurrency);
const BULK_DELAY_MS = Number(args['bulk-delay-ms']);
const work = mkdtempSync(join(tmpdir(), 'syncline-bench-salesforce-'));
const keys = generateTestKeyPair();
const MODEL_QUERY =
  'SELECT id, first_name, last_name, email, birthdate, score, last_activity, opted_out, lead_source, title FROM bench_contacts';
const MAPPINGS = [
  { to: 'External_Id__c', from: 'id' },
  { to: 'FirstName', from: 'first_name' },
  { to: 'LastName', from: 'last_name' },
  { to: 'Email', from: 'email' },
  { to: 'Birthdate', from: 'birthdate' },
  { to: 'Score__c', from: 'score' },
  { to: 'Last_Activity__c', from: 'last_activity' },
  { to: 'HasOptedOutOfEmail', from: 'opted_out' },
  { to: 'LeadSource', from: 'lead_source' },
  { to: 'Title', from: 'title' },
];
const BASE = `/services/data/${API_VERSION}`;

async function generate(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE TABLE bench_contacts (
      id bigint PRIMARY KEY, first_name text, last_name text, email text, birthdate date, score numeric(16,2),
      last_activity timestamptz, opted_out boolean, lead_source text, title text)`);
    await client.query(`INSERT INTO bench_contacts
      SELECT g, 'Zoë ' || g, 'Müller-' || (g % 997), 'c' || g || '@example.com', DATE '1960-01-01' + (g % 20000),
             (g % 100000) / 100.0, timestamptz '2024-01-01' + g * interval '1.5 second', g % 3 = 0,
             (ARRAY['Web','Phone Inquiry','Partner Referral','Purchased List','Other'])[1 + g % 5],
             CASE WHEN g % 4 = 0 THEN NULL ELSE 'Title, "quoted" ' || (g % 50) END
      FROM generate_series(1, ${ROWS}) g`);
    await client.query('ANALYZE bench_contacts');
  } finally {
    await client.end();
  }
}

async function syncJob(
  server: PostgresServer,
  sf: SalesforceEmulator,
): Promise<{ summary: RunSummary; wallMs: number; peakMb: number }> {
  const plan = runPlan.parse({
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'RunPlan',
    runId: `bench-salesforce-${Date.now()}`,
    namespace: 'bench',
    sync: {
      name: 'bench-salesforce',
      spec: {
        modelRef: { name: 'contacts' },
        destinationRef: { name: 'salesforce' },
        mode: 'upsert',
        target: { object: 'Contact', matchField: 'External_Id__c' },
        mappings: MAPPINGS,
        delivery: { batchSize: BATCH, concurrency: CONCURRENCY },
      },
    },
    model: { name: 'contacts', spec: { sourceRef: { name: 'pg' }, query: MODEL_QUERY, primaryKey: 'id' } },
    source: {
      name: 'pg',
      spec: {
        type: 'postgres',
        postgres: {
          host: server.host,
          port: server.port,
          database: 'src',
          user: server.user,
          password: { secretKeyRef: { name: 'pg', key: 'password' } },
          tls: { mode: 'disable' },
        },
      },
    },
    destination: {
      name: 'salesforce',
      spec: {
        type: 'salesforce',
        salesforce: {
          loginUrl: sf.url,
          jwt: {
            consumerKey: sf.consumerKey,
            username: sf.users[0],
            privateKey: { secretKeyRef: { name: 'sf', key: 'privateKey' } },
          },
          bulkThreshold: BATCH,
        },
      },
    },
    diffStore: { url: pathToFileURL(join(work, 'state')).href },
    runner: { debuggerRetentionDays: 7, tmpDir: work },
  });
  return runSyncJob(plan, {
    dir: work,
    name: 'salesforce-sync',
    env: {
      SYNCLINE_SECRET_PG__PASSWORD: server.password,
      SYNCLINE_SECRET_SF__PRIVATEKEY: keys.privateKey,
    },
  });
}

let resets = 0;

/** An access token from the emulator's JWT bearer flow, and a fetch of its REST API with it. */
async function apiClient(sf: SalesforceEmulator) {
  const assertion = signAssertion(
    {
      iss: sf.consumerKey,
      sub: sf.users[0] as string,
      aud: sf.loginUrl,
      exp: Math.floor(Date.now() / 1000) + 180,
    },
    keys.privateKey,
  );
  const tokenResponse = await fetch(sf.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }),
  });
  const { access_token: token } = (await tokenResponse.json()) as { access_token: string };
  const call = async (
    method: string,
    path: string,
    body?: string,
    type = 'application/json',
    attempt = 1,
  ) => {
    const response = await fetch(`${sf.url}${BASE}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': type }) },
      ...(body === undefined ? {} : { body }),
    }).catch((error: unknown) => {
      // A reused keep-alive socket may be reset under load; a GET is safe to send again (the sync's client
      // retries its reads the same way).
      if (method === 'GET' && attempt < 4) return undefined;
      throw new Error(`${method} ${path}: ${String(error)}`, { cause: error });
    });
    if (response === undefined) {
      resets++;
      return call(method, path, body, type, attempt + 1);
    }
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 200)}`);
    return { text, limitInfo: response.headers.get('sforce-limit-info') ?? '' };
  };
  return call;
}

/** api-usage N of a `Sforce-Limit-Info: api-usage=N/M` header. */
const apiUsage = (header: string): number => Number(/api-usage=(\d+)\//.exec(header)?.[1] ?? NaN);

/** Records/s of the emulator itself: the given CSV bodies as upsert jobs, CONCURRENCY at a time. */
async function emulatorIngestRate(csvs: string[]): Promise<{ rate: number; ms: number; records: number }> {
  const sf = await startSalesforceEmulator({ publicKey: keys.publicKey, bulkDelayMs: BULK_DELAY_MS });
  try {
    const api = await apiClient(sf);
    const records = csvs.reduce((n, csv) => n + csv.trimEnd().split('\n').length - 1, 0);
    const started = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < csvs.length) {
        const csv = csvs[next++] as string;
        const created = await api(
          'POST',
          '/jobs/ingest',
          JSON.stringify({
            object: 'Contact',
            operation: 'upsert',
            externalIdFieldName: 'External_Id__c',
            contentType: 'CSV',
            lineEnding: 'LF',
            columnDelimiter: 'COMMA',
          }),
        );
        const { id } = JSON.parse(created.text) as { id: string };
        await api('PUT', `/jobs/ingest/${id}/batches`, csv, 'text/csv');
        await api('PATCH', `/jobs/ingest/${id}`, JSON.stringify({ state: 'UploadComplete' }));
        for (;;) {
          const { state } = JSON.parse((await api('GET', `/jobs/ingest/${id}`)).text) as { state: string };
          if (state === 'JobComplete') break;
          if (state === 'Failed' || state === 'Aborted') throw new Error(`baseline job ${id} ${state}`);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        for (const kind of ['successfulResults/', 'failedResults/', 'unprocessedrecords/'])
          await api('GET', `/jobs/ingest/${id}/${kind}?maxRecords=50000`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const ms = performance.now() - started;
    const live = sf.records('Contact').length;
    if (live !== records) console.log(`WARNING: the baseline left ${live} records, expected ${records}`);
    return { rate: records / (ms / 1000), ms, records };
  } finally {
    await sf.close();
  }
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  console.log(
    `syncline Salesforce benchmark: ${fmt(ROWS)} changed rows (first sync) -> Contact upsert through Bulk API 2.0, ` +
      `bulkThreshold = batchSize = ${fmt(BATCH)}, concurrency ${CONCURRENCY}, emulator bulkDelayMs ${BULK_DELAY_MS}; ` +
      `${cpus().length} cores, load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  const server = await startPostgres();
  const sf = await startSalesforceEmulator({
    publicKey: keys.publicKey,
    bulkDelayMs: BULK_DELAY_MS,
    dailyApiLimit: 100_000,
  });
  try {
    const srcUrl = await server.createDatabase('src');
    await generate(srcUrl);
    const job = await syncJob(server, sf);
    await sf.settled();
    const requests = sf.requests();
    const jobs = sf.jobs();
    // API requests the job used, as Salesforce tells them: one more request after the run (counted too)
    // reads api-usage from its Sforce-Limit-Info; the bench made none before the run.
    const api = await apiClient(sf);
    const usageAfter = apiUsage((await api('GET', '/limits')).limitInfo) - 1;
    const byKind = (re: RegExp) => requests.filter((r) => re.test(`${r.method} ${r.path}`)).length;
    const creates = byKind(/^POST .*\/jobs\/ingest$/);
    const polls = byKind(/^GET .*\/jobs\/ingest\/[^/]+$/);
    const results = byKind(
      /^GET .*\/jobs\/ingest\/[^/]+\/(successfulResults|failedResults|unprocessedrecords)/,
    );
    const collections = byKind(/\/composite\/sobjects/);
    // What Salesforce refuses under load or quota: 429, 403 REQUEST_LIMIT_EXCEEDED, 503 SERVER_UNAVAILABLE.
    const refused = requests.filter((r) => [403, 429, 503].includes(r.status)).length;
    const failedRows = jobs.reduce((n, j) => n + j.numberRecordsFailed, 0);
    const unprocessed = jobs.reduce((n, j) => n + j.unprocessed, 0);
    const live = sf.records('Contact').length;
    const deliverS = (job.summary.timings.deliverMs ?? 0) / 1000;
    const syncRate = job.summary.counts.delivered / deliverS;
    const csvs = requests
      .filter((r) => r.method === 'PUT' && /\/jobs\/ingest\/[^/]+\/batches$/.test(r.path))
      .map((r) => r.body);
    const baseline = await emulatorIngestRate(csvs);
    console.log('');
    console.log(
      `delivered ${fmt(job.summary.counts.delivered)} rows in ${fmt(deliverS, 2)} s of delivery ` +
        `(run ${fmt((job.summary.timings.totalMs ?? 0) / 1000, 1)} s, process ${fmt(job.wallMs / 1000, 1)} s); ` +
        `live Contacts ${fmt(live)}`,
    );
    console.log(
      `Bulk jobs: ${jobs.length} (${jobs.map((j) => j.state).join(', ')}); Collections requests: ${collections}`,
    );
    console.log(
      `API requests (Sforce-Limit-Info api-usage): ${fmt(usageAfter)} of ${fmt(sf.stats().apiLimit)} a day ` +
        `(emulator's count ${fmt(sf.stats().apiUsage - 1)}: ${creates} job creates, ${polls} polls, ${results} result reads, ` +
        `${requests.length} requests logged incl. describe and uploads)`,
    );
    console.log(
      `failed rows: ${failedRows}, unprocessed rows: ${unprocessed}, failed in the run summary: ${job.summary.counts.failed}; ` +
        `refused requests (429, 403, 503): ${refused}`,
    );
    console.log(
      `sync ${fmt(syncRate)} records/s = ${fmt((100 * syncRate) / baseline.rate, 1)}% of the emulator's own ingest ` +
        `rate, ${fmt(baseline.rate)} records/s (the same ${csvs.length} CSV jobs posted directly, ${fmt(baseline.records)} ` +
        `records in ${fmt(baseline.ms / 1000, 2)} s; ${resets} GETs resent after a reset socket)`,
    );
    console.log(`peak RSS of the job: ${fmt(job.peakMb)} MiB`);
    if (job.summary.counts.delivered !== ROWS || live !== ROWS || failedRows !== 0)
      console.log(
        `WARNING: expected ${ROWS} rows delivered and live and 0 failed, got ${job.summary.counts.delivered}/${live}/${failedRows}`,
      );
  } finally {
    await sf.close();
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
