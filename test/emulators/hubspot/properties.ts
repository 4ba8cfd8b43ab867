// Object types and their property definitions (a realistic default set per standard object), and the
// checks HubSpot applies to a property value before it writes it.

export type PropertyKind =
  'string' | 'number' | 'date' | 'datetime' | 'enumeration' | 'bool' | 'phone_number';

export interface PropertyOption {
  label: string;
  value: string;
  hidden?: boolean;
  displayOrder?: number;
}

/** A property definition the emulator keeps (the subset of HubSpot's Property it uses). */
export interface PropertyDefinition {
  name: string;
  label: string;
  type: PropertyKind;
  fieldType: string;
  groupName?: string;
  description?: string;
  options?: PropertyOption[];
  /** Values unique across the object's records; such a property can be an idProperty. */
  hasUniqueValue?: boolean;
  /** HubSpot computes the value; writes are refused. */
  calculated?: boolean;
  /** modificationMetadata.readOnlyValue: writes are refused. */
  readOnlyValue?: boolean;
  hubspotDefined?: boolean;
}

export interface ObjectTypeDefinition {
  /** The plural API name: contacts, companies, deals, tickets, or a custom object's name. */
  name: string;
  objectTypeId: string;
  singular: string;
  /** Names the path may use for the type (contacts, contact, 0-1, p123_cars, 2-123…). */
  aliases: string[];
  properties: Map<string, PropertyDefinition>;
  /** The properties a read without `properties` returns. */
  defaultRead: string[];
  /** Property whose value is unique though its definition says hasUniqueValue: false (contacts' email). */
  implicitUnique: string[];
  custom: boolean;
  primaryDisplayProperty: string;
  requiredProperties: string[];
  createdAt: string;
}

/** A custom object type a test configures. */
export interface CustomObjectDefinition {
  /** e.g. `cars`; the fully qualified name is `p{portalId}_cars`. */
  name: string;
  labels?: { singular?: string; plural?: string };
  primaryDisplayProperty?: string;
  requiredProperties?: string[];
  /** Properties besides the system ones (hs_object_id, hs_createdate, hs_lastmodifieddate). */
  properties: PropertyDefinition[];
  /** Standard objects it can be associated with (default: contacts and companies). */
  associatedObjects?: string[];
}

const readOnly = (
  name: string,
  label: string,
  type: PropertyKind,
  fieldType: string,
): PropertyDefinition => ({
  name,
  label,
  type,
  fieldType,
  readOnlyValue: true,
  hubspotDefined: true,
});

const text = (name: string, label: string, extra: Partial<PropertyDefinition> = {}): PropertyDefinition => ({
  name,
  label,
  type: 'string',
  fieldType: 'text',
  hubspotDefined: true,
  ...extra,
});

const options = (...values: string[]): PropertyOption[] =>
  values.map((value, i) => ({ value, label: value.replace(/_/g, ' '), hidden: false, displayOrder: i }));

/** A custom unique property every standard object gets: the warehouse's key. */
const externalId: PropertyDefinition = {
  name: 'external_id',
  label: 'External ID',
  type: 'string',
  fieldType: 'text',
  hasUniqueValue: true,
  hubspotDefined: false,
  groupName: 'syncline',
};

function system(lastModified: string): PropertyDefinition[] {
  return [
    readOnly('hs_object_id', 'Record ID', 'number', 'number'),
    readOnly('createdate', 'Create Date', 'datetime', 'date'),
    readOnly(lastModified, 'Last Modified Date', 'datetime', 'date'),
  ];
}

function standard(
  name: string,
  objectTypeId: string,
  singular: string,
  lastModified: string,
  props: PropertyDefinition[],
  defaultRead: string[],
  implicitUnique: string[] = [],
): ObjectTypeDefinition {
  const all = [...system(lastModified), ...props, externalId];
  return {
    name,
    objectTypeId,
    singular,
    aliases: [name, singular, objectTypeId],
    properties: new Map(all.map((p) => [p.name, { ...p }])),
    defaultRead: [...defaultRead, 'createdate', lastModified, 'hs_object_id'],
    implicitUnique,
    custom: false,
    primaryDisplayProperty: defaultRead[0] ?? 'hs_object_id',
    requiredProperties: [],
    createdAt: '2020-01-01T00:00:00.000Z',
  };
}

