// Looker as a Source: a Model names a Look or a saved query (spec.looker). With as: sql the runner reads
// the SQL Looker generates before the run (sqlOfQuery) and the warehouse Source runs it; with as: results
// this Source stages the query's rows through Looker's API 4.0.
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import type { ConnectorContext, SourceConnector } from '../../core/connectors.ts';
import { SynclineError } from '../../core/errors.ts';
import { z } from 'zod';
import { LookerClient } from './client.ts';
import { sqlForWarehouse } from './query.ts';
import { stageResults } from './results.ts';

function settingsOf(source: SourceSpec) {
  if (!source.looker) throw new SynclineError('InvalidSource', 'the Source has no looker settings');
  return source.looker;
}

export const source: SourceConnector = {
  async check(spec, ctx) {
    const client = new LookerClient(settingsOf(spec), ctx);
    await client.get(z.looseObject({ id: z.union([z.string(), z.number()]) }), '/user', {
      operation: 'check',
    });
  },
  async stage(req) {
    if (req.model.looker?.as !== 'results')
      throw new SynclineError(
        'InvalidModel',
        'a Model whose spec.sourceRef is a looker Source names a Look or query with spec.looker.as: results',
      );
    return stageResults(new LookerClient(settingsOf(req.source), req), req);
  },
};

/** The SQL of the Model's Look or query (as: sql), to run on `warehouse`, the Model's Source. */
export async function sqlOfQuery(
  model: ModelSpec,
  looker: SourceSpec,
  warehouse: SourceSpec,
  ctx: Pick<ConnectorContext, 'secrets' | 'signal' | 'log'>,
): Promise<string> {
  if (!model.looker) throw new SynclineError('InvalidModel', 'the Model has no looker block');
  return sqlForWarehouse(new LookerClient(settingsOf(looker), ctx), model.looker, warehouse, ctx.log);
}
