// Objects as the API server returns them (defaults applied), for the operator's unit tests.
import type { Destination, Model, Source, Sync } from '../../crds/index.ts';

const ready = [
  {
    type: 'Ready',
    status: 'True' as const,
    lastTransitionTime: '2025-01-01T00:00:00Z',
    reason: 'ConnectionSucceeded',
    message: 'ok',
  },
];

export function source(
  over: Partial<Source['spec']> = {},
  status: Source['status'] = { conditions: ready },
): Source {
  return {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Source',
    metadata: { name: 'warehouse', namespace: 'team', uid: 'uid-source', generation: 1 },
    spec: {
      type: 'postgres',
      postgres: {
        host: 'db',
        port: 5432,
        database: 'app',
        user: 'reader',
        password: { secretKeyRef: { name: 'pg', key: 'password' } },
      },
      ...over,
    },
    status,
  };
}

export function model(status: Model['status'] = { conditions: ready }): Model {
  return {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Model',
    metadata: { name: 'customers', namespace: 'team', uid: 'uid-model', generation: 1 },
    spec: { sourceRef: { name: 'warehouse' }, query: 'select id, email from customers', primaryKey: 'id' },
    status,
  };
}

export function destination(status: Destination['status'] = { conditions: ready }): Destination {
  return {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Destination',
    metadata: { name: 'crm', namespace: 'team', uid: 'uid-dest', generation: 1 },
    spec: {
      type: 'http',
      http: {
        url: 'https://crm.example.com/contacts',
        method: 'POST',
        body: 'row',
        batchSize: 100,
        idempotencyKeyHeader: 'Idempotency-Key',
        timeoutSeconds: 30,
        headers: [{ name: 'Authorization', valueFrom: { secretKeyRef: { name: 'crm', key: 'token' } } }],
      },
    },
    status,
  };
}

export function sync(over: Partial<Sync['spec']> = {}, meta: Partial<Sync['metadata']> = {}): Sync {
  return {
    apiVersion: 'syncline.io/v1alpha1',
    kind: 'Sync',
    metadata: {
      name: 'customers-to-crm',
      namespace: 'team',
      uid: 'uid-sync',
      generation: 3,
      creationTimestamp: '2025-03-01T10:00:00Z',
      ...meta,
    },
    spec: {
      modelRef: { name: 'customers' },
      destinationRef: { name: 'crm' },
      mode: 'upsert',
      deleteBehavior: 'ignore',
      archiveBehavior: 'archive',
      paused: false,
      invalidPrimaryKeys: 'fail',
      snapshotPolicy: 'retain',
      historyLimit: 10,
      schedule: { interval: '15m' },
      mappings: [{ to: 'email', from: 'email', valueType: 'string' }],
      ...over,
    },
  };
}

export const httpCapabilities = {
  modes: ['upsert', 'update', 'insert', 'all', 'archive'] as const,
  deleteBehaviors: ['ignore', 'clear', 'delete'] as const,
  comparesAllColumns: true,
  defaultBatchSize: 100,
};

export const postgresCapabilities = {
  modes: ['upsert', 'insert', 'all'] as const,
  deleteBehaviors: ['ignore', 'delete'] as const,
  comparesAllColumns: false,
  defaultBatchSize: 1000,
  needsTarget: 'table' as const,
};

/** A SaaS destination (HubSpot, Salesforce): objects, and a match field for upsert and update. */
export const saasCapabilities = {
  modes: ['upsert', 'insert', 'update'] as const,
  deleteBehaviors: ['ignore', 'delete', 'clear'] as const,
  comparesAllColumns: false,
  defaultBatchSize: 200,
  needsTarget: 'object' as const,
  requiresMatchField: ['upsert', 'update'] as const,
  matchFieldHint: 'an External ID field',
  discovers: true,
};
