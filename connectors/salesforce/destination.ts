// Salesforce as a Destination: any sObject (Contact, Lead, Account, custom __c objects) through sObject
// Collections (≤ 200 records a request, allOrNone false, results in input order) for small change sets and
// Bulk API 2.0 ingest jobs for large ones (bulk.ts), chosen per write by the count of operations of one
// kind against Destination.spec.salesforce.bulkThreshold. Upsert by an external-id field, insert, update
// and delete by record Id (the Id the engine kept from an earlier run, else looked up by the external id),
// clear through fieldsToNull (#N/A in Bulk CSV); relationship fields through the parent's external id
// (`Account.External_Id__c`). Built on the SaaS kit (connectors/saas/): JWT bearer or refresh-token auth,
// the client (Sforce-Limit-Info, REQUEST_LIMIT_EXCEEDED, one renewal on INVALID_SESSION_ID), bad rows of
// a request refused as a whole isolated by bisection.
import type { DestinationSpec, SyncSpec } from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import type {
  ConnectorContext,
  DeliveryContext,
  DestinationConnector,
  DestinationObject,
  DestinationWriter,
  RowChange,
  RowResult,
} from '../../core/connectors.ts';
import { jwtBearer, oauthRefreshToken, secretValue, TokenProvider, type TokenSource } from '../saas/auth.ts';
import {
  chunk,
  jsonBytes,
  sendIsolating,
  writeByOperation,
  type ItemFailure,
  type PartOutcome,
} from '../saas/batches.ts';
import { ApiError, salesforceLimitInfo, SaasClient, type ClientContext } from '../saas/client.ts';
import { failureOf, fatalError } from '../saas/results.ts';
import { runBulkJob, type BulkOperation, type BulkRow } from './bulk.ts';
import {
  cellText,
  closest,
  fieldOf,
  fieldValue,
  isMatchable,
  REFUSED_COLUMNS,
  type SalesforceDescribe,
  type SalesforceField,
  type SfValue,
} from './types.ts';

/** The REST API version every request uses (paths under /services/data/{API_VERSION}/). */
export const API_VERSION = 'v62.0';
/** sObject Collections take at most 200 records (or ids) a request. */
export const MAX_RECORDS = 200;
/** Bytes of one Collections body at most (Salesforce refuses request bodies over 6 MB). */
export const MAX_BODY_BYTES = 5_000_000;
/** Look-ups of record ids by external id in flight at once (one GET per key). */
const LOOKUP_CONCURRENCY = 4;
const DEFAULT_LOGIN_URL = 'https://login.salesforce.com';
const DEFAULT_BULK_THRESHOLD = 2000;

type Settings = NonNullable<DestinationSpec['salesforce']>;

function settingsOf(spec: DestinationSpec): Settings & { loginUrl: string; bulkThreshold: number } {
  const s = spec.salesforce;
  if (!s)
    throw new SynclineError(
      'InvalidDestination',
      'a salesforce Destination needs the salesforce block with jwt or oauth',
    );
  if ((s.jwt === undefined) === (s.oauth === undefined))
    throw new SynclineError('InvalidDestination', 'set exactly one of salesforce.jwt or salesforce.oauth');
  return {
    ...s,
    loginUrl: (s.loginUrl ?? DEFAULT_LOGIN_URL).replace(/\/+$/, ''),
    bulkThreshold: s.bulkThreshold ?? DEFAULT_BULK_THRESHOLD,
  };
}

/**
 * The JWT's audience: https://test.salesforce.com for sandboxes (test.salesforce.com or a
 * *.sandbox.my.salesforce.com My Domain), else https://login.salesforce.com — Salesforce takes these
 * audiences whatever host (My Domain) the token is requested from.
 */
export function audienceOf(loginUrl: string): string {
  const host = new URL(loginUrl).hostname;
  return /(^|\.)test\.salesforce\.com$|\.sandbox\.my\.salesforce\.com$/.test(host)
    ? 'https://test.salesforce.com'
    : 'https://login.salesforce.com';
}

