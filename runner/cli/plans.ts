import { randomBytes } from 'node:crypto';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { API_VERSION, runsAfter, type Sync } from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import type { RunPlan } from '../../core/plan.ts';
import { keyOf, type ResourceSet } from './resources.ts';
import { segmentQueryModel } from '../../core/segments/index.ts';

/** A run id: sortable by time, unique, and valid as a diff-store file name. */
export function newRunId(now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'z')
    .toLowerCase();
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

/** A relative local path in a resource is relative to the YAML file that declares it, not to the shell. */
function localPath(url: string, declaredIn: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || isAbsolute(url)) return url;
  return resolve(dirname(declaredIn), url);
}

/** Resolve a Sync and what it references into the plan of one run (what the operator does in a cluster). */
export function buildRunPlan(
  set: ResourceSet,
  syncKey: string,
  options: { stateDir: string; fullResync?: boolean; dryRun?: boolean; runId?: string; memoryLimit?: string },
): RunPlan {
  const sync = set.syncs.get(syncKey)?.object;
  const fileOf = (map: Map<string, { file: string }>, name: string) => map.get(keyOf(namespace, name))?.file;
  if (!sync) throw new SynclineError('SyncNotFound', `no Sync ${syncKey}`);
  const namespace = syncKey.split('/')[0] as string;
  const model = set.models.get(keyOf(namespace, sync.spec.modelRef.name))?.object;
  const destination = set.destinations.get(keyOf(namespace, sync.spec.destinationRef.name))?.object;
  const source = model ? set.sources.get(keyOf(namespace, model.spec.sourceRef.name))?.object : undefined;
  if (!model || !destination || !source)
    throw new SynclineError('InvalidReference', `Sync ${syncKey} references resources that do not exist`);
  const named = <T>(o: { metadata: { name: string }; spec: T }) => ({ name: o.metadata.name, spec: o.spec });
  const biRef = (model.spec.metabase ?? model.spec.looker)?.sourceRef;
  const biSource = biRef ? set.sources.get(keyOf(namespace, biRef.name))?.object : undefined;
  if (biRef && !biSource)
    throw new SynclineError(
      'InvalidReference',
      `Model ${model.metadata.name} names no Source "${biRef.name}" in ${namespace}`,
    );
  const sourceFile = fileOf(set.sources, source.metadata.name);
  const destinationFile = fileOf(set.destinations, destination.metadata.name);
  return {
    apiVersion: API_VERSION,
    kind: 'RunPlan',
    runId: options.runId ?? newRunId(),
    namespace,
    trigger: options.fullResync ? 'resync' : 'manual',
    fullResync: options.fullResync ?? false,
    dryRun: options.dryRun ?? false,
    sync: named(sync),
    model: model.spec.segment
      ? {
          name: model.metadata.name,
          spec: segmentQueryModel(
            model.metadata.name,
            model.spec,
            source.spec,
            (name) => set.models.get(keyOf(namespace, name))?.object.spec,
          ).spec,
        }
      : named(model),
    source: {
      ...named(source),
      spec:
        source.spec.files && sourceFile
          ? {
              ...source.spec,
              files: { ...source.spec.files, url: localPath(source.spec.files.url, sourceFile) },
            }
          : source.spec,
    },
    ...(biSource ? { biSource: named(biSource) } : {}),
    destination: {
      ...named(destination),
      spec:
        destination.spec.files && destinationFile
          ? {
              ...destination.spec,
              files: {
                ...destination.spec.files,
                url: localPath(destination.spec.files.url, destinationFile),
              },
            }
          : destination.spec,
    },
    diffStore: { url: sync.spec.diffStore?.url ?? pathToFileURL(resolve(options.stateDir)).href },
    runner: {
      debuggerRetentionDays: 7,
      ...(options.memoryLimit ? { memoryLimit: options.memoryLimit } : {}),
    },
  };
}

/** Sync keys in an order where each comes after the Syncs it depends on. */
export function dependencyOrder(syncs: Map<string, { object: Sync }>, only?: string[]): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (key: string, path: string[]) => {
    if (state.get(key) === 'done') return;
    if (state.get(key) === 'visiting') {
      throw new SynclineError(
        'DependencyCycle',
        `Syncs depend on each other in a cycle: ${[...path, key].join(' -> ')}`,
      );
    }
    state.set(key, 'visiting');
    const sync = syncs.get(key)?.object;
    const ns = key.split('/')[0];
    for (const name of (sync ? runsAfter(sync.spec)?.names : undefined) ?? []) {
      const depKey = keyOf(ns, name);
      if (syncs.has(depKey) && (only === undefined || only.includes(depKey))) visit(depKey, [...path, key]);
    }
    state.set(key, 'done');
    order.push(key);
  };
  for (const key of [...syncs.keys()].sort()) if (only === undefined || only.includes(key)) visit(key, []);
  return order;
}
