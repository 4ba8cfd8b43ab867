// HubSpot end to end: a PostgreSQL model delivered by the engine (executeRun) through the hubspot
// destination to the HubSpot emulator (test/emulators/hubspot), whose records are compared to the model —
// with the snapshot (and the record ids it keeps) in the diff store, and in the warehouse.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DestinationSpec, SyncSpec } from '../../crds/index.ts';
import { secretResolver } from '../../core/secrets.ts';
import { silentLogger } from '../../core/logger.ts';
import { executeRun } from '../../runner/run.ts';
import {
  startHubSpotEmulator,
  type HubSpotEmulator,
  type HubSpotEmulatorOptions,
} from '../emulators/hubspot/server.ts';
import { startPostgres, type PostgresServer } from '../stack/postgres.ts';
import { makePlan, sql, tempState } from './helpers.ts';

let pgServer: PostgresServer;
let srcUrl: string;
let counter = 0;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  pgServer = await startPostgres();
  srcUrl = await pgServer.createDatabase('src');
});
afterAll(async () => {
  for (const c of cleanups) await c();
  await pgServer?.stop();
});

const TOKEN = { secretKeyRef: { name: 'hubspot', key: 'token' } };
const OAUTH = {
  clientId: 'syncline-client',
  clientSecret: { secretKeyRef: { name: 'hubspot', key: 'clientSecret' } },
  refreshToken: { secretKeyRef: { name: 'hubspot', key: 'refreshToken' } },
};

const MAPPINGS: SyncSpec['mappings'] = [
  { to: 'external_id', from: 'id', valueType: 'string' },
  { to: 'email', from: 'email', valueType: 'string' },
  { to: 'firstname', from: 'firstname', valueType: 'string' },
  { to: 'lifetime_value', from: 'lifetime_value', valueType: 'string' },
  { to: 'date_of_birth', from: 'date_of_birth', valueType: 'string' },
  { to: 'last_seen_at', from: 'last_seen_at', valueType: 'string' },
  { to: 'is_vip', from: 'is_vip', valueType: 'string' },
  { to: 'lifecyclestage', from: 'lifecyclestage', valueType: 'string' },
];

interface ModelRow {
  id: number;
  email: string | null;
  firstname: string | null;
  lifetime_value: string | null;
  date_of_birth: string | null;
  last_seen_at: string | null;
  is_vip: boolean | null;
  lifecyclestage: string | null;
}

/** Where the scenarios of the running describe keep their snapshot (the record ids are kept with it). */
let location: 'diffStore' | 'warehouse' = 'diffStore';

