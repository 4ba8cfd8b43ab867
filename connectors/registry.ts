import type { DestinationType, SourceType } from '../crds/index.ts';
import { SynclineError } from '../core/errors.ts';
import type { ConnectorModule, DestinationConnector, SourceConnector } from '../core/connectors.ts';

// Each connector is the folder connectors/<type>/ whose index.ts exports `source` and/or
// `destination`; it is loaded on first use, so a runner loads only the drivers its plan needs.
async function load(type: string): Promise<ConnectorModule> {
  if (!/^[a-z0-9-]+$/.test(type))
    throw new SynclineError('UnknownConnector', `unknown connector type "${type}"`);
  try {
    return (await import(`./${type}/index.ts`)) as ConnectorModule;
  } catch (error) {
    if (
      (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' &&
      String(error).includes(`/${type}/index.ts`)
    ) {
      throw new SynclineError(
        'UnknownConnector',
        `no connector for type "${type}" in this build of Syncline`,
      );
    }
    throw error;
  }
}

export async function sourceConnector(type: SourceType): Promise<SourceConnector> {
  const mod = await load(type);
  if (!mod.source) throw new SynclineError('UnsupportedSource', `"${type}" cannot be used as a Source`);
  return mod.source;
}

export async function destinationConnector(type: DestinationType): Promise<DestinationConnector> {
  const mod = await load(type);
  if (!mod.destination)
    throw new SynclineError('UnsupportedDestination', `"${type}" cannot be used as a Destination`);
  return mod.destination;
}
