// HubSpot CRM as a Destination: contacts, companies, deals, tickets and custom objects through the CRM v3
// batch endpoints (upsert by idProperty, create, update by id or idProperty, archive), "" to clear, and
// associations through the v4 associations batch API. Built on the SaaS kit (connectors/saas/): token,
// client (rate-limit headers, daily quota), batches (100 inputs, bad rows isolated, results by key).
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
import { oauthRefreshToken, secretValue, staticToken, TokenProvider } from '../saas/auth.ts';
import {
  byKey,
  chunk,
  jsonBytes,
  sendIsolating,
  writeByOperation,
  type ItemFailure,
  type PartOutcome,
} from '../saas/batches.ts';
import { ApiError, hubspotRateLimits, SaasClient, type ClientContext } from '../saas/client.ts';
import { failureOf, fatalError } from '../saas/results.ts';
import {
  closest,
  fieldOf,
  isUniqueProperty,
  propertyValue,
  REFUSED_COLUMNS,
  type HubSpotProperty,
} from './types.ts';

type Settings = NonNullable<DestinationSpec['hubspot']>;
type Association = NonNullable<NonNullable<SyncSpec['target']>['associations']>[number];

/** HubSpot's batch endpoints take at most 100 inputs. */
export const MAX_INPUTS = 100;
/** Bytes of one batch body we send at most (HubSpot refuses large bodies; 100 inputs rarely come near). */
export const MAX_BODY_BYTES = 3_000_000;
const DEFAULT_BASE_URL = 'https://api.hubapi.com';

function settingsOf(spec: DestinationSpec): Settings {
  if (!spec.hubspot)
    throw new SynclineError(
      'InvalidDestination',
      'a hubspot Destination needs the hubspot block with privateAppToken or oauth',
    );
  if ((spec.hubspot.privateAppToken === undefined) === (spec.hubspot.oauth === undefined))
    throw new SynclineError(
      'InvalidDestination',
      'set exactly one of hubspot.privateAppToken or hubspot.oauth',
    );
  return { ...spec.hubspot, baseUrl: spec.hubspot.baseUrl ?? DEFAULT_BASE_URL };
}

function tokenProvider(settings: Settings, secrets: ConnectorContext['secrets']): TokenProvider {
  if (settings.privateAppToken)
    return new TokenProvider(
      staticToken(secretValue(secrets, settings.privateAppToken), 'HubSpot private app token'),
    );
  const oauth = settings.oauth as NonNullable<Settings['oauth']>;
  return new TokenProvider(
    oauthRefreshToken({
      tokenUrl: `${settings.baseUrl.replace(/\/+$/, '')}/oauth/v1/token`,
      clientId: oauth.clientId,
      clientSecret: secretValue(secrets, oauth.clientSecret),
      refreshToken: secretValue(secrets, oauth.refreshToken),
    }),
  );
}

function clientOf(settings: Settings, auth: TokenProvider, ctx: ClientContext): SaasClient {
  return new SaasClient(
    {
      name: 'HubSpot',
      baseUrl: settings.baseUrl,
      auth,
      rateLimits: hubspotRateLimits,
      timeoutMs: 60_000,
      isExpired: (status, body) => status === 401 && !/INVALID_AUTHENTICATION/.test(body),
    },
    ctx,
  );
}

const enc = encodeURIComponent;

/** HubSpot's message of an error answer: message, then the details it lists. */
function hubspotMessage(body: string, fallback: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: string; errors?: { message?: string }[] };
    if (typeof parsed.message === 'string') return parsed.message;
    const first = parsed.errors?.find((e) => typeof e.message === 'string')?.message;
    if (first) return first;
  } catch {
    // not JSON
  }
  return fallback;
}

