// Model values as HubSpot properties take them. Every property value HubSpot writes is a string; what
// the string must look like depends on the property's type (GET /crm/v3/properties/{objectType}):
// date: midnight-UTC epoch milliseconds; datetime: epoch milliseconds (an ISO 8601 value is read as such);
// bool: "true" / "false"; number: the exact decimal text (no rounding through a double); enumeration: one
// of the property's option values ("a;b" for a multi-checkbox); "" clears a property.
import { epochMsOfText } from '../saas/dates.ts';
import { isRawJson, toJson } from '../shared/values.ts';
import type { ColumnKind } from '../../core/column-types.ts';
import type { DestinationCapabilities, DestinationField } from '../../core/connectors.ts';

/** A property definition as the properties API answers it (the fields the connector reads). */
export interface HubSpotProperty {
  name: string;
  label?: string;
  type: string;
  fieldType?: string;
  options?: { label?: string; value: string; hidden?: boolean }[];
  hasUniqueValue?: boolean;
  calculated?: boolean;
  hubspotDefined?: boolean;
  modificationMetadata?: { readOnlyValue?: boolean };
}

/** A value that cannot be sent, with why (the row is rejected with it). */
export interface Refusal {
  refused: string;
}

const NUMBER = /^-?(\d+)(\.\d+)?([eE][-+]?\d+)?$/;

function describe(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : scalarText(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function scalarText(value: unknown): string {
  if (isRawJson(value)) return value.rawJSON;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  if (value instanceof Date) return value.toISOString();
  return toJson(value);
}

/** Epoch milliseconds of a date or timestamp value (UTC when it names no zone), or undefined. */
function epochMs(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (isRawJson(value) || typeof value === 'bigint') return epochMs(Number(scalarText(value)));
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^-?\d+$/.test(text)) return Number(text);
  return epochMsOfText(text);
}

const DAY_MS = 86_400_000;

const NOT_A_SCALAR: ColumnKind[] = ['time', 'interval', 'nested'];
/**
 * The column kinds propertyValue refuses every value of, by discovered field type (the operator refuses
 * such a mapping before any run): a number takes no boolean, date or timestamp text; a bool no date or
 * timestamp; a date or datetime no boolean (numbers are epoch milliseconds, so they fit). Text fits every
 * type (numeric, boolean and date strings are converted), and so do the others' number forms (0/1 for a
 * bool). Runner's type-fit test checks this against propertyValue with the values the engine produces.
 */
export const REFUSED_COLUMNS: DestinationCapabilities['refusedColumns'] = {
  number: ['boolean', 'date', 'timestamp', ...NOT_A_SCALAR],
  boolean: ['date', 'timestamp', ...NOT_A_SCALAR],
  date: ['boolean', ...NOT_A_SCALAR],
  datetime: ['boolean', ...NOT_A_SCALAR],
};

/**
 * The string HubSpot's property takes for `value`, a Refusal, or undefined for SQL NULL (the caller decides
 * whether NULL clears the property or is left out).
 */
export function propertyValue(
  property: HubSpotProperty | undefined,
  value: unknown,
): string | Refusal | undefined {
  if (value === null || value === undefined) return undefined;
  const type = property?.type ?? 'string';
  switch (type) {
    case 'number': {
      if (typeof value === 'boolean') return { refused: `${describe(value)} is not a number` };
      const text = scalarText(value).trim();
      if (!NUMBER.test(text)) return { refused: `${describe(value)} is not a number (a finite decimal)` };
      return text;
    }
    case 'bool': {
      if (typeof value === 'boolean') return String(value);
      const text = scalarText(value).trim().toLowerCase();
      if (text === 'true' || text === '1' || text === 't' || text === 'yes') return 'true';
      if (text === 'false' || text === '0' || text === 'f' || text === 'no') return 'false';
      return { refused: `${describe(value)} is not a boolean (true or false)` };
    }
    case 'date': {
      const ms = epochMs(value);
      if (ms === undefined) return { refused: `${describe(value)} is not a date (YYYY-MM-DD)` };
      // A date property holds a day: a timestamp is sent as midnight UTC of its UTC day.
      return String(Math.floor(ms / DAY_MS) * DAY_MS);
    }
    case 'datetime': {
      const ms = epochMs(value);
      if (ms === undefined)
        return { refused: `${describe(value)} is not a date-time (ISO 8601 or epoch milliseconds)` };
      return String(ms);
    }
    case 'enumeration': {
      const options = (property?.options ?? []).map((o) => o.value);
      const multi = property?.fieldType === 'checkbox';
      const items = Array.isArray(value)
        ? value.map(scalarText)
        : multi
          ? scalarText(value).split(';')
          : [typeof value === 'boolean' ? String(value) : scalarText(value)];
      const chosen: string[] = [];
      for (const raw of items.map((s) => s.trim()).filter((s) => s !== '')) {
        const exact =
          options.find((o) => o === raw) ?? options.find((o) => o.toLowerCase() === raw.toLowerCase());
        if (exact === undefined) {
          const shown = options
            .slice(0, 12)
            .map((o) => JSON.stringify(o))
            .join(', ');
          return {
            refused: `${JSON.stringify(raw)} is not an option of ${property?.name ?? 'the property'} (options: ${shown}${options.length > 12 ? ', …' : ''})`,
          };
        }
        chosen.push(exact);
      }
      if (chosen.length > 1 && !multi)
        return { refused: `${describe(value)} holds several values; ${property?.name} takes one option` };
      return chosen.join(';');
    }
    default: {
      if (Array.isArray(value) && property?.fieldType === 'checkbox') return value.map(scalarText).join(';');
      return scalarText(value);
    }
  }
}

/** The discovered form of a property. */
export function fieldOf(objectType: string, property: HubSpotProperty): DestinationField {
  const type: DestinationField['type'] =
    property.name === 'hs_object_id'
      ? 'id'
      : property.type === 'bool'
        ? 'boolean'
        : property.type === 'phone_number' || property.type === 'string'
          ? 'string'
          : ((['number', 'date', 'datetime', 'enumeration'] as const).find((t) => t === property.type) ??
            'other');
  const field: DestinationField = { name: property.name, type };
  if (property.label) field.label = property.label;
  if (isUniqueProperty(objectType, property)) field.unique = true;
  if (property.modificationMetadata?.readOnlyValue || property.calculated) field.readOnly = true;
  if (type === 'enumeration') field.options = (property.options ?? []).map((o) => o.value);
  return field;
}

/**
 * Whether rows can be matched by this property (idProperty): a property with unique values, or a contact's
 * email, which HubSpot lists with hasUniqueValue false yet takes as idProperty.
 */
export function isUniqueProperty(objectType: string, property: HubSpotProperty): boolean {
  if (property.hasUniqueValue) return true;
  return (
    property.name === 'email' &&
    (objectType === 'contacts' || objectType === 'contact' || objectType === '0-1')
  );
}

/** The names closest to `name` (edit distance), for "did you mean". */
export function closest(name: string, candidates: readonly string[], count = 3): string[] {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      let previous = row[0] as number;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const current = row[j] as number;
        row[j] = Math.min(
          (row[j] as number) + 1,
          (row[j - 1] as number) + 1,
          previous + (a[i - 1] === b[j - 1] ? 0 : 1),
        );
        previous = current;
      }
    }
    return row[b.length] as number;
  };
  const lower = name.toLowerCase();
  return [...candidates]
    .map((c) => ({ c, d: distance(lower, c.toLowerCase()) }))
    .sort((x, y) => x.d - y.d || x.c.localeCompare(y.c))
    .slice(0, count)
    .map((x) => x.c);
}