function tokenSource(
  settings: ReturnType<typeof settingsOf>,
  secrets: ConnectorContext['secrets'],
): TokenSource {
  const tokenUrl = `${settings.loginUrl}/services/oauth2/token`;
  if (settings.jwt)
    return jwtBearer({
      tokenUrl,
      issuer: settings.jwt.consumerKey,
      subject: settings.jwt.username,
      audience: audienceOf(settings.loginUrl),
      privateKeyPem: secretValue(secrets, settings.jwt.privateKey),
    });
  const oauth = settings.oauth as NonNullable<Settings['oauth']>;
  return oauthRefreshToken({
    tokenUrl,
    clientId: oauth.clientId,
    clientSecret: secretValue(secrets, oauth.clientSecret),
    refreshToken: secretValue(secrets, oauth.refreshToken),
  });
}

/** Authenticate and make a client on the org's instance URL (the token answer's instance_url). */
async function connect(
  spec: DestinationSpec,
  secrets: ConnectorContext['secrets'],
  ctx: ClientContext,
): Promise<{ client: SaasClient; settings: ReturnType<typeof settingsOf>; instanceUrl: string }> {
  const settings = settingsOf(spec);
  const auth = new TokenProvider(tokenSource(settings, secrets));
  const token = await auth.token(ctx.signal);
  const instanceUrl = (token.extra?.instance_url ?? settings.loginUrl).replace(/\/+$/, '');
  const client = new SaasClient(
    {
      name: 'Salesforce',
      baseUrl: `${instanceUrl}/services/data/${API_VERSION}`,
      auth,
      rateLimits: salesforceLimitInfo,
      timeoutMs: 120_000,
      isExpired: (status) => status === 401,
    },
    ctx,
  );
  return { client, settings, instanceUrl };
}

const enc = encodeURIComponent;

interface SfError {
  statusCode?: string;
  errorCode?: string;
  message?: string;
  fields?: string[];
}

/** Salesforce's message of an error answer (`[{message, errorCode}]`). */
function sfMessage(body: string, fallback: string): string {
  try {
    const parsed = JSON.parse(body) as SfError[] | SfError;
    const first = Array.isArray(parsed) ? parsed[0] : parsed;
    if (first?.message) return `${first.errorCode ?? first.statusCode ?? 'ERROR'}: ${first.message}`;
  } catch {
    // not JSON
  }
  return fallback;
}

const rowError = (errors: SfError[] | undefined): string =>
  (errors ?? [])
    .map((e) => `${e.statusCode ?? e.errorCode ?? 'ERROR'}: ${e.message ?? 'no message'}`)
    .join('; ') || 'no message';

/** The describe of an sObject; an sObject the org does not have is UnknownObject. */
async function describeObject(client: SaasClient, name: string): Promise<SalesforceDescribe> {
  try {
    const response = await client.request<SalesforceDescribe>('GET', `/sobjects/${enc(name)}/describe`, {
      operation: 'describe',
    });
    return response.json as SalesforceDescribe;
  } catch (error) {
    const fatal = fatalError(error, 'Salesforce');
    if (fatal) throw fatal;
    if (error instanceof ApiError && error.status === 404)
      throw new SynclineError(
        'UnknownObject',
        `Salesforce has no sObject "${name}" (target.object), or the integration user cannot see it: use its API name (Contact, Lead, Account, Customer__c)`,
      );
    if (error instanceof ApiError && error.dailyLimit)
      throw new SynclineError('DailyLimitReached', error.message, { retryable: true, cause: error });
    if (error instanceof ApiError)
      throw new SynclineError('DestinationUnreachable', error.message, { retryable: true, cause: error });
    throw error;
  }
}

