// Request and response shapes of the HubSpot APIs the emulator answers, written as zod schemas from the
// facts of HubSpot's published OpenAPI specifications (repository HubSpot/HubSpot-public-api-spec-collection;
// the files and versions are listed in README.md). Field names, types and which fields are required follow
// the specs; where the live API is known to be looser than the spec (a field the spec marks required that
// the API accepts absent), the schema follows the API and says so. Request objects are strict: a field the
// spec does not define is a contract violation, as HubSpot's JSON binding refuses unknown fields.
import { z } from 'zod';

/** HubSpot's batch endpoints of CRM objects v3 take at most 100 inputs (documented per object guide). */
export const MAX_BATCH_INPUTS = 100;
/** The associations v4 batch endpoints: the emulator's limit (see README, "Choices"). */
export const MAX_ASSOCIATION_INPUTS = 2000;

/** Property values are strings in every write (`additionalProperties: string` in the spec). */
export const PropertyValues = z.record(z.string(), z.string());

/** associationCategory of an association type. */
export const AssociationCategory = z.enum(['HUBSPOT_DEFINED', 'INTEGRATOR_DEFINED', 'USER_DEFINED', 'WORK']);

/** One association type: category and numeric (int32) type id, both required. */
export const AssociationSpec = z.strictObject({
  associationCategory: AssociationCategory,
  associationTypeId: z.int32(),
});

/** An object id wrapper `{ id }` (id required, a string). */
export const ObjectId = z.strictObject({ id: z.string() });

/** An association given with a record being created: `to` and `types` required. */
export const AssociationForCreate = z.strictObject({
  to: ObjectId,
  types: z.array(AssociationSpec),
});

// ---- CRM objects v3: batch inputs ----

/**
 * batch/create input. The spec marks `associations` required as well as `properties`; the live API accepts
 * inputs without `associations`, so it is optional here.
 */
export const CreateInput = z.strictObject({
  properties: PropertyValues,
  associations: z.array(AssociationForCreate).optional(),
  objectWriteTraceId: z.string().optional(),
});

/** batch/update input: `id` and `properties` required; `idProperty` names a unique property `id` is a value of. */
export const UpdateInput = z.strictObject({
  id: z.string(),
  properties: PropertyValues,
  idProperty: z.string().optional(),
  objectWriteTraceId: z.string().optional(),
});

/** batch/upsert input: `id` and `properties` required; `idProperty` optional in the spec (see README). */
export const UpsertInput = z.strictObject({
  id: z.string(),
  properties: PropertyValues,
  idProperty: z.string().optional(),
  objectWriteTraceId: z.string().optional(),
});

function batchOf<T extends z.ZodType>(input: T, max = MAX_BATCH_INPUTS) {
  return z.strictObject({ inputs: z.array(input).max(max) });
}

export const BatchCreateBody = batchOf(CreateInput);
export const BatchUpdateBody = batchOf(UpdateInput);
export const BatchUpsertBody = batchOf(UpsertInput);
/** batch/archive: inputs of `{ id }`. */
export const BatchArchiveBody = batchOf(ObjectId);

/**
 * batch/read. The spec marks `properties` and `propertiesWithHistory` required besides `inputs`; the live API
 * reads with either absent, so both are optional here.
 */
export const BatchReadBody = z.strictObject({
  inputs: z.array(ObjectId).max(MAX_BATCH_INPUTS),
  idProperty: z.string().optional(),
  properties: z.array(z.string()).optional(),
  propertiesWithHistory: z.array(z.string()).optional(),
});

// ---- Associations v4 ----

/** batch/create (labelled): `from`, `to` and `types` required. */
export const AssociationCreateInput = z.strictObject({
  from: ObjectId,
  to: ObjectId,
  types: z.array(AssociationSpec),
});
/** batch/associate/default: `from` and `to` required. */
export const AssociationDefaultInput = z.strictObject({ from: ObjectId, to: ObjectId });
/** batch/read: `id` required, `after` a paging cursor. */
export const AssociationReadInput = z.strictObject({ id: z.string(), after: z.string().optional() });
/** batch/archive: `from` and a list of `to` required. */
export const AssociationArchiveInput = z.strictObject({ from: ObjectId, to: z.array(ObjectId) });

