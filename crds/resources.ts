import { z } from 'zod';
import { API_VERSION, GROUP, VERSION } from './common.ts';
import { destinationSpec, destinationStatus } from './destination.ts';
import { modelSpec, modelStatus } from './model.ts';
import { sequenceSpec, sequenceStatus } from './sequence.ts';
import { sourceSpec, sourceStatus } from './source.ts';
import { syncSpec, syncStatus } from './sync.ts';

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description: string;
  priority?: number;
}

export interface ResourceDefinition<
  Spec extends z.ZodType = z.ZodType,
  Status extends z.ZodType = z.ZodType,
> {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: Spec;
  status: Status;
  printerColumns: PrinterColumn[];
}

const READY: PrinterColumn = {
  name: 'Ready',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
  description: 'Whether the resource is ready.',
};
const REASON: PrinterColumn = {
  name: 'Reason',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
  description: 'Why it is (not) ready.',
  priority: 1,
};
const AGE: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'Age.',
};

export const SOURCE = {
  kind: 'Source',
  plural: 'sources',
  singular: 'source',
  shortNames: ['src'],
  description: 'A Source is where business data is stored: a warehouse, a database or files.',
  spec: sourceSpec,
  status: sourceStatus,
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type', description: 'Kind of system.' },
    READY,
    REASON,
    AGE,
  ],
} satisfies ResourceDefinition;

export const MODEL = {
  kind: 'Model',
  plural: 'models',
  singular: 'model',
  shortNames: ['mdl'],
  description:
    'A Model says which rows to pull from a Source: a SQL query, a table or a dbt model, with a primary key.',
  spec: modelSpec,
  status: modelStatus,
  printerColumns: [
    { name: 'Source', type: 'string', jsonPath: '.spec.sourceRef.name', description: 'The Source queried.' },
    { name: 'Primary Key', type: 'string', jsonPath: '.spec.primaryKey', description: 'Primary key column.' },
    READY,
    REASON,
    AGE,
  ],
} satisfies ResourceDefinition;

export const DESTINATION = {
  kind: 'Destination',
  plural: 'destinations',
  singular: 'destination',
  shortNames: ['dest'],
  description: 'A Destination is a tool or service rows are sent to: an HTTP API, a database table, files.',
  spec: destinationSpec,
  status: destinationStatus,
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type', description: 'Kind of destination.' },
    READY,
    REASON,
    AGE,
  ],
} satisfies ResourceDefinition;

export const SYNC = {
  kind: 'Sync',
  plural: 'syncs',
  singular: 'sync',
  shortNames: ['syn'],
  description:
    "A Sync keeps a Destination in step with a Model's rows: which mode, which fields, on what schedule.",
  spec: syncSpec,
  status: syncStatus,
  printerColumns: [
    { name: 'Model', type: 'string', jsonPath: '.spec.modelRef.name', description: 'The Model synced.' },
    {
      name: 'Destination',
      type: 'string',
      jsonPath: '.spec.destinationRef.name',
      description: 'The Destination.',
    },
    { name: 'Mode', type: 'string', jsonPath: '.spec.mode', description: 'Sync mode.' },
    { name: 'Schedule', type: 'string', jsonPath: '.status.schedule', description: 'When the Sync runs.' },
    {
      name: 'Last Result',
      type: 'string',
      jsonPath: '.status.lastRun.result',
      description: 'Result of the last run.',
    },
    {
      name: 'Rows',
      type: 'integer',
      jsonPath: '.status.lastRun.counts.delivered',
      description: 'Row operations delivered by the last run.',
    },
    READY,
    {
      name: 'Next Run',
      type: 'date',
      jsonPath: '.status.nextRunAt',
      description: 'Next scheduled run.',
      priority: 1,
    },
    AGE,
  ],
} satisfies ResourceDefinition;

export const SEQUENCE = {
  kind: 'Sequence',
  plural: 'sequences',
  singular: 'sequence',
  shortNames: ['seq'],
  description:
    'A Sequence runs Syncs one after the other as one run (parent objects before children), with a rule ' +
    'for failed steps, on a schedule or on request.',
  spec: sequenceSpec,
  status: sequenceStatus,
  printerColumns: [
    { name: 'Steps', type: 'string', jsonPath: '.status.order', description: 'The Syncs run, in order.' },
    {
      name: 'Last Result',
      type: 'string',
      jsonPath: '.status.lastRun.result',
      description: 'Result of the last run.',
    },
    READY,
    {
      name: 'Schedule',
      type: 'string',
      jsonPath: '.status.schedule',
      description: 'When it runs.',
      priority: 1,
    },
    {
      name: 'Next Run',
      type: 'date',
      jsonPath: '.status.nextRunAt',
      description: 'Next scheduled run.',
      priority: 1,
    },
    AGE,
  ],
} satisfies ResourceDefinition;

export const RESOURCES = [SOURCE, MODEL, DESTINATION, SYNC, SEQUENCE] as const;
export type Kind = (typeof RESOURCES)[number]['kind'];

export const CATEGORY = 'syncline';
export { API_VERSION, GROUP, VERSION };

export const objectMeta = z
  .object({
    name: z.string().min(1).max(253),
    namespace: z.string().max(63).optional(),
    uid: z.string().optional(),
    generation: z.number().int().optional(),
    resourceVersion: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    creationTimestamp: z.string().optional(),
    deletionTimestamp: z.string().optional(),
    finalizers: z.array(z.string()).optional(),
  })
  .loose();

function objectSchema<D extends ResourceDefinition>(def: D) {
  return z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(def.kind),
    metadata: objectMeta,
    spec: def.spec as D['spec'],
    status: (def.status as D['status']).optional(),
  });
}

export const sourceObject = objectSchema(SOURCE);
export const modelObject = objectSchema(MODEL);
export const destinationObject = objectSchema(DESTINATION);
export const syncObject = objectSchema(SYNC);
export const sequenceObject = objectSchema(SEQUENCE);

export type Source = z.infer<typeof sourceObject>;
export type Model = z.infer<typeof modelObject>;
export type Destination = z.infer<typeof destinationObject>;
export type Sync = z.infer<typeof syncObject>;
export type Sequence = z.infer<typeof sequenceObject>;
export type SynclineObject = Source | Model | Destination | Sync | Sequence;

export const OBJECT_SCHEMAS = {
  Source: sourceObject,
  Model: modelObject,
  Destination: destinationObject,
  Sync: syncObject,
  Sequence: sequenceObject,
} as const;