/** How a mapping's `to` is written: a field of the object, or a lookup through a parent's external id. */
type Target =
  | { kind: 'field'; to: string; field: SalesforceField }
  | { kind: 'lookup'; to: string; relationship: string; parentField: string; reference: SalesforceField };

type Outcome = { ok: true; recordId?: string } | ItemFailure;

/** A change ready to send. */
interface Prepared {
  index: number;
  change: RowChange;
  /** REST JSON fields (values and relationship objects). */
  body: Record<string, unknown>;
  fieldsToNull: string[];
  /** Bulk CSV cells, unquoted (#N/A for null). */
  cells: Record<string, string>;
  /** The external id (target.matchField) value, when the row carries it. */
  match: string | undefined;
  /** The record Id to address (known from the engine or looked up). */
  id?: string;
}

const STALE = /ENTITY_IS_DELETED|INVALID_CROSS_REFERENCE_KEY|NOT_FOUND|MALFORMED_ID/;

class SalesforceWriter implements DestinationWriter {
  private readonly ctx: DeliveryContext;
  private readonly client: SaasClient;
  private readonly object: string;
  private readonly matchField: string | undefined;
  private readonly fields: Map<string, SalesforceField>;
  private readonly targets: Target[];
  private readonly bulkThreshold: number;
  /** Counters for the run's log and tests. */
  readonly stats = { collections: 0, bulkJobs: 0, lookups: 0 };

  constructor(
    ctx: DeliveryContext,
    client: SaasClient,
    object: string,
    describe: SalesforceDescribe,
    targets: Target[],
    bulkThreshold: number,
  ) {
    this.ctx = ctx;
    this.client = client;
    this.object = object;
    this.matchField = ctx.sync.spec.target?.matchField;
    this.fields = new Map(describe.fields.map((f) => [f.name.toLowerCase(), f]));
    this.targets = targets;
    this.bulkThreshold = bulkThreshold;
  }

  private prepare(change: RowChange, index: number): Prepared | ItemFailure {
    const body: Record<string, unknown> = {};
    const fieldsToNull: string[] = [];
    const cells: Record<string, string> = {};
    const clearing = change.operation === 'clear';
    const inserting = change.operation === 'insert';
    const setNull = (name: string) => {
      if (inserting) return;
      fieldsToNull.push(name);
      cells[name] = '#N/A';
    };
    for (const t of this.targets) {
      if (t.kind === 'field') {
        if (clearing) {
          // A required field cannot be emptied (REQUIRED_FIELD_MISSING): clear leaves it, and the match field.
          const required = t.field.nillable === false && t.field.type !== 'boolean';
          if (t.field.name !== this.matchField && !required) setNull(t.field.name);
          continue;
        }
        if (!(t.to in change.fields)) continue;
        const value = fieldValue(t.field, change.fields[t.to]);
        if (value !== null && typeof value === 'object' && 'refused' in value)
          return { ok: false, reason: value.refused, retryable: false };
        if (value === null) setNull(t.field.name);
        else {
          body[t.field.name] = value;
          cells[t.field.name] = cellText(value as SfValue);
        }
        continue;
      }
      if (clearing) {
        setNull(t.reference.name);
        continue;
      }
      const parent = change.fields[t.relationship] as Record<string, unknown> | null | undefined;
      if (parent === undefined) continue;
      const raw = parent === null ? null : parent[t.parentField];
      if (raw === undefined) continue;
      const text = raw === null ? '' : String(raw).trim();
      if (text === '') setNull(t.reference.name);
      else {
        body[t.relationship] = { [t.parentField]: text };
        cells[`${t.relationship}.${t.parentField}`] = text;
      }
    }
    let match: string | undefined;
    if (this.matchField !== undefined) {
      const field = this.fields.get(this.matchField.toLowerCase());
      const value = fieldValue(field, change.fields[this.matchField]);
      if (typeof value === 'string' && value !== '') match = value;
      else if (value !== null && typeof value === 'object' && 'rawJSON' in value) match = value.rawJSON;
    }
    return { index, change, body, fieldsToNull, cells, match };
  }

