import { relative } from 'node:path';
import { capabilityProblem } from '../../core/capabilities.ts';
import { describeError, SynclineError } from '../../core/errors.ts';
import { destinationConnector } from '../../connectors/registry.ts';
import type { DestinationCapabilities } from '../../core/connectors.ts';
import type { DestinationType } from '../../crds/index.ts';
import { keyOf, type ResourceSet } from './resources.ts';

/**
 * What the operator stalls a Sync for that depends on its destination's connector (core/capabilities.ts:
 * a mode or delete behaviour it does not offer, a missing target or match field), for every Sync of the
 * folder before any of them runs: one line per Sync, naming its file, as loadResources does.
 */
export async function capabilityProblems(
  set: ResourceSet,
  load: (type: DestinationType) => Promise<{ capabilities: DestinationCapabilities }> = destinationConnector,
): Promise<string[]> {
  const problems: string[] = [];
  const loaded = new Map<DestinationType, Promise<DestinationCapabilities>>();
  for (const [key, { object: sync, file }] of set.syncs) {
    const ns = key.split('/')[0];
    const destination = set.destinations.get(keyOf(ns, sync.spec.destinationRef.name))?.object;
    if (!destination) continue; // loadResources has reported it
    const type = destination.spec.type;
    let capabilities = loaded.get(type);
    if (!capabilities) {
      capabilities = load(type).then((c) => c.capabilities);
      loaded.set(type, capabilities);
    }
    const where = `${relative(process.cwd(), file) || file}: Sync "${sync.metadata.name}"`;
    try {
      const problem = capabilityProblem(await capabilities, sync.spec, type);
      if (problem) problems.push(`${where}: ${problem.message} (${problem.reason})`);
    } catch (error) {
      const { reason, message } = describeError(error);
      problems.push(`${where}: destination type "${type}" cannot be loaded: ${message} (${reason})`);
    }
  }
  return problems;
}

/** capabilityProblems as one InvalidResources error, or nothing when every Sync can run. */
export async function checkCapabilities(set: ResourceSet, path: string): Promise<void> {
  const problems = await capabilityProblems(set);
  if (problems.length > 0) {
    throw new SynclineError(
      'InvalidResources',
      `${problems.length} problem(s) in ${path}:\n  ${problems.join('\n  ')}`,
    );
  }
}