export const AssociationBatchCreateBody = batchOf(AssociationCreateInput, MAX_ASSOCIATION_INPUTS);
export const AssociationBatchDefaultBody = batchOf(AssociationDefaultInput, MAX_ASSOCIATION_INPUTS);
export const AssociationBatchReadBody = batchOf(AssociationReadInput, MAX_ASSOCIATION_INPUTS);
export const AssociationBatchArchiveBody = batchOf(AssociationArchiveInput, MAX_ASSOCIATION_INPUTS);

// ---- Properties v3 ----

/** The property types HubSpot defines, and the field types (form controls) each is shown with. */
export const PropertyType = z.enum([
  'string',
  'number',
  'date',
  'datetime',
  'enumeration',
  'bool',
  'phone_number',
  'object_coordinates',
  'json',
]);
export const FieldType = z.enum([
  'text',
  'textarea',
  'number',
  'date',
  'file',
  'select',
  'radio',
  'checkbox',
  'booleancheckbox',
  'calculation_equation',
  'html',
  'phonenumber',
]);

/** An enumeration option: `label`, `value` and `hidden` required. */
export const OptionInput = z.strictObject({
  label: z.string(),
  value: z.string(),
  hidden: z.boolean(),
  description: z.string().optional(),
  displayOrder: z.int32().optional(),
});

/** POST /crm/v3/properties/{objectType}: `name`, `label`, `type`, `fieldType` and `groupName` required. */
export const PropertyCreateBody = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_]*$/, 'property names are lower case letters, digits and _'),
  label: z.string(),
  type: PropertyType,
  fieldType: FieldType,
  groupName: z.string(),
  description: z.string().optional(),
  options: z.array(OptionInput).optional(),
  displayOrder: z.int32().optional(),
  hasUniqueValue: z.boolean().optional(),
  hidden: z.boolean().optional(),
  formField: z.boolean().optional(),
  calculationFormula: z.string().optional(),
  externalOptions: z.boolean().optional(),
  referencedObjectType: z.string().optional(),
  dataSensitivity: z.enum(['highly_sensitive', 'non_sensitive', 'sensitive']).optional(),
  numberDisplayHint: z
    .enum(['currency', 'duration', 'formatted', 'percentage', 'probability', 'unformatted'])
    .optional(),
  showCurrencySymbol: z.boolean().optional(),
  currencyPropertyName: z.string().optional(),
});

// ---- OAuth v1 ----

/** POST /oauth/v1/token (form-encoded): the refresh-token grant. */
export const TokenRequest = z.object({
  grant_type: z.enum(['authorization_code', 'client_credentials', 'refresh_token']),
  client_id: z.string().optional(),
  client_secret: z.string().optional(),
  refresh_token: z.string().optional(),
  redirect_uri: z.string().optional(),
  code: z.string().optional(),
  code_verifier: z.string().optional(),
  scope: z.string().optional(),
});

// ---- Responses (used by the tests to check what the emulator answers) ----

const IsoDateTime = z.iso.datetime({ offset: true });

/** One detail of an error: `message` required. */
export const ErrorDetail = z.object({
  message: z.string(),
  code: z.string().optional(),
  in: z.string().optional(),
  subCategory: z.string().optional(),
  context: z.record(z.string(), z.array(z.string())).optional(),
});

/** The error body of a failed request: `category`, `correlationId` and `message` required. */
export const ErrorBody = z.object({
  status: z.literal('error'),
  message: z.string(),
  correlationId: z.uuid(),
  category: z.string(),
  subCategory: z.string().optional(),
  context: z.record(z.string(), z.array(z.string())).optional(),
  errors: z.array(ErrorDetail).optional(),
  links: z.record(z.string(), z.string()).optional(),
});

/** One error of a multi-status batch answer (StandardError). */
export const StandardError = z.object({
  status: z.string(),
  category: z.string(),
  message: z.string(),
  context: z.record(z.string(), z.array(z.string())),
  errors: z.array(ErrorDetail),
  links: z.record(z.string(), z.string()),
  id: z.string().optional(),
  subCategory: z.unknown().optional(),
});

/** A record as the API returns it. Values are strings, or null for a requested property without a value. */
export const SimplePublicObject = z.object({
  id: z.string(),
  properties: z.record(z.string(), z.string().nullable()),
  createdAt: IsoDateTime,
  updatedAt: IsoDateTime,
  archived: z.boolean(),
  archivedAt: IsoDateTime.optional(),
  objectWriteTraceId: z.string().optional(),
});
export const SimplePublicUpsertObject = SimplePublicObject.extend({ new: z.boolean() });

