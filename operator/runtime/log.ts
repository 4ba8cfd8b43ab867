import { randomUUID } from 'node:crypto';
import type { Logger } from '../../core/logger.ts';

/** Splits a work-queue key "namespace/name" (or "name" for cluster-scoped objects). */
export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return slash < 0
    ? { namespace: '', name: key }
    : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** The key of an object as work queues and informers use it. */
export function objectKey(obj: { metadata?: { namespace?: string; name?: string } }): string {
  const namespace = obj.metadata?.namespace ?? '';
  const name = obj.metadata?.name ?? '';
  return namespace ? `${namespace}/${name}` : name;
}

/** A child logger for one reconcile of one object: every line carries namespace, name and a reconcile id. */
export function reconcileLogger(log: Logger, key: string, extra: Record<string, unknown> = {}): Logger {
  const { namespace, name } = splitKey(key);
  return log.child({ namespace, name, reconcileId: randomUUID(), ...extra });
}