  async write(batch: RowChange[]): Promise<RowResult[]> {
    const results = await writeByOperation<Prepared, Outcome>(
      batch,
      (change, index) => this.prepare(change, index),
      (operation, items) => this.deliver(operation, items),
    );
    return results;
  }

  private async deliver(operation: string, items: Prepared[]): Promise<Outcome[]> {
    switch (operation) {
      case 'upsert': {
        const missing = this.needMatch(items, 'upsert');
        const ready = items.filter((i) => !missing.has(i.index));
        const sent =
          ready.length >= this.bulkThreshold
            ? await this.bulk('upsert', ready)
            : await this.collections(ready, (part) => this.sendRecords('upsert', part));
        return this.merge(items, missing, ready, sent);
      }
      case 'insert':
        return items.length >= this.bulkThreshold
          ? this.bulk('insert', items)
          : this.collections(items, (part) => this.sendRecords('insert', part));
      case 'update':
      case 'clear':
        return this.update(items, operation === 'clear');
      case 'delete':
        return this.remove(items);
      default:
        return items.map(() => ({
          ok: false,
          reason: `Salesforce destinations do not take ${operation} operations`,
          retryable: false,
        }));
    }
  }

  private needMatch(items: Prepared[], what: string): Map<number, Outcome> {
    const failures = new Map<number, Outcome>();
    for (const item of items)
      if (item.match === undefined)
        failures.set(item.index, {
          ok: false,
          reason: this.matchField
            ? `no value for ${this.matchField} (target.matchField) to ${what} the record by`
            : `set target.matchField (an external id field) to ${what} records`,
          retryable: false,
        });
    return failures;
  }

  private merge(
    items: Prepared[],
    done: Map<number, Outcome>,
    sent: Prepared[],
    outcomes: Outcome[],
  ): Outcome[] {
    const byIndex = new Map(done);
    sent.forEach((item, i) => byIndex.set(item.index, outcomes[i] as Outcome));
    return items.map((item) => byIndex.get(item.index) as Outcome);
  }

  /**
   * Record Ids for update, clear and delete: RowChange.recordId when the engine kept it, else one
   * `GET /sobjects/{S}/{matchField}/{value}` per key. A key with no record answers `absent`.
   */
  private async resolveIds(
    items: Prepared[],
    what: string,
    absent: (item: Prepared) => Outcome,
  ): Promise<Map<number, Outcome>> {
    const failures = new Map<number, Outcome>();
    const lookups: Prepared[] = [];
    for (const item of items) {
      if (item.change.recordId) item.id = item.change.recordId;
      else if (item.match !== undefined) lookups.push(item);
      else
        failures.set(item.index, {
          ok: false,
          reason: this.matchField
            ? `cannot ${what}: no record Id is known and the row carries no ${this.matchField} (target.matchField; map it from the primary key)`
            : `cannot ${what}: set target.matchField (an external id field mapped from the primary key)`,
          retryable: false,
        });
    }
    let next = 0;
    const worker = async () => {
      while (next < lookups.length) {
        const item = lookups[next++] as Prepared;
        if (this.ctx.signal.aborted) {
          failures.set(item.index, { ok: false, reason: 'not sent: the run was stopped', retryable: true });
          continue;
        }
        try {
          this.stats.lookups++;
          const response = await this.client.request<{ Id?: string }>(
            'GET',
            `/sobjects/${enc(this.object)}/${enc(this.matchField as string)}/${enc(item.match as string)}`,
            { query: { fields: 'Id' }, keys: [item.change.key], operation: 'lookup', allowNotFound: true },
          );
          if (response.status === 404 || !response.json?.Id) failures.set(item.index, absent(item));
          else item.id = response.json.Id;
        } catch (error) {
          const fatal = fatalError(error, 'Salesforce');
          if (fatal) throw fatal;
          failures.set(
            item.index,
            error instanceof ApiError && error.status === 300
              ? {
                  ok: false,
                  reason: `several ${this.object} records have ${this.matchField} = ${JSON.stringify(item.match)}`,
                  retryable: false,
                }
              : failureOf(error),
          );
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(LOOKUP_CONCURRENCY, lookups.length) }, worker));
    return failures;
  }