/** Properties of an object type; a type HubSpot does not know is UnknownObject. */
async function readProperties(client: SaasClient, objectType: string): Promise<HubSpotProperty[]> {
  try {
    const response = await client.request<{ results?: HubSpotProperty[] }>(
      'GET',
      `/crm/v3/properties/${enc(objectType)}`,
      { operation: 'properties' },
    );
    return response.json?.results ?? [];
  } catch (error) {
    const fatal = fatalError(error, 'HubSpot');
    if (fatal) throw fatal;
    if (error instanceof ApiError && (error.status === 400 || error.status === 404)) {
      const known = await customObjectNames(client).catch(() => []);
      throw new SynclineError(
        'UnknownObject',
        `HubSpot has no object type "${objectType}" (target.object): use contacts, companies, deals, tickets, or a custom object's name or objectTypeId${known.length ? ` (custom objects: ${known.join(', ')})` : ''}`,
      );
    }
    if (error instanceof ApiError)
      throw new SynclineError('DestinationUnreachable', error.message, { retryable: true, cause: error });
    throw error;
  }
}

interface ObjectSchema {
  objectTypeId?: string;
  name?: string;
  fullyQualifiedName?: string;
  labels?: { singular?: string; plural?: string };
}

async function customObjects(client: SaasClient): Promise<ObjectSchema[]> {
  const response = await client.request<{ results?: ObjectSchema[] }>('GET', '/crm/v3/schemas', {
    operation: 'schemas',
  });
  return response.json?.results ?? [];
}

async function customObjectNames(client: SaasClient): Promise<string[]> {
  return (await customObjects(client)).map((s) => `${s.name} (${s.objectTypeId})`);
}

const STANDARD = new Set([
  'contacts',
  'companies',
  'deals',
  'tickets',
  'products',
  'line_items',
  'quotes',
  'calls',
  'emails',
  'meetings',
  'notes',
  'tasks',
]);

/** A change ready to send: its index in the write batch, properties, match value and record id. */
interface Prepared {
  index: number;
  change: RowChange;
  properties: Record<string, string>;
  /** The value of target.matchField, when the row carries it. */
  match: string | undefined;
}

type Outcome = { ok: true; recordId?: string } | ItemFailure;

interface BatchRecord {
  id: string;
  properties?: Record<string, string | null>;
  objectWriteTraceId?: string;
}

interface BatchAnswer {
  results?: BatchRecord[];
  errors?: { message?: string; category?: string; context?: Record<string, string[]> }[];
}

class HubSpotWriter implements DestinationWriter {
  private readonly ctx: DeliveryContext;
  private readonly client: SaasClient;
  private readonly objectType: string;
  private readonly matchField: string | undefined;
  private readonly properties: Map<string, HubSpotProperty>;
  private readonly associations: Association[];
  private readonly associationTypes = new Map<string, { category: string; typeId: number } | 'default'>();

  constructor(ctx: DeliveryContext, client: SaasClient, objectType: string, properties: HubSpotProperty[]) {
    this.ctx = ctx;
    this.client = client;
    this.objectType = objectType;
    this.matchField = ctx.sync.spec.target?.matchField;
    this.properties = new Map(properties.map((p) => [p.name, p]));
    this.associations = ctx.sync.spec.target?.associations ?? [];
  }

  private normalize = (value: string) => value.trim().toLowerCase();

  /** The properties of a change, converted, or the first value that cannot be sent. */
  private prepare(change: RowChange, index: number): Prepared | ItemFailure {
    const properties: Record<string, string> = {};
    const clearing = change.operation === 'clear';
    for (const [name, raw] of Object.entries(change.fields)) {
      const property = this.properties.get(name);
      if (clearing) {
        if (name !== this.matchField) properties[name] = '';
        continue;
      }
      const value = propertyValue(property, raw);
      if (value === undefined) {
        // NULL: nothing to set on a new record; on an existing one "" clears the value, as the model says.
        if (change.operation !== 'insert') properties[name] = '';
        continue;
      }
      if (typeof value !== 'string')
        return { ok: false, reason: `property ${name}: ${value.refused}`, retryable: false };
      properties[name] = value;
    }
    const matchRaw = this.matchField === undefined ? undefined : change.fields[this.matchField];
    const matchValue =
      this.matchField === undefined
        ? undefined
        : propertyValue(this.properties.get(this.matchField), matchRaw);
    const match = typeof matchValue === 'string' && matchValue !== '' ? matchValue : undefined;
    if (clearing && this.matchField) delete properties[this.matchField];
    return { index, change, properties, match };
  }

