// The emulated org's sObjects and their fields, and `describe` built from them in the shape of
// Salesforce's DescribeSObjectResult / Field (REST API Developer Guide, "sObject Describe").
import { API_VERSION } from './ids.ts';

export type FieldType =
  | 'id'
  | 'string'
  | 'textarea'
  | 'email'
  | 'phone'
  | 'url'
  | 'picklist'
  | 'boolean'
  | 'date'
  | 'datetime'
  | 'double'
  | 'currency'
  | 'percent'
  | 'reference';

export interface FieldDef {
  name: string;
  label: string;
  type: FieldType;
  /** Characters, for text types. */
  length?: number;
  /** Total digits and digits after the point, for numbers. */
  precision?: number;
  scale?: number;
  nillable: boolean;
  createable: boolean;
  updateable: boolean;
  unique?: boolean;
  externalId?: boolean;
  idLookup?: boolean;
  /** Set by the server when not given on create (checkboxes, picklists with a default, system fields). */
  defaultedOnCreate?: boolean;
  defaultValue?: string | boolean | null;
  picklistValues?: string[];
  restrictedPicklist?: boolean;
  referenceTo?: string[];
  relationshipName?: string;
  custom?: boolean;
}

export interface SObjectDef {
  name: string;
  label: string;
  labelPlural: string;
  keyPrefix: string;
  custom: boolean;
  fields: FieldDef[];
}

const system = (): FieldDef[] => [
  {
    name: 'Id',
    label: 'Record ID',
    type: 'id',
    length: 18,
    nillable: false,
    createable: false,
    updateable: false,
    idLookup: true,
    defaultedOnCreate: true,
  },
  {
    name: 'IsDeleted',
    label: 'Deleted',
    type: 'boolean',
    nillable: false,
    createable: false,
    updateable: false,
    defaultedOnCreate: true,
    defaultValue: false,
  },
  ...['CreatedDate', 'LastModifiedDate', 'SystemModstamp'].map((name): FieldDef => ({
    name,
    label: name.replace(/([a-z])([A-Z])/g, '$1 $2'),
    type: 'datetime',
    nillable: false,
    createable: false,
    updateable: false,
    defaultedOnCreate: true,
  })),
];

const text = (name: string, label: string, length: number, extra: Partial<FieldDef> = {}): FieldDef => ({
  name,
  label,
  type: 'string',
  length,
  nillable: true,
  createable: true,
  updateable: true,
  ...extra,
});

const of = (type: FieldType, name: string, label: string, extra: Partial<FieldDef> = {}): FieldDef => ({
  name,
  label,
  type,
  nillable: true,
  createable: true,
  updateable: true,
  ...extra,
});

const externalId = (): FieldDef =>
  text('External_Id__c', 'External Id', 255, {
    unique: true,
    externalId: true,
    idLookup: true,
    custom: true,
  });

const checkbox = (name: string, label: string, custom = false): FieldDef =>
  of('boolean', name, label, { nillable: false, defaultedOnCreate: true, defaultValue: false, custom });