  /** Update (or clear) by record Id; a stale Id (deleted in Salesforce) is looked up again by external id once. */
  private async update(items: Prepared[], clearing: boolean): Promise<Outcome[]> {
    const what = clearing ? 'clear' : 'update';
    const absent = (item: Prepared): Outcome =>
      clearing
        ? { ok: true }
        : {
            ok: false,
            reason: `no ${this.object} record has ${this.matchField} = ${JSON.stringify(item.match)} to update (mode update creates no records; use upsert)`,
            retryable: false,
          };
    const done = await this.resolveIds(items, what, absent);
    const ready = items.filter((i) => !done.has(i.index));
    const outcomes = await this.sendById(ready);
    const stale: Prepared[] = [];
    ready.forEach((item, i) => {
      const outcome = outcomes[i] as Outcome;
      if (!outcome.ok && STALE.test(outcome.reason)) {
        if (item.change.recordId && item.match !== undefined) {
          item.change = { ...item.change, recordId: undefined };
          stale.push(item);
        } else done.set(item.index, clearing ? { ok: true } : outcome);
      } else done.set(item.index, outcome);
    });
    if (stale.length > 0) {
      const again = await this.resolveIds(stale, what, absent);
      for (const [index, outcome] of again) done.set(index, outcome);
      const retry = stale.filter((i) => !again.has(i.index));
      const second = await this.sendById(retry);
      retry.forEach((item, i) => {
        const outcome = second[i] as Outcome;
        done.set(item.index, clearing && !outcome.ok && STALE.test(outcome.reason) ? { ok: true } : outcome);
      });
    }
    return items.map((item) => done.get(item.index) as Outcome);
  }

  private sendById(items: Prepared[]): Promise<Outcome[]> {
    return items.length >= this.bulkThreshold
      ? this.bulk('update', items)
      : this.collections(items, (part) => this.sendRecords('update', part));
  }

  /** Delete by Id (to the recycle bin); a record already gone counts as done. */
  private async remove(items: Prepared[]): Promise<Outcome[]> {
    const done = await this.resolveIds(items, 'delete', () => ({ ok: true }));
    const ready = items.filter((i) => !done.has(i.index));
    const outcomes =
      ready.length >= this.bulkThreshold
        ? await this.bulk('delete', ready)
        : await this.collections(ready, (part) => this.sendDelete(part));
    ready.forEach((item, i) => {
      const outcome = outcomes[i] as Outcome;
      done.set(
        item.index,
        !outcome.ok && STALE.test(outcome.reason) ? { ok: true } : outcome.ok ? { ok: true } : outcome,
      );
    });
    return items.map((item) => done.get(item.index) as Outcome);
  }

  /** Requests of at most 200 records and MAX_BODY_BYTES, each with bad rows isolated. */
  private async collections(
    items: Prepared[],
    send: (part: readonly Prepared[]) => Promise<PartOutcome<Outcome>>,
  ): Promise<Outcome[]> {
    const byIndex = new Map<number, Outcome>();
    for (const part of chunk(items, {
      maxItems: MAX_RECORDS,
      maxBytes: MAX_BODY_BYTES,
      size: (p) => jsonBytes(p.body) + 100,
    })) {
      const outcomes = await sendIsolating(part, send, { signal: this.ctx.signal });
      part.forEach((item, i) => byIndex.set(item.index, outcomes[i] as Outcome));
    }
    return items.map((item) => byIndex.get(item.index) as Outcome);
  }