/** The four standard objects with a realistic default property set each. */
export function standardObjectTypes(
  options_: { uniqueCompanyDomain?: boolean } = {},
): ObjectTypeDefinition[] {
  return [
    standard(
      'contacts',
      '0-1',
      'contact',
      'lastmodifieddate',
      [
        // HubSpot's email property says hasUniqueValue: false, yet contacts are unique by email and
        // email is accepted as an idProperty.
        text('email', 'Email'),
        text('firstname', 'First Name'),
        text('lastname', 'Last Name'),
        {
          name: 'phone',
          label: 'Phone Number',
          type: 'phone_number',
          fieldType: 'phonenumber',
          hubspotDefined: true,
        },
        {
          name: 'lifecyclestage',
          label: 'Lifecycle Stage',
          type: 'enumeration',
          fieldType: 'radio',
          hubspotDefined: true,
          options: options(
            'subscriber',
            'lead',
            'marketingqualifiedlead',
            'salesqualifiedlead',
            'opportunity',
            'customer',
            'evangelist',
            'other',
          ),
        },
        {
          name: 'hs_language',
          label: 'Preferred language',
          type: 'enumeration',
          fieldType: 'select',
          hubspotDefined: true,
          options: options('en', 'de', 'fr', 'es', 'ja'),
        },
        {
          name: 'date_of_birth',
          label: 'Date of birth',
          type: 'date',
          fieldType: 'date',
          hubspotDefined: true,
        },
        {
          name: 'last_seen_at',
          label: 'Last seen at',
          type: 'datetime',
          fieldType: 'date',
          hubspotDefined: false,
        },
        {
          name: 'lifetime_value',
          label: 'Lifetime value',
          type: 'number',
          fieldType: 'number',
          hubspotDefined: false,
        },
        {
          name: 'is_vip',
          label: 'VIP',
          type: 'bool',
          fieldType: 'booleancheckbox',
          hubspotDefined: false,
          options: [
            { label: 'Yes', value: 'true', hidden: false, displayOrder: 0 },
            { label: 'No', value: 'false', hidden: false, displayOrder: 1 },
          ],
        },
        {
          name: 'interests',
          label: 'Interests',
          type: 'enumeration',
          fieldType: 'checkbox',
          hubspotDefined: false,
          options: options('data', 'crm', 'marketing', 'support'),
        },
        {
          name: 'num_associated_deals',
          label: 'Associated Deals',
          type: 'number',
          fieldType: 'number',
          calculated: true,
          readOnlyValue: true,
          hubspotDefined: true,
        },
      ],
      ['firstname', 'lastname', 'email'],
      ['email'],
    ),
    standard(
      'companies',
      '0-2',
      'company',
      'hs_lastmodifieddate',
      [
        text('name', 'Company name'),
        text('domain', 'Company Domain Name', options_.uniqueCompanyDomain ? { hasUniqueValue: true } : {}),
        {
          name: 'industry',
          label: 'Industry',
          type: 'enumeration',
          fieldType: 'select',
          hubspotDefined: true,
          options: options(
            'COMPUTER_SOFTWARE',
            'FINANCIAL_SERVICES',
            'RETAIL',
            'HOSPITAL_HEALTH_CARE',
            'OTHER',
          ),
        },
        {
          name: 'numberofemployees',
          label: 'Number of Employees',
          type: 'number',
          fieldType: 'number',
          hubspotDefined: true,
        },
        {
          name: 'annualrevenue',
          label: 'Annual Revenue',
          type: 'number',
          fieldType: 'number',
          hubspotDefined: true,
        },
        { name: 'founded_on', label: 'Founded on', type: 'date', fieldType: 'date', hubspotDefined: false },
        {
          name: 'is_public',
          label: 'Public company',
          type: 'bool',
          fieldType: 'booleancheckbox',
          hubspotDefined: false,
          options: [
            { label: 'Yes', value: 'true', hidden: false },
            { label: 'No', value: 'false', hidden: false },
          ],
        },
      ],
      ['name', 'domain'],
    ),
    standard(
      'deals',
      '0-3',
      'deal',
      'hs_lastmodifieddate',
      [
        text('dealname', 'Deal Name'),
        { name: 'amount', label: 'Amount', type: 'number', fieldType: 'number', hubspotDefined: true },
        {
          name: 'dealstage',
          label: 'Deal Stage',
          type: 'enumeration',
          fieldType: 'radio',
          hubspotDefined: true,
          options: options(
            'appointmentscheduled',
            'qualifiedtobuy',
            'presentationscheduled',
            'decisionmakerboughtin',
            'contractsent',
            'closedwon',
            'closedlost',
          ),
        },
        {
          name: 'pipeline',
          label: 'Pipeline',
          type: 'enumeration',
          fieldType: 'select',
          hubspotDefined: true,
          options: options('default'),
        },
        { name: 'closedate', label: 'Close Date', type: 'datetime', fieldType: 'date', hubspotDefined: true },
        {
          name: 'contract_start',
          label: 'Contract start',
          type: 'date',
          fieldType: 'date',
          hubspotDefined: false,
        },
        {
          name: 'is_renewal',
          label: 'Renewal',
          type: 'bool',
          fieldType: 'booleancheckbox',
          hubspotDefined: false,
          options: [
            { label: 'Yes', value: 'true', hidden: false },
            { label: 'No', value: 'false', hidden: false },
          ],
        },
      ],
      ['dealname', 'amount', 'closedate', 'pipeline', 'dealstage'],
    ),
    standard(
      'tickets',
      '0-5',
      'ticket',
      'hs_lastmodifieddate',
      [
        text('subject', 'Ticket name'),
        {
          name: 'content',
          label: 'Ticket description',
          type: 'string',
          fieldType: 'textarea',
          hubspotDefined: true,
        },
        {
          name: 'hs_pipeline',
          label: 'Pipeline',
          type: 'enumeration',
          fieldType: 'select',
          hubspotDefined: true,
          options: options('0'),
        },
        {
          name: 'hs_pipeline_stage',
          label: 'Ticket status',
          type: 'enumeration',
          fieldType: 'select',
          hubspotDefined: true,
          options: options('1', '2', '3', '4'),
        },
        {
          name: 'hs_ticket_priority',
          label: 'Priority',
          type: 'enumeration',
          fieldType: 'select',
          hubspotDefined: true,
          options: options('LOW', 'MEDIUM', 'HIGH', 'URGENT'),
        },
        { name: 'due_date', label: 'Due date', type: 'date', fieldType: 'date', hubspotDefined: false },
        {
          name: 'escalated',
          label: 'Escalated',
          type: 'bool',
          fieldType: 'booleancheckbox',
          hubspotDefined: false,
          options: [
            { label: 'Yes', value: 'true', hidden: false },
            { label: 'No', value: 'false', hidden: false },
          ],
        },
      ],
      ['subject', 'content', 'hs_pipeline', 'hs_pipeline_stage'],
    ),
  ];
}