export const SOBJECTS: SObjectDef[] = [
  {
    name: 'Account',
    label: 'Account',
    labelPlural: 'Accounts',
    keyPrefix: '001',
    custom: false,
    fields: [
      ...system(),
      text('Name', 'Account Name', 255, { nillable: false, idLookup: true }),
      text('AccountNumber', 'Account Number', 40),
      of('picklist', 'Industry', 'Industry', {
        length: 255,
        picklistValues: ['Agriculture', 'Banking', 'Education', 'Media', 'Retail', 'Technology', 'Other'],
        restrictedPicklist: false,
      }),
      of('currency', 'AnnualRevenue', 'Annual Revenue', { precision: 18, scale: 0 }),
      of('url', 'Website', 'Website', { length: 255 }),
      of('phone', 'Phone', 'Account Phone', { length: 40 }),
      externalId(),
    ],
  },
  {
    name: 'Contact',
    label: 'Contact',
    labelPlural: 'Contacts',
    keyPrefix: '003',
    custom: false,
    fields: [
      ...system(),
      text('FirstName', 'First Name', 40),
      text('LastName', 'Last Name', 80, { nillable: false }),
      of('email', 'Email', 'Email', { length: 80, idLookup: true }),
      of('phone', 'Phone', 'Business Phone', { length: 40 }),
      text('Title', 'Title', 128),
      of('date', 'Birthdate', 'Birthdate'),
      of('textarea', 'Description', 'Contact Description', { length: 32000 }),
      of('picklist', 'LeadSource', 'Lead Source', {
        length: 255,
        picklistValues: ['Web', 'Phone Inquiry', 'Partner Referral', 'Purchased List', 'Other'],
        restrictedPicklist: true,
      }),
      checkbox('HasOptedOutOfEmail', 'Email Opt Out'),
      of('reference', 'AccountId', 'Account ID', {
        length: 18,
        referenceTo: ['Account'],
        relationshipName: 'Account',
      }),
      of('double', 'Score__c', 'Score', { precision: 18, scale: 2, custom: true }),
      of('datetime', 'Last_Activity__c', 'Last Activity', { custom: true }),
      externalId(),
    ],
  },
  {
    name: 'Lead',
    label: 'Lead',
    labelPlural: 'Leads',
    keyPrefix: '00Q',
    custom: false,
    fields: [
      ...system(),
      text('FirstName', 'First Name', 40),
      text('LastName', 'Last Name', 80, { nillable: false }),
      text('Company', 'Company', 255, { nillable: false }),
      of('email', 'Email', 'Email', { length: 80, idLookup: true }),
      of('picklist', 'Status', 'Lead Status', {
        length: 255,
        nillable: false,
        defaultedOnCreate: true,
        defaultValue: 'Open - Not Contacted',
        picklistValues: [
          'Open - Not Contacted',
          'Working - Contacted',
          'Closed - Converted',
          'Closed - Not Converted',
        ],
        restrictedPicklist: true,
      }),
      of('currency', 'AnnualRevenue', 'Annual Revenue', { precision: 18, scale: 0 }),
      of('percent', 'Probability__c', 'Probability', { precision: 3, scale: 0, custom: true }),
      externalId(),
    ],
  },
  {
    name: 'Customer__c',
    label: 'Customer',
    labelPlural: 'Customers',
    keyPrefix: 'a0X',
    custom: true,
    fields: [
      ...system(),
      text('Name', 'Customer Name', 80, { idLookup: true, nillable: false, defaultedOnCreate: true }),
      externalId(),
      of('email', 'Email__c', 'Email', { length: 80, custom: true }),
      of('date', 'Signup_Date__c', 'Signup Date', { custom: true }),
      of('datetime', 'Last_Seen__c', 'Last Seen', { custom: true }),
      checkbox('Is_Active__c', 'Active', true),
      of('currency', 'Lifetime_Value__c', 'Lifetime Value', { precision: 16, scale: 2, custom: true }),
      of('percent', 'Discount__c', 'Discount', { precision: 5, scale: 2, custom: true }),
      of('double', 'Score__c', 'Score', { precision: 18, scale: 0, custom: true }),
      of('picklist', 'Tier__c', 'Tier', {
        length: 255,
        picklistValues: ['Bronze', 'Silver', 'Gold'],
        restrictedPicklist: true,
        custom: true,
      }),
      text('Notes__c', 'Notes', 255, { custom: true }),
      of('reference', 'Account__c', 'Account', {
        length: 18,
        referenceTo: ['Account'],
        relationshipName: 'Account__r',
        custom: true,
      }),
    ],
  },
];

export function sobject(name: string): SObjectDef | undefined {
  return SOBJECTS.find((s) => s.name.toLowerCase() === name.toLowerCase());
}

export function field(def: SObjectDef, name: string): FieldDef | undefined {
  return def.fields.find((f) => f.name.toLowerCase() === name.toLowerCase());
}