  private record(item: Prepared, kind: 'insert' | 'update' | 'upsert'): Record<string, unknown> {
    const record: Record<string, unknown> = { attributes: { type: this.object }, ...item.body };
    if (kind === 'update') record.Id = item.id;
    if (kind === 'upsert' && this.matchField) record[this.matchField] = item.match;
    if (item.fieldsToNull.length > 0) record.fieldsToNull = item.fieldsToNull;
    return record;
  }

  /** A request refused as a whole: split when one record may be the cause (a 400 of its values). */
  private rejected(error: unknown, count: number, what: string): PartOutcome<Outcome> {
    const fatal = fatalError(error, 'Salesforce');
    if (fatal) throw fatal;
    if (error instanceof ApiError && !error.dailyLimit && !error.retryable && error.status === 400) {
      const message = sfMessage(error.body, error.message);
      return {
        kind: 'rejected',
        splittable: count > 1 && !/EXCEEDED_ID_LIMIT/.test(message),
        failure: {
          ok: false,
          reason: `Salesforce refused the ${what} (HTTP 400): ${message}`,
          retryable: false,
        },
      };
    }
    return { kind: 'rejected', splittable: false, failure: failureOf(error) };
  }

  private async sendRecords(
    kind: 'insert' | 'update' | 'upsert',
    part: readonly Prepared[],
  ): Promise<PartOutcome<Outcome>> {
    const records = part.map((p) => this.record(p, kind));
    const path =
      kind === 'upsert'
        ? `/composite/sobjects/${enc(this.object)}/${enc(this.matchField as string)}`
        : '/composite/sobjects';
    this.stats.collections++;
    try {
      const response = await this.client.request<
        { id?: string | null; success: boolean; errors?: SfError[] }[]
      >(kind === 'insert' ? 'POST' : 'PATCH', path, {
        body: { allOrNone: false, records },
        keys: part.map((p) => p.change.key),
        operation: part[0]?.change.operation ?? kind,
      });
      return { kind: 'items', outcomes: this.perRecord(response.json, part.length) };
    } catch (error) {
      return this.rejected(error, part.length, kind);
    }
  }

  private async sendDelete(part: readonly Prepared[]): Promise<PartOutcome<Outcome>> {
    this.stats.collections++;
    try {
      const response = await this.client.request<
        { id?: string | null; success: boolean; errors?: SfError[] }[]
      >('DELETE', '/composite/sobjects', {
        query: { ids: part.map((p) => p.id as string).join(','), allOrNone: false },
        keys: part.map((p) => p.change.key),
        operation: 'delete',
      });
      return { kind: 'items', outcomes: this.perRecord(response.json, part.length) };
    } catch (error) {
      return this.rejected(error, part.length, 'delete');
    }
  }

  /** Collections answer one result per record, in input order. */
  private perRecord(
    answer: { id?: string | null; success: boolean; errors?: SfError[] }[] | undefined,
    count: number,
  ): Outcome[] {
    if (!Array.isArray(answer) || answer.length !== count)
      return Array.from({ length: count }, () => ({
        ok: false,
        reason: `Salesforce answered ${Array.isArray(answer) ? answer.length : 'no'} results for ${count} records`,
        retryable: true,
      }));
    return answer.map((r): Outcome =>
      r.success
        ? r.id
          ? { ok: true, recordId: r.id }
          : { ok: true }
        : {
            ok: false,
            reason: `Salesforce refused the row: ${rowError(r.errors)}`,
            retryable: (r.errors ?? []).some((e) =>
              /UNABLE_TO_LOCK_ROW|SERVER_UNAVAILABLE/.test(e.statusCode ?? ''),
            ),
          },
    );
  }