  async write(batch: RowChange[]): Promise<RowResult[]> {
    const results = await writeByOperation<Prepared, Outcome>(
      batch,
      (change, index) => this.prepare(change, index),
      (operation, items) => this.deliver(operation, items),
    );
    if (this.associations.length > 0) await this.associate(batch, results);
    return results;
  }

  private async deliver(operation: string, items: Prepared[]): Promise<Outcome[]> {
    switch (operation) {
      case 'upsert':
        return this.upsert(items);
      case 'insert':
        return this.inBatches(items, (part) => this.send('create', part));
      case 'update':
        return this.update(items, false);
      case 'clear':
        return this.update(items, true);
      case 'delete':
        return this.archive(items);
      default:
        return items.map(() => ({
          ok: false,
          reason: `HubSpot destinations do not take ${operation} operations`,
          retryable: false,
        }));
    }
  }

  /** Batches of at most 100 inputs and MAX_BODY_BYTES, each sent with bad rows isolated. */
  private async inBatches(
    items: Prepared[],
    send: (part: readonly Prepared[]) => Promise<PartOutcome<Outcome>>,
  ): Promise<Outcome[]> {
    const byIndex = new Map<number, Outcome>();
    for (const part of chunk(items, {
      maxItems: MAX_INPUTS,
      maxBytes: MAX_BODY_BYTES,
      size: (p) => jsonBytes(p.properties) + 200,
    })) {
      const outcomes = await sendIsolating(part, send, { signal: this.ctx.signal });
      part.forEach((item, i) => byIndex.set(item.index, outcomes[i] as Outcome));
    }
    return items.map((item) => byIndex.get(item.index) as Outcome);
  }

  private needMatch(items: Prepared[], what: string): { ready: Prepared[]; failures: Map<number, Outcome> } {
    const failures = new Map<number, Outcome>();
    const ready: Prepared[] = [];
    for (const item of items) {
      if (item.match !== undefined) ready.push(item);
      else
        failures.set(item.index, {
          ok: false,
          reason: this.matchField
            ? `no value for ${this.matchField} (target.matchField) to ${what} the record by`
            : `set target.matchField (a unique property such as email) to ${what} records`,
          retryable: false,
        });
    }
    return { ready, failures };
  }

  private async upsert(items: Prepared[]): Promise<Outcome[]> {
    const { ready, failures } = this.needMatch(items, 'upsert');
    const outcomes = await this.inBatches(ready, (part) => this.send('upsert', part));
    const byIndex = new Map(ready.map((item, i) => [item.index, outcomes[i] as Outcome]));
    return items.map((item) => failures.get(item.index) ?? (byIndex.get(item.index) as Outcome));
  }

  /**
   * Update (or clear) by record id when the engine knows it, else by idProperty. A stale id (the record was
   * deleted in HubSpot) is tried again by idProperty; a record that is not there is an error for update and
   * done for clear (there is nothing left to clear).
   */
  private async update(items: Prepared[], clearing: boolean): Promise<Outcome[]> {
    const failures = new Map<number, Outcome>();
    const byId = items.filter((i) => i.change.recordId !== undefined);
    const rest = items.filter((i) => i.change.recordId === undefined);
    const byIdOutcomes = await this.inBatches(byId, (part) => this.send('update', part, true));
    const retry: Prepared[] = [];
    const done = new Map<number, Outcome>();
    byId.forEach((item, i) => {
      const outcome = byIdOutcomes[i] as Outcome;
      if (
        !outcome.ok &&
        /OBJECT_NOT_FOUND|not found|does not exist/i.test(outcome.reason) &&
        item.match !== undefined
      )
        retry.push(item);
      else done.set(item.index, outcome);
    });
    const { ready, failures: unmatched } = this.needMatch([...rest, ...retry], clearing ? 'clear' : 'update');
    for (const [index, outcome] of unmatched) failures.set(index, outcome);
    const outcomes = await this.inBatches(ready, (part) => this.send('update', part, false));
    ready.forEach((item, i) => done.set(item.index, outcomes[i] as Outcome));
    return items.map((item) => {
      const outcome = failures.get(item.index) ?? (done.get(item.index) as Outcome);
      if (clearing && !outcome.ok && /OBJECT_NOT_FOUND|not found|does not exist/i.test(outcome.reason))
        return { ok: true };
      return outcome;
    });
  }