function batchResponse<T extends z.ZodType>(result: T) {
  return z.object({
    status: z.enum(['CANCELED', 'COMPLETE', 'PENDING', 'PROCESSING']),
    results: z.array(result),
    startedAt: IsoDateTime,
    completedAt: IsoDateTime,
    requestedAt: IsoDateTime.optional(),
    links: z.record(z.string(), z.string()).optional(),
    numErrors: z.int32().optional(),
    errors: z.array(StandardError).optional(),
  });
}

export const BatchResponseObjects = batchResponse(SimplePublicObject);
export const BatchResponseUpsert = batchResponse(SimplePublicUpsertObject);

/** v4 batch/create result: the pair and its labels (ids as strings, per the spec). */
export const LabelsBetweenObjectPair = z.object({
  fromObjectTypeId: z.string(),
  fromObjectId: z.string(),
  toObjectTypeId: z.string(),
  toObjectId: z.string(),
  labels: z.array(z.string()),
});
export const BatchResponseLabels = batchResponse(LabelsBetweenObjectPair);

export const PublicDefaultAssociation = z.object({
  from: z.object({ id: z.string() }),
  to: z.object({ id: z.string() }),
  associationSpec: z.object({ associationCategory: AssociationCategory, associationTypeId: z.int32() }),
});
export const BatchResponseDefault = batchResponse(PublicDefaultAssociation);

export const AssociationSpecWithLabel = z.object({
  category: AssociationCategory,
  typeId: z.int32(),
  label: z.string().nullable().optional(),
});
export const PublicAssociationMultiWithLabel = z.object({
  from: z.object({ id: z.string() }),
  to: z.array(z.object({ toObjectId: z.string(), associationTypes: z.array(AssociationSpecWithLabel) })),
});
export const BatchResponseAssociationRead = batchResponse(PublicAssociationMultiWithLabel);

/** A property definition as GET /crm/v3/properties/{objectType} returns it. */
export const Property = z.object({
  name: z.string(),
  label: z.string(),
  type: z.string(),
  fieldType: z.string(),
  description: z.string(),
  groupName: z.string(),
  options: z.array(
    z.object({
      label: z.string(),
      value: z.string(),
      hidden: z.boolean(),
      displayOrder: z.int32().optional(),
    }),
  ),
  hasUniqueValue: z.boolean().optional(),
  calculated: z.boolean().optional(),
  hidden: z.boolean().optional(),
  hubspotDefined: z.boolean().optional(),
  modificationMetadata: z
    .object({
      archivable: z.boolean(),
      readOnlyDefinition: z.boolean(),
      readOnlyValue: z.boolean(),
      readOnlyOptions: z.boolean().optional(),
    })
    .optional(),
});
export const PropertiesResponse = z.object({ results: z.array(Property) });

/** A custom object schema (GET /crm/v3/schemas). */
export const ObjectSchema = z.object({
  id: z.string(),
  objectTypeId: z.string(),
  name: z.string(),
  fullyQualifiedName: z.string(),
  labels: z.object({ singular: z.string().optional(), plural: z.string().optional() }),
  primaryDisplayProperty: z.string().optional(),
  requiredProperties: z.array(z.string()),
  searchableProperties: z.array(z.string()).optional(),
  secondaryDisplayProperties: z.array(z.string()).optional(),
  properties: z.array(Property),
  associations: z.array(
    z.object({ id: z.string(), fromObjectTypeId: z.string(), toObjectTypeId: z.string(), name: z.string() }),
  ),
  archived: z.boolean().optional(),
});
export const SchemasResponse = z.object({ results: z.array(ObjectSchema) });

/** The OAuth token answer: access_token, refresh_token, expires_in, token_type, token_use. */
export const TokenResponse = z.object({
  access_token: z.string(),
  refresh_token: z.string(),
  expires_in: z.int(),
  token_type: z.string(),
  token_use: z.literal('access_token'),
});

/** The 429 body (HubSpot's usage guidelines). */
export const RateLimitBody = z.object({
  status: z.literal('error'),
  message: z.string(),
  errorType: z.literal('RATE_LIMIT'),
  correlationId: z.uuid(),
  policyName: z.enum(['TEN_SECONDLY_ROLLING', 'SECONDLY', 'DAILY']),
  requestId: z.string(),
});