  private async bulk(operation: BulkOperation, items: Prepared[]): Promise<Outcome[]> {
    this.stats.bulkJobs++;
    const rows: BulkRow[] = items.map((item) => {
      const cells: Record<string, string> = {};
      if (operation === 'update' || operation === 'delete') cells.Id = item.id as string;
      if (operation === 'upsert' && this.matchField) cells[this.matchField] = item.match as string;
      if (operation !== 'delete') Object.assign(cells, item.cells);
      if (operation === 'upsert' && this.matchField) cells[this.matchField] = item.match as string;
      return { cells, keys: item.change.key };
    });
    this.ctx.log.info(
      { object: this.object, operation, rows: rows.length, threshold: this.bulkThreshold },
      'Salesforce Bulk API 2.0 ingest job',
    );
    return runBulkJob(this.client, {
      object: this.object,
      operation,
      ...(operation === 'upsert' && this.matchField ? { externalIdFieldName: this.matchField } : {}),
      rows,
      signal: this.ctx.signal,
    });
  }

  stopReason(): { reason: 'DailyLimitReached'; message: string } | undefined {
    if (!this.client.dailyLimitReached) return undefined;
    const { max } = this.client.dailyQuota;
    return {
      reason: 'DailyLimitReached',
      message: `the Salesforce daily API request limit${max === undefined ? '' : ` (${max} requests per 24 hours)`} is reached: the rows not sent stay pending for the next run`,
    };
  }

  async close(): Promise<void> {
    this.ctx.log.info({ object: this.object, ...this.stats }, 'Salesforce delivery finished');
    if (this.client.dailyLimitReached)
      this.ctx.log.warn(
        { daily: this.client.dailyQuota },
        'Salesforce daily API limit reached; the rest of the rows stay pending',
      );
  }
}

/** Every mapping must name a writable field, or a relationship and an external id of its parent. */
async function targetsOf(
  client: SaasClient,
  ctx: DeliveryContext,
  object: string,
  describe: SalesforceDescribe,
): Promise<Target[]> {
  const names = describe.fields.map((f) => f.name);
  const byName = new Map(describe.fields.map((f) => [f.name.toLowerCase(), f]));
  const parents = new Map<string, SalesforceDescribe>();
  const targets: Target[] = [];
  for (const m of ctx.mappings) {
    const dot = m.to.indexOf('.');
    if (dot < 0) {
      const field = byName.get(m.to.toLowerCase());
      if (!field)
        throw new SynclineError(
          'UnknownField',
          `${object} has no field "${m.to}" (mapping from ${m.from ?? 'a value'}); closest: ${closest(m.to, names).join(', ')}. Use the field's API name (custom fields end in __c)`,
        );
      if (field.name !== m.to)
        throw new SynclineError(
          'UnknownField',
          `mapping to "${m.to}": the field's API name is ${field.name}`,
        );
      if (field.createable === false && field.updateable === false)
        throw new SynclineError(
          'UnknownField',
          `${object}.${field.name} is read-only (not createable or updateable)`,
        );
      targets.push({ kind: 'field', to: m.to, field });
      continue;
    }
    const relationship = m.to.slice(0, dot);
    const parentField = m.to.slice(dot + 1);
    const reference = describe.fields.find(
      (f) => f.type === 'reference' && f.relationshipName?.toLowerCase() === relationship.toLowerCase(),
    );
    if (!reference || reference.relationshipName !== relationship)
      throw new SynclineError(
        'UnknownField',
        `mapping to "${m.to}": ${object} has no relationship "${relationship}"; relationships: ${describe.fields
          .filter((f) => f.relationshipName)
          .map((f) => f.relationshipName)
          .join(', ')}`,
      );
    const parentName = reference.referenceTo?.[0] as string;
    const parent = parents.get(parentName) ?? (await describeObject(client, parentName));
    parents.set(parentName, parent);
    const pf = parent.fields.find((f) => f.name === parentField);
    if (!pf || !isMatchable(pf))
      throw new SynclineError(
        'UnknownField',
        `mapping to "${m.to}": ${parentName}.${parentField} is not an external id field of ${parentName}; external ids: ${parent.fields
          .filter(isMatchable)
          .map((f) => f.name)
          .join(', ')}`,
      );
    targets.push({ kind: 'lookup', to: m.to, relationship, parentField, reference });
  }
  const match = ctx.sync.spec.target?.matchField;
  if (match !== undefined) {
    const field = byName.get(match.toLowerCase());
    if (!field || field.name !== match)
      throw new SynclineError(
        'UnknownField',
        `${object} has no field "${match}" (target.matchField); closest: ${closest(match, names).join(', ')}`,
      );
    if (!isMatchable(field))
      throw new SynclineError(
        'UnknownField',
        `${object}.${match} (target.matchField) is not an External ID field, so Salesforce cannot match records by it: mark it External ID (and Unique) in Setup, or name one that is (${describe.fields
          .filter(isMatchable)
          .map((f) => f.name)
          .join(', ')})`,
      );
  }
  return targets;
}