  /** Archive: ids from the engine, else looked up by idProperty; a record already gone counts as done. */
  private async archive(items: Prepared[]): Promise<Outcome[]> {
    const outcomes = new Map<number, Outcome>();
    const ids = new Map<number, string>();
    const lookups: Prepared[] = [];
    for (const item of items) {
      if (item.change.recordId) ids.set(item.index, item.change.recordId);
      else if (item.match !== undefined) lookups.push(item);
      else
        outcomes.set(item.index, {
          ok: false,
          reason: this.matchField
            ? `cannot delete: no record id is known and ${this.matchField} (target.matchField) is not a field mapped from the primary key, so the removed row does not carry it`
            : 'cannot delete: set target.matchField (a unique property mapped from the primary key)',
          retryable: false,
        });
    }
    for (const part of chunk(lookups, { maxItems: MAX_INPUTS })) {
      try {
        const found = await this.readBy(
          this.objectType,
          this.matchField as string,
          part.map((p) => p.match as string),
          part.map((p) => p.change.key),
        );
        for (const item of part) {
          const id = found.get(this.normalize(item.match as string));
          if (id === undefined) outcomes.set(item.index, { ok: true });
          else ids.set(item.index, id);
        }
      } catch (error) {
        const fatal = fatalError(error, 'HubSpot');
        if (fatal) throw fatal;
        for (const item of part) outcomes.set(item.index, failureOf(error));
      }
    }
    const toArchive = items.filter((item) => ids.has(item.index));
    for (const part of chunk(toArchive, { maxItems: MAX_INPUTS })) {
      try {
        await this.client.request('POST', `/crm/v3/objects/${enc(this.objectType)}/batch/archive`, {
          body: { inputs: part.map((p) => ({ id: ids.get(p.index) as string })) },
          keys: part.map((p) => p.change.key),
          operation: 'delete',
          allowNotFound: true,
        });
        for (const item of part) outcomes.set(item.index, { ok: true });
      } catch (error) {
        const fatal = fatalError(error, 'HubSpot');
        if (fatal) throw fatal;
        for (const item of part) outcomes.set(item.index, failureOf(error));
      }
    }
    return items.map((item) => outcomes.get(item.index) as Outcome);
  }

