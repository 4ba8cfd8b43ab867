// The org's records and the rules a write goes through, shared by the REST (sObject Rows and
// Collections) and Bulk API 2.0 paths: value types and formats, lengths, restricted picklists, required
// fields, unique and external-id fields, lookups by the parent's id or by its external id, the recycle bin.
import { makeId, normalizeId } from './ids.ts';
import { field, isRequired, SOBJECTS, sobject, type FieldDef, type SObjectDef } from './schema.ts';

export type Value = string | number | boolean | null;
export type SfRecord = Record<string, Value>;

/** One error of a record, as the REST API's `errors` arrays carry it. */
export interface SfError {
  statusCode: string;
  message: string;
  fields: string[];
}

/** An error of the whole request (HTTP 4xx with `[{message, errorCode}]`). */
export class RequestError extends Error {
  readonly status: number;
  readonly errorCode: string;
  readonly fields: string[] | undefined;
  constructor(status: number, errorCode: string, message: string, fields?: string[]) {
    super(message);
    this.status = status;
    this.errorCode = errorCode;
    this.fields = fields;
  }
  body(): Array<Record<string, unknown>> {
    return [
      { message: this.message, errorCode: this.errorCode, ...(this.fields ? { fields: this.fields } : {}) },
    ];
  }
}

/** Whether a look-up answered with an error rather than a record. */
export function isError(value: SfRecord | SfError): value is SfError {
  return typeof value.statusCode === 'string' && Array.isArray((value as SfError).fields);
}

export const err = (statusCode: string, message: string, fields: string[] = []): SfError => ({
  statusCode,
  message,
  fields,
});

/** A lookup set through the parent's external id: `Account: { External_Id__c: 'x' }` / `Account.External_Id__c`. */
export interface Lookup {
  field: FieldDef;
  parent: SObjectDef;
  parentField: FieldDef;
  value: string;
}

/** What a record asks to change, after its values are read and checked one by one. */
export interface Changes {
  set: Map<FieldDef, Value>;
  lookups: Lookup[];
  errors: SfError[];
}

export const emptyChanges = (): Changes => ({ set: new Map(), lookups: [], errors: [] });

type Coerced = { ok: true; value: Value } | { ok: false; parse: string } | { ok: false; error: SfError };

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/;
const EMAIL =
  /^[^\s@<>()[\]\\,;:"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function validDate(y: string, m: string, d: string): boolean {
  const date = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d)));
  return (
    date.getUTCFullYear() === Number(y) &&
    date.getUTCMonth() === Number(m) - 1 &&
    date.getUTCDate() === Number(d)
  );
}

