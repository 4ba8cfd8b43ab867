// Metabase as a Source: a Model names a saved question (spec.metabase). With as: sql the runner reads
// the question's SQL before the run (sqlOfQuestion) and the warehouse Source runs it; with as: results
// this Source stages the question's rows through Metabase's API.
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import type { ConnectorContext, SourceConnector } from '../../core/connectors.ts';
import { SynclineError } from '../../core/errors.ts';
import { z } from 'zod';
import { MetabaseClient } from './client.ts';
import { sqlForWarehouse } from './question.ts';
import { stageResults } from './results.ts';

function settingsOf(source: SourceSpec) {
  if (!source.metabase) throw new SynclineError('InvalidSource', 'the Source has no metabase settings');
  return source.metabase;
}

export const source: SourceConnector = {
  async check(spec, ctx) {
    const client = new MetabaseClient(settingsOf(spec), ctx);
    await client.call(z.looseObject({ id: z.number() }), 'GET', '/user/current', { operation: 'check' });
  },
  async stage(req) {
    const question = req.model.metabase?.question;
    if (question === undefined || req.model.metabase?.as !== 'results')
      throw new SynclineError(
        'InvalidModel',
        'a Model whose spec.sourceRef is a metabase Source names a question with spec.metabase.as: results',
      );
    return stageResults(new MetabaseClient(settingsOf(req.source), req), req, question);
  },
};

/** The SQL of the Model's question (as: sql), to run on `warehouse`, the Model's Source. */
export async function sqlOfQuestion(
  model: ModelSpec,
  metabase: SourceSpec,
  warehouse: SourceSpec,
  ctx: Pick<ConnectorContext, 'secrets' | 'signal'>,
): Promise<string> {
  if (!model.metabase) throw new SynclineError('InvalidModel', 'the Model has no metabase block');
  return sqlForWarehouse(new MetabaseClient(settingsOf(metabase), ctx), model.metabase.question, warehouse);
}