export function customObjectType(
  def: CustomObjectDefinition,
  portalId: number,
  index: number,
): ObjectTypeDefinition {
  const objectTypeId = `2-${1000 + index}`;
  const fullyQualifiedName = `p${portalId}_${def.name}`;
  const props = [
    readOnly('hs_object_id', 'Record ID', 'number', 'number'),
    readOnly('hs_createdate', 'Create Date', 'datetime', 'date'),
    readOnly('hs_lastmodifieddate', 'Last Modified Date', 'datetime', 'date'),
    ...def.properties.map((p) => ({ hubspotDefined: false, ...p })),
  ];
  const primary = def.primaryDisplayProperty ?? def.properties[0]?.name ?? 'hs_object_id';
  return {
    name: def.name,
    objectTypeId,
    singular: def.labels?.singular ?? def.name,
    aliases: [def.name, fullyQualifiedName, objectTypeId],
    properties: new Map(props.map((p) => [p.name, { ...p }])),
    defaultRead: [primary, 'hs_createdate', 'hs_lastmodifieddate', 'hs_object_id'],
    implicitUnique: [],
    custom: true,
    primaryDisplayProperty: primary,
    requiredProperties: def.requiredProperties ?? [],
    createdAt: new Date().toISOString(),
  };
}

/** Whether writes to a property are refused. */
export function isReadOnly(def: PropertyDefinition): boolean {
  return def.readOnlyValue === true || def.calculated === true;
}