async function scenario(
  options: {
    emulator?: HubSpotEmulatorOptions;
    sync?: Partial<SyncSpec>;
    oauth?: boolean;
    rows?: number;
  } = {},
) {
  counter++;
  const table = `people_${counter}`;
  const hs = await startHubSpotEmulator({ seed: counter, ...options.emulator });
  cleanups.push(() => hs.close());
  const state = tempState();
  cleanups.push(() => state.remove());
  await sql(
    srcUrl,
    `CREATE TABLE ${table} (id int PRIMARY KEY, email text, firstname text, lifetime_value numeric(38,6),
       date_of_birth date, last_seen_at timestamptz, is_vip boolean, lifecyclestage text, company_domain text)`,
  );
  await sql(
    srcUrl,
    `INSERT INTO ${table} SELECT g, 'p' || g || '@example.org', 'Zoë ' || g || ' 李', 12345678901234567890.5 + g,
       DATE '1990-01-01' + g, TIMESTAMPTZ '2024-02-29 12:34:56.789+00' + g * interval '1 hour', g % 2 = 0,
       'lead', NULL FROM generate_series(1, ${options.rows ?? 10}) g`,
  );
  const destination: DestinationSpec = {
    type: 'hubspot',
    hubspot: options.oauth ? { baseUrl: hs.url, oauth: OAUTH } : { baseUrl: hs.url, privateAppToken: TOKEN },
  } as DestinationSpec;
  const secrets = secretResolver(
    {},
    {
      pg: { password: pgServer.password },
      hubspot: { token: hs.token, clientSecret: 'oauth-client-secret', refreshToken: 'oauth-refresh-token' },
    },
  );
  const plan = (extra: Partial<SyncSpec> = {}) =>
    makePlan({
      server: pgServer,
      sourceDb: 'src',
      query: `SELECT * FROM ${table}`,
      destination,
      sync: {
        mode: 'upsert',
        target: { object: 'contacts', matchField: 'external_id' },
        mappings: MAPPINGS,
        snapshot: { location, schema: 'syncline' },
        ...options.sync,
        ...extra,
      },
      stateUrl: state.url,
      name: `hubspot-sync-${counter}`,
    });
  return {
    hs,
    table,
    source: (text: string) => sql(srcUrl, text.replaceAll('$T', table)),
    run: (extra: Partial<SyncSpec> = {}, onProgress?: (p: { phase: string }) => void) =>
      executeRun(plan(extra), {
        secrets,
        log: silentLogger(),
        signal: new AbortController().signal,
        backoff: { baseMs: 5, capMs: 40 },
        ...(onProgress ? { onProgress } : {}),
      }),
    model: async () => sql<ModelRow>(srcUrl, `SELECT * FROM ${table} ORDER BY id`),
  };
}

const dayMs = (d: string) => Date.parse(`${d}T00:00:00Z`);

/** HubSpot's records keyed by external_id, as the model's values would read in HubSpot. */
function expectEqual(hs: HubSpotEmulator, model: ModelRow[]): void {
  const records = new Map(hs.records('contacts').map((r) => [r.properties.external_id, r.properties]));
  expect(records.size).toBe(model.length);
  for (const row of model) {
    const p = records.get(String(row.id));
    expect(p, `record ${row.id}`).toBeDefined();
    const blank = (v: string | undefined) => (v === undefined || v === '' ? null : v);
    expect(blank(p?.email)).toBe(row.email === null ? null : row.email.toLowerCase());
    expect(blank(p?.firstname)).toBe(row.firstname === null || row.firstname === '' ? null : row.firstname);
    expect(blank(p?.lifetime_value)).toBe(row.lifetime_value);
    if (row.date_of_birth === null) expect(blank(p?.date_of_birth)).toBeNull();
    else
      expect(dayMs(p?.date_of_birth as string)).toBe(
        Date.parse(String(row.date_of_birth)) - (Date.parse(String(row.date_of_birth)) % 86_400_000),
      );
    if (row.last_seen_at === null) expect(blank(p?.last_seen_at)).toBeNull();
    else expect(Date.parse(p?.last_seen_at as string)).toBe(new Date(row.last_seen_at).getTime());
    expect(blank(p?.is_vip)).toBe(row.is_vip === null ? null : String(row.is_vip));
    expect(blank(p?.lifecyclestage)).toBe(row.lifecyclestage);
  }
}