export const salesforceDestination: DestinationConnector = {
  capabilities: {
    modes: ['upsert', 'insert', 'update'],
    deleteBehaviors: ['ignore', 'delete', 'clear'],
    comparesAllColumns: false,
    defaultBatchSize: MAX_RECORDS,
    needsTarget: 'object',
    // upsert names it as the external id; update looks the record Id up by it when none is known yet.
    requiresMatchField: ['upsert', 'update'],
    matchFieldHint: 'an External ID field (such as External_Id__c)',
    refusedColumns: REFUSED_COLUMNS,
    recordIds: true,
    discovers: true,
    idempotencyKeys: false,
    sharedQuota: true,
  },

  identity: (destination: DestinationSpec, sync: SyncSpec) => ({
    type: 'salesforce',
    loginUrl: destination.salesforce?.loginUrl ?? DEFAULT_LOGIN_URL,
    user: destination.salesforce?.jwt?.username ?? destination.salesforce?.oauth?.clientId,
    object: sync.target?.object,
    matchField: sync.target?.matchField,
  }),

  async check(destination: DestinationSpec, ctx: ConnectorContext): Promise<void> {
    const { client } = await connect(destination, ctx.secrets, { signal: ctx.signal });
    try {
      await client.request('GET', '/limits', { operation: 'check' });
    } catch (error) {
      const fatal = fatalError(error, 'Salesforce');
      if (fatal) throw fatal;
      if (error instanceof ApiError && error.dailyLimit)
        throw new SynclineError('DailyLimitReached', error.message, { retryable: true, cause: error });
      throw new SynclineError('DestinationUnreachable', (error as Error).message, {
        retryable: true,
        cause: error,
      });
    }
  },

  async discover(
    destination: DestinationSpec,
    ctx: ConnectorContext,
    objects: string[],
  ): Promise<DestinationObject[]> {
    const { client } = await connect(destination, ctx.secrets, { signal: ctx.signal });
    const found: DestinationObject[] = [];
    for (const name of objects) {
      const d = await describeObject(client, name);
      const object: DestinationObject = { name: d.name, fields: d.fields.map(fieldOf) };
      if (d.labelPlural ?? d.label) object.label = (d.labelPlural ?? d.label) as string;
      found.push(object);
    }
    return found;
  },

  async open(ctx: DeliveryContext): Promise<DestinationWriter> {
    const object = ctx.sync.spec.target?.object;
    if (!object)
      throw new SynclineError(
        'MissingTarget',
        'a Sync to Salesforce needs target.object: the sObject API name (Contact, Lead, Account, Customer__c)',
      );
    const { client, settings } = await connect(ctx.destination, ctx.secrets, ctx);
    const describe = await describeObject(client, object);
    const targets = await targetsOf(client, ctx, object, describe);
    return new SalesforceWriter(ctx, client, describe.name, describe, targets, settings.bulkThreshold);
  },
};