  /** Record ids of records of `objectType` whose `property` has one of `values` (normalized value → id). */
  private async readBy(
    objectType: string,
    property: string,
    values: string[],
    keys: string[],
  ): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    const unique = [...new Set(values)];
    for (const part of chunk(unique, { maxItems: MAX_INPUTS })) {
      const response = await this.client.request<BatchAnswer>(
        'POST',
        `/crm/v3/objects/${enc(objectType)}/batch/read`,
        {
          body: { inputs: part.map((id) => ({ id })), idProperty: property, properties: [property] },
          keys,
          operation: 'read',
          allowNotFound: true,
        },
      );
      for (const record of response.json?.results ?? []) {
        const value = record.properties?.[property];
        if (typeof value === 'string') found.set(this.normalize(value), record.id);
      }
    }
    return found;
  }

  /** One request of create, upsert or update for `part`, with per-row outcomes. */
  private async send(
    kind: 'create' | 'upsert' | 'update',
    part: readonly Prepared[],
    byRecordId = false,
  ): Promise<PartOutcome<Outcome>> {
    const trace = (p: Prepared) => `${p.index}`;
    const inputs = part.map((p) => {
      if (kind === 'create') return { properties: p.properties, objectWriteTraceId: trace(p) };
      if (byRecordId)
        return { id: p.change.recordId as string, properties: p.properties, objectWriteTraceId: trace(p) };
      return {
        id: p.match as string,
        idProperty: this.matchField as string,
        properties: p.properties,
        objectWriteTraceId: trace(p),
      };
    });
    let answer: BatchAnswer;
    try {
      const response = await this.client.request<BatchAnswer>(
        'POST',
        `/crm/v3/objects/${enc(this.objectType)}/batch/${kind}`,
        {
          body: { inputs },
          keys: part.map((p) => p.change.key),
          operation: part[0]?.change.operation ?? kind,
        },
      );
      answer = response.json ?? {};
    } catch (error) {
      const fatal = fatalError(error, 'HubSpot');
      if (fatal) throw fatal;
      if (
        error instanceof ApiError &&
        !error.dailyLimit &&
        !error.retryable &&
        (error.status === 400 || error.status === 409)
      ) {
        const message = hubspotMessage(error.body, error.message);
        return {
          kind: 'rejected',
          splittable: part.length > 1,
          failure: {
            ok: false,
            reason: `HubSpot refused the ${kind} (HTTP ${error.status}): ${message}`,
            retryable: false,
          },
        };
      }
      return { kind: 'rejected', splittable: false, failure: failureOf(error) };
    }
    // Errors of a 207 name their inputs by trace id, id (the idProperty value or the record id) or index.
    const errorOf = new Map<string, string>();
    for (const e of answer.errors ?? []) {
      const message = `HubSpot refused the row${e.category ? ` (${e.category})` : ''}: ${e.message ?? 'no message'}`;
      for (const t of e.context?.objectWriteTraceId ?? []) errorOf.set(`t:${t}`, message);
      for (const id of e.context?.ids ?? []) errorOf.set(`i:${this.normalize(id)}`, message);
      for (const i of e.context?.inputIndexes ?? []) {
        const item = part[Number(i)];
        if (item) errorOf.set(`t:${trace(item)}`, message);
      }
    }
    const itemKeys = part.map((p) => {
      const keys = [`t:${trace(p)}`];
      if (byRecordId && p.change.recordId) keys.push(`i:${p.change.recordId}`);
      if (!byRecordId && p.match !== undefined) keys.push(`m:${this.normalize(p.match)}`);
      return keys;
    });
    const unattributed = (answer.errors ?? []).find((e) => !e.context || Object.keys(e.context).length === 0);
    const outcomes = byKey<BatchRecord>(
      itemKeys,
      answer.results ?? [],
      (r) => {
        const match = this.matchField ? r.properties?.[this.matchField] : undefined;
        return [
          r.objectWriteTraceId ? `t:${r.objectWriteTraceId}` : undefined,
          `i:${r.id}`,
          typeof match === 'string' ? `m:${this.normalize(match)}` : undefined,
        ];
      },
      (i) => {
        const keys = itemKeys[i] as string[];
        const item = part[i] as Prepared;
        const message =
          keys.map((k) => errorOf.get(k)).find((m) => m !== undefined) ??
          errorOf.get(
            `i:${this.normalize(byRecordId ? (item.change.recordId ?? '') : (item.match ?? ''))}`,
          ) ??
          (unattributed?.message ? `HubSpot refused the row: ${unattributed.message}` : undefined);
        return {
          ok: false,
          reason: message ?? 'HubSpot answered no result for this row',
          retryable: message === undefined,
        };
      },
    );
    return {
      kind: 'items',
      outcomes: outcomes.map((o): Outcome => ('ok' in o ? o : { ok: true, recordId: o.id })),
    };
  }

  /** The association type to use from this object to `to`: a numeric id, "CATEGORY:id", or the default. */
  private associationType(a: Association): { category: string; typeId: number } | 'default' {
    const id = `${a.object}:${a.type ?? ''}`;
    const known = this.associationTypes.get(id);
    if (known) return known;
    let type: { category: string; typeId: number } | 'default' = 'default';
    const text = a.type?.trim();
    if (text) {
      const m = /^(?:(HUBSPOT_DEFINED|USER_DEFINED|INTEGRATOR_DEFINED|WORK):)?(\d+)$/.exec(text);
      if (!m)
        throw new SynclineError(
          'InvalidDestination',
          `target.associations type "${text}" (to ${a.object}): give the association type id, e.g. 279, or CATEGORY:id such as USER_DEFINED:36`,
        );
      type = { category: m[1] ?? 'HUBSPOT_DEFINED', typeId: Number(m[2]) };
    }
    this.associationTypes.set(id, type);
    return type;
  }

  /** The value of an association's column in a change (the engine sends it in RowChange.context). */
  private associationValue(a: Association, change: RowChange): string | undefined {
    const mapping = this.ctx.mappings.find((m) => m.from === a.from);
    const raw = change.context?.[a.from] ?? (mapping ? change.fields[mapping.to] : undefined);
    if (raw === null || raw === undefined) return undefined;
    const text = String(
      typeof raw === 'object' && 'rawJSON' in (raw as object) ? (raw as { rawJSON: string }).rawJSON : raw,
    ).trim();
    return text === '' ? undefined : text;
  }

  /**
   * After the records are written: each written row is associated with the records of each association's
   * object whose matchField equals the row's value. A value with no record, or a refused association, fails
   * the row (retried next run, the record write being idempotent).
   */
  private async associate(batch: RowChange[], results: Outcome[]): Promise<void> {
    for (const a of this.associations) {
      const rows: { index: number; from: string; value: string }[] = [];
      batch.forEach((change, index) => {
        const result = results[index];
        if (change.operation === 'delete' || change.operation === 'clear') return;
        if (!result?.ok || !result.recordId) return;
        const value = this.associationValue(a, change);
        if (value !== undefined) rows.push({ index, from: result.recordId, value });
      });
      if (rows.length === 0) continue;
      const fail = (index: number, reason: string, retryable = false) => {
        results[index] = { ok: false, reason, retryable };
      };
      let targets: Map<string, string>;
      try {
        targets = await this.readBy(
          a.object,
          a.matchField,
          rows.map((r) => r.value),
          rows.map((r) => batch[r.index]?.key as string),
        );
      } catch (error) {
        const fatal = fatalError(error, 'HubSpot');
        if (fatal) throw fatal;
        const failure = failureOf(error);
        for (const r of rows)
          fail(r.index, `association to ${a.object}: ${failure.reason}`, failure.retryable);
        continue;
      }
      const pairs: { index: number; from: string; to: string }[] = [];
      for (const r of rows) {
        const to = targets.get(this.normalize(r.value));
        if (to === undefined)
          fail(
            r.index,
            `association to ${a.object}: no ${a.object} record has ${a.matchField} = ${JSON.stringify(r.value)} (the record was written; the association is retried next run)`,
          );
        else pairs.push({ index: r.index, from: r.from, to });
      }
      const type = this.associationType(a);
      const path =
        type === 'default'
          ? `/crm/v4/associations/${enc(this.objectType)}/${enc(a.object)}/batch/associate/default`
          : `/crm/v4/associations/${enc(this.objectType)}/${enc(a.object)}/batch/create`;
      for (const part of chunk(pairs, { maxItems: MAX_INPUTS })) {
        const inputs = part.map((p) =>
          type === 'default'
            ? { from: { id: p.from }, to: { id: p.to } }
            : {
                from: { id: p.from },
                to: { id: p.to },
                types: [{ associationCategory: type.category, associationTypeId: type.typeId }],
              },
        );
        try {
          const response = await this.client.request<
            BatchAnswer & { errors?: { message?: string; context?: Record<string, string[]> }[] }
          >('POST', path, {
            body: { inputs },
            keys: part.map((p) => batch[p.index]?.key as string),
            operation: 'associate',
          });
          for (const e of response.json?.errors ?? []) {
            const ids = new Set(Object.values(e.context ?? {}).flat());
            for (const p of part)
              if (ids.size === 0 || ids.has(p.from) || ids.has(p.to))
                fail(p.index, `association to ${a.object}: ${e.message ?? 'refused'}`);
          }
        } catch (error) {
          const fatal = fatalError(error, 'HubSpot');
          if (fatal) throw fatal;
          const failure = failureOf(error);
          for (const p of part)
            fail(p.index, `association to ${a.object}: ${failure.reason}`, failure.retryable);
        }
      }
    }
  }

  stopReason(): { reason: 'DailyLimitReached'; message: string } | undefined {
    if (!this.client.dailyLimitReached) return undefined;
    return {
      reason: 'DailyLimitReached',
      message: `the HubSpot daily API limit (${this.client.dailyQuota ?? 'unknown'} requests a day) is reached: the rows not sent stay pending for the next run`,
    };
  }

  async close(): Promise<void> {
    if (this.client.dailyLimitReached)
      this.ctx.log.warn(
        { daily: this.client.dailyQuota },
        'HubSpot daily API limit reached; the rest of the rows stay pending',
      );
  }
}