describe.each(['diffStore', 'warehouse'] as const)('with the snapshot in the %s', (where) => {
  beforeAll(() => {
    location = where;
  });

  describe('hubspot delivery', () => {
    it('upserts the model exactly, then only changed rows; deletes archive and clears empty', async () => {
      const s = await scenario();
      const first = await s.run();
      expect(first.result).toBe('Succeeded');
      expect(first.counts.delivered).toBe(10);
      expectEqual(s.hs, await s.model());
      expect(s.hs.violations()).toEqual([]);
      // Unicode, numbers beyond a double, dates, datetimes, booleans as HubSpot stores them.
      const one = s.hs.records('contacts').find((r) => r.properties.external_id === '1');
      expect(one?.properties).toMatchObject({
        firstname: 'Zoë 1 李',
        lifetime_value: '12345678901234567891.500000',
        date_of_birth: '1990-01-02',
        is_vip: 'false',
      });

      await s.source(
        `UPDATE $T SET firstname = NULL, lifetime_value = NULL, email = 'NEW3@Example.org' WHERE id = 3`,
      );
      await s.source(`UPDATE $T SET firstname = '' WHERE id = 4`);
      const before = s.hs.stats().requests;
      const second = await s.run();
      expect(second.counts).toMatchObject({ changed: 2, delivered: 2 });
      expect(s.hs.stats().requests - before).toBeLessThanOrEqual(3); // properties + one upsert
      expectEqual(s.hs, await s.model());

      await s.source(`DELETE FROM $T WHERE id IN (5, 6)`);
      const sentBefore = s.hs.requests().length;
      const third = await s.run({ deleteBehavior: 'delete' });
      expect(third.result).toBe('Succeeded');
      // The records' HubSpot ids came back with the first run and were kept in the snapshot: the archive
      // addresses them directly, with no look-up by the match field.
      const sent = s.hs.requests().slice(sentBefore);
      expect(sent.filter((r) => r.path.includes('/batch/read'))).toEqual([]);
      expect(sent.filter((r) => r.path.includes('/batch/archive'))).toHaveLength(1);
      expectEqual(s.hs, await s.model());
      expect(s.hs.records('contacts', { includeArchived: true }).filter((r) => r.archived)).toHaveLength(2);

      await s.source(`DELETE FROM $T WHERE id = 7`);
      const fourth = await s.run({ deleteBehavior: 'clear' });
      expect(fourth.result).toBe('Succeeded');
      const cleared = s.hs.records('contacts').find((r) => r.properties.external_id === '7');
      expect(cleared?.properties).toMatchObject({
        firstname: '',
        email: '',
        lifecyclestage: '',
        external_id: '7',
      });
      expect(s.hs.violations()).toEqual([]);
    });

    it('a row with a bad value is rejected while the good rows of its batch arrive, and is retried next run', async () => {
      const s = await scenario();
      await s.source(`UPDATE $T SET email = 'not an email' WHERE id = 4`);
      await s.source(`UPDATE $T SET lifecyclestage = 'prospect' WHERE id = 8`);
      const first = await s.run();
      expect(first.result).toBe('PartiallySucceeded');
      expect(first.counts).toMatchObject({ delivered: 8, failed: 2 });
      const reasons = Object.fromEntries(first.rejected.map((r) => [r.key, r.reason]));
      expect(reasons['4']).toMatch(/email/i);
      expect(reasons['8']).toMatch(/"prospect" is not an option of lifecyclestage/);
      expect(s.hs.records('contacts')).toHaveLength(8);
      await s.source(`UPDATE $T SET email = 'p4@example.org' WHERE id = 4`);
      await s.source(`UPDATE $T SET lifecyclestage = 'customer' WHERE id = 8`);
      const second = await s.run();
      expect(second.result).toBe('Succeeded');
      expect(second.counts.delivered).toBe(2);
      expectEqual(s.hs, await s.model());
    });

    it('honours the rate-limit headers: no 429 after the first interval', async () => {
      const s = await scenario({ emulator: { rateLimit: { max: 4, intervalMs: 500 } }, rows: 24 });
      const summary = await s.run({ delivery: { batchSize: 2, concurrency: 1 } } as Partial<SyncSpec>);
      expect(summary.result).toBe('Succeeded');
      expectEqual(s.hs, await s.model());
      const requests = s.hs.requests();
      const start = requests[0]?.at ?? 0;
      const late429 = requests.filter((r) => r.status === 429 && r.at > start + 500);
      expect(late429).toHaveLength(0);
      expect(requests.length).toBeGreaterThanOrEqual(13);
    });

    it('a spent daily quota ends the run PartiallySucceeded with DailyLimitReached; the next run delivers the rest', async () => {
      const s = await scenario({ emulator: { rateLimit: { daily: 4 } }, rows: 10 });
      const first = await s.run({ delivery: { batchSize: 2, concurrency: 1 } } as Partial<SyncSpec>);
      expect(first.result).toBe('PartiallySucceeded');
      expect(first.rejected[0]?.reason).toMatch(/^DailyLimitReached: .*pending for the next run/);
      expect(first.reason).toBe('DailyLimitReached');
      expect(first.message).toMatch(/daily API limit .* is reached/);
      const delivered = first.counts.delivered;
      expect(delivered).toBeGreaterThan(0);
      expect(delivered).toBeLessThan(10);
      const requests = s.hs.stats().requests;
      expect(s.hs.stats().rateLimited.DAILY).toBeLessThanOrEqual(1);
      expect(requests).toBeLessThanOrEqual(5);
      s.hs.resetDailyQuota();
      s.hs.setRateLimit({ daily: 1000 });
      const second = await s.run({ delivery: { batchSize: 2, concurrency: 1 } } as Partial<SyncSpec>);
      expect(second.result).toBe('Succeeded');
      expect(second.counts.delivered).toBe(10 - delivered);
      expectEqual(s.hs, await s.model());
    });

    it('renews an expired OAuth token once and goes on', async () => {
      // HubSpot's clock passes the first token's expiry once the properties are read and one batch is written.
      const ref: { hs?: HubSpotEmulator } = {};
      const s = await scenario({
        oauth: true,
        emulator: {
          clock: () => Date.now() + ((ref.hs?.requests().length ?? 0) >= 3 ? 2 * 3600 * 1000 : 0),
          oauth: {
            clientId: 'syncline-client',
            clientSecret: 'oauth-client-secret',
            refreshToken: 'oauth-refresh-token',
            accessTokenTtlSeconds: 3600,
          },
        },
      });
      ref.hs = s.hs;
      const summary = await s.run({ delivery: { batchSize: 2, concurrency: 1 } } as Partial<SyncSpec>);
      expect(summary.result).toBe('Succeeded');
      expect(s.hs.stats().unauthorized.EXPIRED_AUTHENTICATION).toBe(1);
      expect(s.hs.stats().tokenRefreshes).toBe(2);
      expectEqual(s.hs, await s.model());
    });

    it('associates each contact with its company by the company domain', async () => {
      const s = await scenario({ emulator: { uniqueCompanyDomain: true }, rows: 4 });
      // company_domain is no contact property: the engine hands the association's column to the connector
      // beside the mapped fields (RowChange.context).
      const acme = s.hs.createRecord('companies', { name: 'Acme', domain: 'acme.example' });
      const globex = s.hs.createRecord('companies', { name: 'Globex', domain: 'globex.example' });
      await s.source(
        `UPDATE $T SET company_domain = CASE WHEN id % 2 = 0 THEN 'acme.example' ELSE 'globex.example' END`,
      );
      await s.source(`UPDATE $T SET company_domain = 'nowhere.example' WHERE id = 4`);
      const summary = await s.run({
        mappings: MAPPINGS,
        target: {
          object: 'contacts',
          matchField: 'external_id',
          associations: [{ object: 'companies', from: 'company_domain', matchField: 'domain' }],
        },
      });
      expect(summary.result).toBe('PartiallySucceeded');
      expect(summary.rejected.map((r) => r.key)).toEqual(['4']);
      expect(summary.rejected[0]?.reason).toMatch(/no companies record has domain = "nowhere.example"/);
      const byExternal = new Map(s.hs.records('contacts').map((r) => [r.id, r.properties.external_id]));
      const pairs = s.hs
        .associations('contacts', 'companies')
        .map((a) => [byExternal.get(a.fromId), a.toId])
        .sort();
      expect(pairs).toEqual([
        ['1', globex],
        ['2', acme],
        ['3', globex],
      ]);
      expect(s.hs.violations()).toEqual([]);
    });
  });
});
