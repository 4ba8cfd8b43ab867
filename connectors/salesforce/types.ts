// Model values as Salesforce fields take them, from the field's describe (GET /sobjects/{S}/describe):
// date YYYY-MM-DD; datetime ISO 8601 in UTC (milliseconds); boolean true/false; double, currency, percent
// and int as exact numbers (the decimal text, never rounded through a double); picklist values checked
// against a restricted picklist's values; text lengths checked (UTF-16 code units, as Salesforce counts).
// A value that cannot fit is refused with a clear message before anything is sent.
import { epochMsOfText } from '../saas/dates.ts';
import { isRawJson, rawJson, toJson } from '../shared/values.ts';
import type { ColumnKind } from '../../core/column-types.ts';
import type { DestinationCapabilities, DestinationField } from '../../core/connectors.ts';

/** A field of a DescribeSObjectResult (the members the connector reads). */
export interface SalesforceField {
  name: string;
  label?: string;
  type: string;
  length?: number;
  precision?: number;
  scale?: number;
  nillable?: boolean;
  createable?: boolean;
  updateable?: boolean;
  defaultedOnCreate?: boolean;
  unique?: boolean;
  externalId?: boolean;
  idLookup?: boolean;
  calculated?: boolean;
  restrictedPicklist?: boolean;
  picklistValues?: { value: string; active?: boolean }[];
  referenceTo?: string[];
  relationshipName?: string | null;
}

export interface SalesforceDescribe {
  name: string;
  label?: string;
  labelPlural?: string;
  fields: SalesforceField[];
}

/** A value that cannot be sent, with why. */
export interface Refusal {
  refused: string;
}

/** A converted value: a string, boolean, exact number (raw JSON) or null. */
export type SfValue = string | boolean | ReturnType<typeof rawJson> | null;

const NUMBER = /^[+-]?(\d+)(\.\d+)?([eE][-+]?\d+)?$/;
const TEXT_TYPES = new Set([
  'string',
  'textarea',
  'email',
  'phone',
  'url',
  'picklist',
  'multipicklist',
  'combobox',
  'encryptedstring',
]);
const NUMBER_TYPES = new Set(['double', 'currency', 'percent', 'int', 'long']);

export function scalarText(value: unknown): string {
  if (isRawJson(value)) return value.rawJSON;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  if (value instanceof Date) return value.toISOString();
  return toJson(value);
}