/** The field whose relationshipName is `name` (e.g. Account → AccountId, Account__r → Account__c). */
export function relationship(def: SObjectDef, name: string): FieldDef | undefined {
  return def.fields.find((f) => f.relationshipName?.toLowerCase() === name.toLowerCase());
}

/** Required as the describe consumer sees it: not nillable, not defaulted, createable. */
export function isRequired(f: FieldDef): boolean {
  return !f.nillable && !f.defaultedOnCreate && f.createable;
}

const SOAP_TYPE: Record<FieldType, string> = {
  id: 'tns:ID',
  string: 'xsd:string',
  textarea: 'xsd:string',
  email: 'xsd:string',
  phone: 'xsd:string',
  url: 'xsd:string',
  picklist: 'xsd:string',
  boolean: 'xsd:boolean',
  date: 'xsd:date',
  datetime: 'xsd:dateTime',
  double: 'xsd:double',
  currency: 'xsd:double',
  percent: 'xsd:double',
  reference: 'tns:ID',
};

function describeField(f: FieldDef): Record<string, unknown> {
  const isText = f.length !== undefined && f.type !== 'reference' && f.type !== 'id';
  return {
    aggregatable: f.type !== 'textarea',
    autoNumber: false,
    byteLength: f.length !== undefined ? f.length * 3 : 0,
    calculated: false,
    caseSensitive: false,
    createable: f.createable,
    custom: f.custom ?? false,
    defaultValue: f.defaultValue ?? null,
    defaultedOnCreate: f.defaultedOnCreate ?? false,
    digits: 0,
    externalId: f.externalId ?? false,
    filterable: f.type !== 'textarea',
    groupable: !['textarea', 'double', 'currency', 'percent', 'datetime'].includes(f.type),
    htmlFormatted: false,
    idLookup: f.idLookup ?? false,
    label: f.label,
    length: isText || f.type === 'reference' || f.type === 'id' ? (f.length ?? 0) : 0,
    name: f.name,
    nameField: f.name === 'Name',
    nillable: f.nillable,
    picklistValues: (f.picklistValues ?? []).map((value) => ({
      active: true,
      defaultValue: f.defaultValue === value,
      label: value,
      validFor: null,
      value,
    })),
    precision: f.precision ?? 0,
    referenceTo: f.referenceTo ?? [],
    relationshipName: f.relationshipName ?? null,
    restrictedPicklist: f.restrictedPicklist ?? false,
    scale: f.scale ?? 0,
    soapType: SOAP_TYPE[f.type],
    sortable: f.type !== 'textarea',
    type: f.type,
    unique: f.unique ?? false,
    updateable: f.updateable,
  };
}

export function describe(def: SObjectDef): Record<string, unknown> {
  const base = `/services/data/${API_VERSION}/sobjects/${def.name}`;
  return {
    name: def.name,
    label: def.label,
    labelPlural: def.labelPlural,
    keyPrefix: def.keyPrefix,
    custom: def.custom,
    createable: true,
    updateable: true,
    deletable: true,
    queryable: true,
    retrieveable: true,
    searchable: true,
    undeletable: true,
    triggerable: true,
    childRelationships: [],
    recordTypeInfos: [],
    fields: def.fields.map(describeField),
    urls: {
      sobject: base,
      describe: `${base}/describe`,
      rowTemplate: `${base}/{ID}`,
    },
  };
}

export function describeGlobalEntry(def: SObjectDef): Record<string, unknown> {
  const base = `/services/data/${API_VERSION}/sobjects/${def.name}`;
  return {
    name: def.name,
    label: def.label,
    labelPlural: def.labelPlural,
    keyPrefix: def.keyPrefix,
    custom: def.custom,
    createable: true,
    updateable: true,
    deletable: true,
    queryable: true,
    urls: { sobject: base, describe: `${base}/describe`, rowTemplate: `${base}/{ID}` },
  };
}