/** Every mapped field and the match field must be properties of the object. */
function checkFields(ctx: DeliveryContext, objectType: string, properties: HubSpotProperty[]): void {
  const names = properties.map((p) => p.name);
  const byName = new Map(properties.map((p) => [p.name, p]));
  const associationOnly = new Set<string>();
  for (const m of ctx.mappings) {
    if (m.to.includes('.'))
      throw new SynclineError(
        'UnknownField',
        `mapping to "${m.to}": HubSpot properties are flat; name a property without dots`,
      );
    if (!byName.has(m.to) && !associationOnly.has(m.to))
      throw new SynclineError(
        'UnknownField',
        `${objectType} has no property "${m.to}" (mapping from ${m.from ?? 'a value'}); closest: ${closest(m.to, names).join(', ')}. Create the property in HubSpot or fix the mapping`,
      );
  }
  const match = ctx.sync.spec.target?.matchField;
  if (match !== undefined) {
    const property = byName.get(match);
    if (!property)
      throw new SynclineError(
        'UnknownField',
        `${objectType} has no property "${match}" (target.matchField); closest: ${closest(match, names).join(', ')}`,
      );
    if (!isUniqueProperty(objectType, property) && match !== 'hs_object_id')
      throw new SynclineError(
        'UnknownField',
        `${objectType} property "${match}" (target.matchField) does not have unique values, so HubSpot cannot match records by it: use a property with "unique values" set, such as email or a custom unique id`,
      );
  }
}

