import type { Model } from '../crds/index.ts';
import { segmentQueryModel } from '../core/segments/index.ts';
import type { PluginCluster, SyncGraph } from './cluster.ts';

/**
 * The Model a plan of a segment reads: compiled from the namespace's Models as the API server has them,
 * as the operator compiles it, so the SQL printed is the SQL a run would query.
 */
export async function segmentPlanModel(
  cluster: Pick<PluginCluster, 'list' | 'namespace'>,
  graph: SyncGraph,
): Promise<{ model: Model; compiledSql?: string }> {
  if (!graph.model.spec.segment) return { model: graph.model };
  const models = await cluster.list<Model>('models', cluster.namespace);
  const byName = new Map(models.map((m) => [m.metadata.name, m.spec]));
  const { spec } = segmentQueryModel(graph.model.metadata.name, graph.model.spec, graph.source.spec, (name) =>
    byName.get(name),
  );
  return { model: { ...graph.model, spec }, ...(spec.query ? { compiledSql: spec.query } : {}) };
}