/** One property value HubSpot would refuse, in the shape of its "Property values were not valid" list. */
export interface InvalidValue {
  isValid: false;
  message: string;
  error: string;
  name: string;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const INTEGER = /^-?\d+$/;

function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * Check one value against its definition; returns the value as HubSpot stores and returns it (dates as
 * YYYY-MM-DD, datetimes as ISO-8601 UTC with milliseconds, booleans lower case, emails lower case), or the
 * reason it is refused. An empty string clears the property and is valid for every type.
 */
export function checkValue(
  def: PropertyDefinition,
  value: string,
): { ok: true; stored: string } | { ok: false; invalid: InvalidValue } {
  const bad = (error: string, message: string) => ({
    ok: false as const,
    invalid: { isValid: false as const, message, error, name: def.name },
  });
  if (value === '') return { ok: true, stored: '' };
  switch (def.type) {
    case 'number':
      if (!NUMBER.test(value.trim())) return bad('INVALID_NUMBER', `${value} was not a valid number.`);
      return { ok: true, stored: value.trim() };
    case 'bool': {
      const lower = value.toLowerCase();
      if (lower !== 'true' && lower !== 'false')
        return bad('INVALID_BOOLEAN', `${value} was not a valid boolean value (true or false).`);
      return { ok: true, stored: lower };
    }
    case 'date': {
      const iso = ISO_DATE.exec(value);
      if (iso) {
        const ms = Date.UTC(Number(iso[1]), Number(iso[2]) - 1, Number(iso[3]));
        if (Number.isNaN(ms) || isoDate(ms) !== value)
          return bad('INVALID_DATE', `${value} is not a valid date.`);
        return { ok: true, stored: value };
      }
      if (!INTEGER.test(value)) return bad('INVALID_DATE', `${value} was not a valid long.`);
      const ms = Number(value);
      const d = new Date(ms);
      if (Number.isNaN(d.getTime())) return bad('INVALID_DATE', `${value} is not a valid date.`);
      if (ms % 86_400_000 !== 0) {
        const time = `${d.getUTCHours()}:${d.getUTCMinutes()}:${d.getUTCSeconds()}.${d.getUTCMilliseconds()}`;
        return bad('INVALID_DATE', `${value} is at ${time} UTC, not midnight!`);
      }
      return { ok: true, stored: isoDate(ms) };
    }
    case 'datetime': {
      let ms: number;
      if (INTEGER.test(value)) ms = Number(value);
      else if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(value))
        ms = Date.parse(value);
      else
        return bad('INVALID_DATETIME', `${value} was not a valid datetime (epoch milliseconds or ISO 8601).`);
      if (Number.isNaN(ms) || Number.isNaN(new Date(ms).getTime()))
        return bad('INVALID_DATETIME', `${value} is not a valid datetime.`);
      return { ok: true, stored: new Date(ms).toISOString() };
    }
    case 'enumeration': {
      const allowed = (def.options ?? []).map((o) => o.value);
      const values = def.fieldType === 'checkbox' ? value.split(';').filter((v) => v !== '') : [value];
      const wrong = values.filter((v) => !allowed.includes(v));
      if (wrong.length > 0)
        return bad(
          'INVALID_OPTION',
          `${wrong.join(';')} was not one of the allowed options: [${allowed.join(', ')}]`,
        );
      return { ok: true, stored: values.join(';') };
    }
    case 'string':
    case 'phone_number':
    default:
      if (value.length > 65_536)
        return bad('INVALID_LENGTH', `value of ${def.name} is longer than the limit of 65536 characters`);
      if (def.name === 'email') {
        if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(value))
          return bad('INVALID_EMAIL', `Email address ${value} is invalid`);
        return { ok: true, stored: value.toLowerCase() };
      }
      return { ok: true, stored: value };
  }
}