/** A datetime in the form Salesforce answers with: 2024-05-06T07:08:09.000+0000 (UTC). */
export function normalizeDateTime(text: string): string | undefined {
  const m = DATETIME.exec(text);
  if (!m) return undefined;
  const [, y = '', mo = '', d = '', h = '', mi = '', s = '00', frac = '', zone = 'Z'] = m;
  if (!validDate(y, mo, d) || Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return undefined;
  const ms = (frac.slice(1) + '000').slice(0, 3);
  const offset = zone === 'Z' ? 'Z' : `${zone.slice(0, 3)}:${zone.slice(-2)}`;
  const date = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}.${ms}${offset}`);
  if (Number.isNaN(date.getTime())) return undefined;
  return date.toISOString().replace('Z', '+0000');
}

const isTextType = (f: FieldDef): boolean =>
  ['string', 'textarea', 'email', 'phone', 'url', 'picklist'].includes(f.type);

/**
 * One value for one field. `json` is a REST body (a value of the wrong JSON type is a parse error of the
 * whole request, as Salesforce's deserializer fails); `csv` a Bulk API 2.0 cell (a bad value fails the row).
 */
export function coerce(f: FieldDef, raw: unknown, source: 'json' | 'csv'): Coerced {
  const parse = (what: string): Coerced =>
    source === 'json'
      ? {
          ok: false,
          parse: `Cannot deserialize instance of ${what} from VALUE_STRING value ${String(raw)} or request may be missing a required field`,
        }
      : {
          ok: false,
          error: err(
            'INVALID_TYPE_ON_FIELD_IN_RECORD',
            `${f.label}: value not of required type: ${String(raw)}`,
            [f.name],
          ),
        };
  // Salesforce keeps no empty strings: "" is stored as null.
  if (raw === null || raw === '') return { ok: true, value: f.type === 'boolean' ? false : null };
  if (source === 'json' && typeof raw === 'object') return parse(f.type);
  if (isTextType(f)) {
    const text = String(raw);
    if (f.length !== undefined && text.length > f.length)
      return {
        ok: false,
        error: err('STRING_TOO_LONG', `${f.label}: data value too large: ${text} (max length=${f.length})`, [
          f.name,
        ]),
      };
    if (f.type === 'email' && !EMAIL.test(text))
      return {
        ok: false,
        error: err('INVALID_EMAIL_ADDRESS', `${f.label}: invalid email address: ${text}`, [f.name]),
      };
    if (f.type === 'picklist' && f.restrictedPicklist && !(f.picklistValues ?? []).includes(text))
      return {
        ok: false,
        error: err(
          'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
          `${f.label}: bad value for restricted picklist field: ${text}`,
          [f.name],
        ),
      };
    return { ok: true, value: text };
  }
  switch (f.type) {
    case 'id':
    case 'reference':
      return { ok: true, value: String(raw) };
    case 'boolean': {
      if (typeof raw === 'boolean') return { ok: true, value: raw };
      const text = String(raw).toLowerCase();
      if (text === 'true' || (source === 'csv' && text === '1')) return { ok: true, value: true };
      if (text === 'false' || (source === 'csv' && text === '0')) return { ok: true, value: false };
      return parse('boolean');
    }
    case 'double':
    case 'currency':
    case 'percent': {
      let value: number;
      if (typeof raw === 'number') value = raw;
      else if (typeof raw === 'string' && NUMBER.test(raw.trim())) value = Number(raw.trim());
      else return parse('double');
      const precision = f.precision ?? 18;
      const scale = f.scale ?? 0;
      if (!Number.isFinite(value) || Math.abs(value) >= 10 ** (precision - scale))
        return {
          ok: false,
          error: err(
            'NUMBER_OUTSIDE_VALID_RANGE',
            `${f.label}: value outside of valid range on numeric field: ${String(raw)}`,
            [f.name],
          ),
        };
      return { ok: true, value: Number(value.toFixed(scale)) };
    }
    case 'date': {
      const m = typeof raw === 'string' ? DATE.exec(raw) : null;
      if (!m || !validDate(m[1] ?? '', m[2] ?? '', m[3] ?? '')) return parse('date');
      return { ok: true, value: raw as string };
    }
    case 'datetime': {
      const value = typeof raw === 'string' ? normalizeDateTime(raw) : undefined;
      return value === undefined ? parse('datetime') : { ok: true, value };
    }
  }
  return { ok: true, value: String(raw) };
}

const noSuchColumn = (def: SObjectDef, name: string): string =>
  `No such column '${name}' on sobject of type ${def.name}`;

/** The changes a REST JSON record asks for; unknown fields and unreadable values fail the request. */
export function jsonChanges(def: SObjectDef, body: Record<string, unknown>): Changes {
  const changes = emptyChanges();
  for (const [key, raw] of Object.entries(body)) {
    if (key === 'attributes') continue;
    if (key === 'fieldsToNull') {
      if (!Array.isArray(raw))
        throw new RequestError(400, 'JSON_PARSER_ERROR', 'fieldsToNull must be an array');
      for (const name of raw) {
        const f = field(def, String(name));
        if (!f) changes.errors.push(err('INVALID_FIELD', noSuchColumn(def, String(name))));
        else changes.set.set(f, f.type === 'boolean' ? false : null);
      }
      continue;
    }
    const f = field(def, key);
    if (f) {
      const value = coerce(f, raw, 'json');
      if (value.ok) changes.set.set(f, value.value);
      else if ('parse' in value) throw new RequestError(400, 'JSON_PARSER_ERROR', value.parse);
      else changes.errors.push(value.error);
      continue;
    }
    const ref = def.fields.find((r) => r.relationshipName?.toLowerCase() === key.toLowerCase());
    if (!ref) throw new RequestError(400, 'INVALID_FIELD', noSuchColumn(def, key));
    if (raw === null) {
      changes.set.set(ref, null);
      continue;
    }
    if (typeof raw !== 'object' || Array.isArray(raw))
      throw new RequestError(400, 'JSON_PARSER_ERROR', `Cannot deserialize ${key}: expected an object`);
    const parent = sobject(ref.referenceTo?.[0] ?? '');
    const keys = Object.entries(raw as Record<string, unknown>).filter(([k]) => k !== 'attributes');
    if (!parent || keys.length !== 1) {
      changes.errors.push(
        err('INVALID_FIELD', `A relationship ${key} must name exactly one external id field of its parent`),
      );
      continue;
    }
    const [[parentKey, parentValue]] = keys as [[string, unknown]];
    const lookup = lookupOf(def, ref, parent, parentKey, parentValue);
    if ('statusCode' in lookup) changes.errors.push(lookup);
    else changes.lookups.push(lookup);
  }
  return changes;
}

export function lookupOf(
  def: SObjectDef,
  ref: FieldDef,
  parent: SObjectDef,
  parentKey: string,
  parentValue: unknown,
): Lookup | SfError {
  const parentField = field(parent, parentKey);
  if (!parentField || !(parentField.idLookup || parentField.externalId))
    return err(
      'INVALID_FIELD',
      `Field name provided, ${parentKey} is not an External ID or indexed field for ${parent.name}`,
    );
  return { field: ref, parent, parentField, value: String(parentValue) };
}

/** The result of one write, in the terms of the REST API's SaveResult / UpsertResult. */
export type WriteResult =
  { ok: true; id: string; created: boolean } | { ok: false; id?: string; errors: SfError[] };

const SYSTEM = new Set(['Id', 'IsDeleted', 'CreatedDate', 'LastModifiedDate', 'SystemModstamp']);

/** The fields records are matched by (unique, external id, idLookup): the store keeps an index of each. */
const isIndexed = (f: FieldDef): boolean =>
  f.name !== 'Id' && (f.unique === true || f.externalId === true || f.idLookup === true);

/** A value as an index key: matching is case-insensitive; null and undefined are never indexed. */
const indexKey = (value: Value | undefined): string | undefined =>
  value === null || value === undefined ? undefined : String(value).toLowerCase();

export class Store {
  /** sObject name → id → record (deleted records stay, with IsDeleted true, until hard-deleted). */
  private readonly data = new Map<string, Map<string, SfRecord>>();
  /**
   * sObject name → indexed field → lowercased value → ids of the live records with that value, so that a
   * write's unique checks and an upsert's match take a look-up instead of a scan of every record (a Bulk
   * job of N rows into N records was quadratic). Kept by put(), drop() and restore().
   */
  private readonly indexes = new Map<string, Map<string, Map<string, Set<string>>>>();
  private counter = 0;

  constructor() {
    for (const def of SOBJECTS) {
      this.data.set(def.name, new Map());
      this.indexes.set(def.name, new Map(def.fields.filter(isIndexed).map((f) => [f.name, new Map()])));
    }
  }

  /** The records of an sObject by id, for reading: change them with put() and drop(). */
  table(def: SObjectDef): ReadonlyMap<string, SfRecord> {
    return this.data.get(def.name) as Map<string, SfRecord>;
  }

  /** Store `record` under `id` (new, or replacing the record there), keeping the indexes. */
  put(def: SObjectDef, record: SfRecord, id = record.Id as string): void {
    const rows = this.data.get(def.name) as Map<string, SfRecord>;
    this.unindex(def, id, rows.get(id));
    rows.set(id, record);
    this.index(def, id, record);
  }

  /** Remove a record for good (a hard delete), keeping the indexes. */
  drop(def: SObjectDef, id: string): void {
    const rows = this.data.get(def.name) as Map<string, SfRecord>;
    this.unindex(def, id, rows.get(id));
    rows.delete(id);
  }

  private index(def: SObjectDef, id: string, record: SfRecord): void {
    if (record.IsDeleted) return;
    for (const [name, byValue] of this.indexes.get(def.name) ?? []) {
      const key = indexKey(record[name]);
      if (key === undefined) continue;
      const ids = byValue.get(key);
      if (ids) ids.add(id);
      else byValue.set(key, new Set([id]));
    }
  }

  private unindex(def: SObjectDef, id: string, record: SfRecord | undefined): void {
    if (!record || record.IsDeleted) return;
    for (const [name, byValue] of this.indexes.get(def.name) ?? []) {
      const key = indexKey(record[name]);
      const ids = key === undefined ? undefined : byValue.get(key);
      ids?.delete(id);
      if (ids?.size === 0) byValue.delete(key as string);
    }
  }

  /** A copy of the whole store, for allOrNone roll-backs (records are replaced, never mutated). */
  snapshot(): Map<string, Map<string, SfRecord>> {
    return new Map([...this.data].map(([name, rows]) => [name, new Map(rows)]));
  }

  restore(snapshot: Map<string, Map<string, SfRecord>>): void {
    for (const [name, rows] of snapshot) {
      this.data.set(name, rows);
      const def = sobject(name) as SObjectDef;
      for (const byValue of this.indexes.get(name)?.values() ?? []) byValue.clear();
      for (const [id, record] of rows) this.index(def, id, record);
    }
  }

  /** The record with this id, in any sObject, deleted or not. */
  find(id: string): { def: SObjectDef; record: SfRecord } | undefined {
    const normal = normalizeId(id);
    if (!normal) return undefined;
    const def = SOBJECTS.find((s) => s.keyPrefix === normal.slice(0, 3));
    const record = def ? this.table(def).get(normal) : undefined;
    return def && record ? { def, record } : undefined;
  }

  /** Live records whose field equals value (case-insensitively, as Salesforce's default external ids). */
  matching(def: SObjectDef, f: FieldDef, value: Value): SfRecord[] {
    if (value === null) return [];
    const wanted = String(value).toLowerCase();
    if (f.name === 'Id') {
      const normal = normalizeId(String(value));
      const record = normal ? this.table(def).get(normal) : undefined;
      return record && !record.IsDeleted ? [record] : [];
    }
    const rows = this.table(def);
    const indexed = this.indexes.get(def.name)?.get(f.name);
    if (indexed) {
      const ids = indexed.get(wanted);
      if (!ids) return [];
      // In the order of the table, as a scan would find them (several only when a test made duplicates).
      if (ids.size > 1) return [...rows].filter(([id]) => ids.has(id)).map(([, r]) => r);
      return [...ids].map((id) => rows.get(id) as SfRecord);
    }
    return [...rows.values()].filter(
      (r) =>
        !r.IsDeleted &&
        r[f.name] !== null &&
        r[f.name] !== undefined &&
        String(r[f.name]).toLowerCase() === wanted,
    );
  }

  /** The record an update by id addresses, or the error Salesforce gives for that id. */
  target(def: SObjectDef, id: unknown): SfRecord | SfError {
    if (id === undefined || id === null || id === '')
      return err('MISSING_ARGUMENT', 'Id not specified in an update call');
    const normal = normalizeId(String(id));
    if (!normal || normal.slice(0, 3) !== def.keyPrefix)
      return err('MALFORMED_ID', `${def.label} ID: id value of incorrect type: ${String(id)}`, ['Id']);
    const record = this.table(def).get(normal);
    if (!record) return err('INVALID_CROSS_REFERENCE_KEY', 'invalid cross reference id');
    if (record.IsDeleted) return err('ENTITY_IS_DELETED', 'entity is deleted');
    return record;
  }

  /**
   * Apply one record's changes: `existing` undefined creates. The order of checks follows what a
   * Salesforce save does: field access, values, lookups, required fields, then unique indexes.
   */
  write(def: SObjectDef, changes: Changes, existing: SfRecord | undefined, now: Date): WriteResult {
    const id = existing?.Id as string | undefined;
    const fail = (errors: SfError[]): WriteResult => ({ ok: false, ...(id ? { id } : {}), errors });
    const errors = [...changes.errors];
    const denied = [...changes.set.keys()].filter((f) =>
      existing ? !f.updateable && f.name !== 'Id' : !f.createable,
    );
    if (!existing && changes.set.has(field(def, 'Id') as FieldDef))
      return fail([err('INVALID_FIELD', 'cannot specify Id in an insert call', [])]);
    if (denied.length > 0) {
      const names = denied.map((f) => f.name);
      errors.push(
        err(
          'INVALID_FIELD_FOR_INSERT_UPDATE',
          `Unable to create/update fields: ${names.join(', ')}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`,
          names,
        ),
      );
    }
    const values = new Map<string, Value>();
    for (const [f, value] of changes.set) {
      if (f.name === 'Id') continue;
      if (f.type === 'reference' && value !== null) {
        const parent = this.find(String(value));
        const normal = normalizeId(String(value));
        const to = sobject(f.referenceTo?.[0] ?? '');
        if (!normal || !to || normal.slice(0, 3) !== to.keyPrefix) {
          errors.push(
            err('FIELD_INTEGRITY_EXCEPTION', `${f.label}: id value of incorrect type: ${String(value)}`, [
              f.name,
            ]),
          );
          continue;
        }
        if (!parent) {
          errors.push(err('INVALID_CROSS_REFERENCE_KEY', 'invalid cross reference id', [f.name]));
          continue;
        }
        if (parent.record.IsDeleted) {
          errors.push(err('ENTITY_IS_DELETED', 'entity is deleted', [f.name]));
          continue;
        }
        values.set(f.name, normal);
        continue;
      }
      values.set(f.name, value);
    }
    for (const lookup of changes.lookups) {
      const parents = this.matching(lookup.parent, lookup.parentField, lookup.value);
      if (parents.length === 0)
        errors.push(
          err(
            'INVALID_FIELD',
            `Foreign key external ID: ${lookup.value} not found for field ${lookup.parentField.name} in entity ${lookup.parent.name}`,
          ),
        );
      else if (parents.length > 1)
        errors.push(
          err(
            'INVALID_FIELD',
            `Foreign key external ID: ${lookup.value} matched more than one record for field ${lookup.parentField.name} in entity ${lookup.parent.name}`,
          ),
        );
      else values.set(lookup.field.name, parents[0]?.Id as string);
    }
    if (errors.length > 0) return fail(errors);
    const record: SfRecord = existing ? { ...existing } : this.blank(def);
    for (const [name, value] of values) record[name] = value;
    const missing = def.fields.filter(
      (f) => isRequired(f) && (record[f.name] === null || record[f.name] === undefined),
    );
    // A required field set to null on update is as missing as one left out on create.
    const nulled = def.fields.filter(
      (f) => !f.nillable && !SYSTEM.has(f.name) && values.has(f.name) && values.get(f.name) === null,
    );
    const required = [
      ...new Set([...missing, ...nulled].filter((f) => f.type !== 'boolean').map((f) => f.name)),
    ];
    if (required.length > 0)
      return fail([
        err('REQUIRED_FIELD_MISSING', `Required fields are missing: [${required.join(', ')}]`, required),
      ]);
    for (const f of def.fields.filter((u) => u.unique)) {
      const clash = this.matching(def, f, record[f.name] ?? null).find((r) => r.Id !== record.Id);
      if (clash)
        return fail([
          err(
            'DUPLICATE_VALUE',
            `duplicate value found: ${f.name} duplicates value on record with id: ${String(clash.Id)}`,
            [],
          ),
        ]);
    }
    const stamp = now.toISOString().replace('Z', '+0000');
    if (!existing) {
      record.Id = makeId(def.keyPrefix, ++this.counter);
      record.CreatedDate = stamp;
    }
    // Name of a custom object is filled with the record's id when none is given.
    const name = field(def, 'Name');
    if (def.custom && name && record.Name === null) record.Name = record.Id as string;
    record.LastModifiedDate = stamp;
    record.SystemModstamp = stamp;
    this.put(def, record);
    return { ok: true, id: record.Id as string, created: !existing };
  }

  private blank(def: SObjectDef): SfRecord {
    const record: SfRecord = {};
    for (const f of def.fields) record[f.name] = f.defaultValue ?? null;
    return record;
  }

  /** Delete by id (recycle bin; `hard` removes the record), answering as the REST DeleteResult. */
  remove(id: string, hard: boolean, expected?: SObjectDef): WriteResult {
    const normal = normalizeId(id);
    if (!normal || (expected && normal.slice(0, 3) !== expected.keyPrefix))
      return { ok: false, id, errors: [err('MALFORMED_ID', `malformed id ${id}`)] };
    const found = this.find(normal);
    if (!found)
      return {
        ok: false,
        id: normal,
        errors: [err('INVALID_CROSS_REFERENCE_KEY', 'invalid cross reference id')],
      };
    if (found.record.IsDeleted && !hard)
      return { ok: false, id: normal, errors: [err('ENTITY_IS_DELETED', 'entity is deleted')] };
    if (hard) this.drop(found.def, normal);
    else this.put(found.def, { ...found.record, IsDeleted: true });
    return { ok: true, id: normal, created: false };
  }
}