function shown(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : scalarText(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/** Epoch milliseconds of a date or timestamp (UTC when it names no zone). */
function epochMs(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value !== 'string') return undefined;
  return epochMsOfText(value);
}

/** A decimal as JSON number text: no plus sign, no leading zeros. */
function jsonNumber(text: string): string {
  const m = /^([+-]?)(\d+)(.*)$/.exec(text) as RegExpExecArray;
  const digits = (m[2] as string).replace(/^0+(?=\d)/, '');
  return `${m[1] === '-' ? '-' : ''}${digits}${m[3] ?? ''}`;
}

const NOT_A_SCALAR: ColumnKind[] = ['time', 'interval', 'nested'];
/**
 * The column kinds fieldValue refuses every value of, by discovered field type (the operator refuses such
 * a mapping before any run): a number takes no boolean, date or timestamp; a boolean no date or
 * timestamp; a date or datetime no boolean and no number (only date and timestamp text). Text fits every
 * type. Runner's type-fit test checks this against fieldValue with the values the engine produces.
 */
export const REFUSED_COLUMNS: DestinationCapabilities['refusedColumns'] = {
  number: ['boolean', 'date', 'timestamp', ...NOT_A_SCALAR],
  boolean: ['date', 'timestamp', ...NOT_A_SCALAR],
  date: ['boolean', 'integer', 'decimal', 'float', ...NOT_A_SCALAR],
  datetime: ['boolean', 'integer', 'decimal', 'float', ...NOT_A_SCALAR],
};

/** Whether Salesforce can match records by this field (upsert's external id field). */
export const isMatchable = (f: SalesforceField): boolean => f.externalId === true || f.idLookup === true;

/**
 * The value `field` takes for `value`: null for SQL NULL and for '' (Salesforce keeps no empty strings),
 * or a Refusal.
 */
export function fieldValue(field: SalesforceField | undefined, value: unknown): SfValue | Refusal {
  if (value === null || value === undefined) return null;
  const type = field?.type ?? 'string';
  const name = field?.name ?? 'the field';
  if (NUMBER_TYPES.has(type)) {
    if (typeof value === 'boolean') return { refused: `${name}: ${shown(value)} is not a number` };
    const text = scalarText(value).trim();
    if (text === '') return null;
    if (!NUMBER.test(text)) return { refused: `${name}: ${shown(value)} is not a number (a finite decimal)` };
    if ((type === 'int' || type === 'long') && !/^[+-]?\d+$/.test(text))
      return { refused: `${name}: ${shown(value)} is not an integer` };
    const precision = field?.precision ?? 0;
    const scale = field?.scale ?? 0;
    const digits = (/^[+-]?0*(\d*)/.exec(text.split('.')[0] ?? '')?.[1] ?? '').length;
    if (precision > 0 && !/[eE]/.test(text) && digits > precision - scale)
      return {
        refused: `${name}: ${shown(value)} has ${digits} integer digits; the field takes at most ${precision - scale} (precision ${precision}, scale ${scale})`,
      };
    return rawJson(jsonNumber(text));
  }
  switch (type) {
    case 'boolean': {
      if (typeof value === 'boolean') return value;
      const text = scalarText(value).trim().toLowerCase();
      if (['true', '1', 't', 'yes'].includes(text)) return true;
      if (['false', '0', 'f', 'no'].includes(text)) return false;
      return { refused: `${name}: ${shown(value)} is not a boolean (true or false)` };
    }
    case 'date': {
      const ms = epochMs(value);
      if (ms === undefined) return { refused: `${name}: ${shown(value)} is not a date (YYYY-MM-DD)` };
      return new Date(ms).toISOString().slice(0, 10);
    }
    case 'datetime': {
      const ms = epochMs(value);
      if (ms === undefined) return { refused: `${name}: ${shown(value)} is not a date-time (ISO 8601)` };
      return new Date(ms).toISOString();
    }
    default: {
      const text = Array.isArray(value) ? value.map(scalarText).join(';') : scalarText(value);
      if (text === '') return null;
      if (field && TEXT_TYPES.has(type) && field.length && text.length > field.length)
        return {
          refused: `${name}: the value is ${text.length} characters long; the field takes at most ${field.length}`,
        };
      if (field?.restrictedPicklist && (type === 'picklist' || type === 'multipicklist')) {
        const options = (field.picklistValues ?? []).filter((p) => p.active !== false).map((p) => p.value);
        for (const item of type === 'multipicklist' ? text.split(';') : [text])
          if (!options.includes(item)) {
            const list = options
              .slice(0, 12)
              .map((o) => JSON.stringify(o))
              .join(', ');
            return {
              refused: `${name}: ${JSON.stringify(item)} is not a value of the restricted picklist (values: ${list}${options.length > 12 ? ', …' : ''})`,
            };
          }
      }
      return text;
    }
  }
}

/** The value as the (unquoted) text of a Bulk API 2.0 CSV cell: null is #N/A, which sets the field to null. */
export function cellText(value: SfValue): string {
  if (value === null) return '#N/A';
  return typeof value === 'boolean' ? String(value) : scalarText(value);
}

/** The discovered form of a field. */
export function fieldOf(f: SalesforceField): DestinationField {
  const type: DestinationField['type'] =
    f.type === 'id'
      ? 'id'
      : f.type === 'reference'
        ? 'reference'
        : f.type === 'boolean'
          ? 'boolean'
          : f.type === 'date'
            ? 'date'
            : f.type === 'datetime'
              ? 'datetime'
              : f.type === 'picklist' || f.type === 'multipicklist'
                ? 'enumeration'
                : NUMBER_TYPES.has(f.type)
                  ? 'number'
                  : TEXT_TYPES.has(f.type)
                    ? 'string'
                    : 'other';
  const field: DestinationField = { name: f.name, type };
  if (f.label) field.label = f.label;
  if (f.nillable === false && !f.defaultedOnCreate && f.createable) field.required = true;
  // Rows are matched through /sobjects/{S}/{field}/{value}, which takes an External ID field or Id only: a
  // field that is merely unique (or an idLookup, as Contact.Email is) cannot match, so it is not `unique`.
  if (f.externalId || f.name === 'Id') field.unique = true;
  if ((f.createable === false && f.updateable === false) || f.calculated) field.readOnly = true;
  if (type === 'enumeration')
    field.options = (f.picklistValues ?? []).filter((p) => p.active !== false).map((p) => p.value);
  return field;
}

export { closest } from '../hubspot/types.ts';