export const hubspotDestination: DestinationConnector = {
  capabilities: {
    modes: ['upsert', 'insert', 'update'],
    deleteBehaviors: ['ignore', 'delete', 'clear'],
    comparesAllColumns: false,
    defaultBatchSize: 100,
    needsTarget: 'object',
    // upsert sends it as idProperty; update finds records by it when no record id is known yet.
    requiresMatchField: ['upsert', 'update'],
    matchFieldHint: 'a property with unique values (contacts: email, or a custom unique id)',
    refusedColumns: REFUSED_COLUMNS,
    recordIds: true,
    discovers: true,
    sharedQuota: true,
    idempotencyKeys: false,
  },

  identity: (destination: DestinationSpec, sync: SyncSpec) => ({
    type: 'hubspot',
    baseUrl: destination.hubspot?.baseUrl ?? DEFAULT_BASE_URL,
    object: sync.target?.object,
    matchField: sync.target?.matchField,
  }),

  async check(destination: DestinationSpec, ctx: ConnectorContext): Promise<void> {
    const settings = settingsOf(destination);
    const client = clientOf(settings, tokenProvider(settings, ctx.secrets), { signal: ctx.signal });
    await readProperties(client, 'contacts');
  },

  async discover(
    destination: DestinationSpec,
    ctx: ConnectorContext,
    objects: string[],
  ): Promise<DestinationObject[]> {
    const settings = settingsOf(destination);
    const client = clientOf(settings, tokenProvider(settings, ctx.secrets), { signal: ctx.signal });
    const custom = objects.some((o) => !STANDARD.has(o)) ? await customObjects(client).catch(() => []) : [];
    const found: DestinationObject[] = [];
    for (const name of objects) {
      const properties = await readProperties(client, name);
      const schema = custom.find(
        (s) => s.name === name || s.fullyQualifiedName === name || s.objectTypeId === name,
      );
      const object: DestinationObject = {
        name,
        fields: properties.map((p) => fieldOf(name, p)),
      };
      const label =
        schema?.labels?.plural ?? (STANDARD.has(name) ? name[0]?.toUpperCase() + name.slice(1) : undefined);
      if (label) object.label = label;
      found.push(object);
    }
    return found;
  },

  async open(ctx: DeliveryContext): Promise<DestinationWriter> {
    const settings = settingsOf(ctx.destination);
    const objectType = ctx.sync.spec.target?.object;
    if (!objectType)
      throw new SynclineError(
        'MissingTarget',
        'a Sync to HubSpot needs target.object: contacts, companies, deals, tickets or a custom object',
      );
    const client = clientOf(settings, tokenProvider(settings, ctx.secrets), ctx);
    const properties = await readProperties(client, objectType);
    checkFields(ctx, objectType, properties);
    return new HubSpotWriter(ctx, client, objectType, properties);
  },
};
