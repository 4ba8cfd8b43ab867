// A Model of a BI question, for one run. With as: sql it becomes a Model of the question's SQL on the
// Model's Source (the warehouse), read from the BI tool Source the plan carries (RunPlan.biSource), so
// the source connector, its read-only transaction, hashing and keys-only path are those of any query.
// With as: results the Model's Source is the BI tool itself, whose connector stages the rows.
import { BI_WAREHOUSE_TYPES } from '../../crds/bi.ts';
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import type { ConnectorContext } from '../../core/connectors.ts';
import { SynclineError } from '../../core/errors.ts';
import { silentLogger } from '../../core/logger.ts';
import type { RunPlan } from '../../core/plan.ts';
import type { SecretResolver } from '../../core/secrets.ts';
import { sqlOfQuery } from '../looker/index.ts';
import { sqlOfQuestion } from '../metabase/index.ts';

const WAREHOUSES: ReadonlySet<string> = new Set(BI_WAREHOUSE_TYPES);

export interface BiContext {
  secrets: SecretResolver;
  signal?: AbortSignal;
  log?: ConnectorContext['log'];
}

function toolOf(spec: ModelSpec): { tool: 'metabase' | 'looker'; as: 'sql' | 'results' } {
  if (spec.metabase) return { tool: 'metabase', as: spec.metabase.as };
  if (spec.looker) return { tool: 'looker', as: spec.looker.as };
  throw new SynclineError('InvalidModel', 'the Model names no BI question');
}

function toolSource(plan: RunPlan, tool: string): SourceSpec {
  const bi = plan.biSource;
  if (!bi)
    throw new SynclineError(
      'InvalidRunPlan',
      `Model ${plan.model.name} reads a ${tool} question with as: sql, but the run plan carries no ${tool} Source (spec.${tool}.sourceRef)`,
    );
  if (bi.spec.type !== tool)
    throw new SynclineError(
      'InvalidModel',
      `Model ${plan.model.name}: spec.${tool}.sourceRef names Source "${bi.name}" of type ${bi.spec.type}, not a ${tool} Source`,
    );
  return bi.spec;
}

export async function resolveBiModel(plan: RunPlan, ctx: BiContext): Promise<RunPlan> {
  const spec = plan.model.spec;
  const { tool, as } = toolOf(spec);
  if (as === 'results') {
    if (plan.source.spec.type !== tool)
      throw new SynclineError(
        'InvalidModel',
        `Model ${plan.model.name} reads ${tool} results (as: results), so spec.sourceRef names the ${tool} Source, not Source "${plan.source.name}" of type ${plan.source.spec.type}`,
      );
    return plan;
  }
  if (!WAREHOUSES.has(plan.source.spec.type))
    throw new SynclineError(
      'InvalidModel',
      `Model ${plan.model.name} runs the ${tool} question's SQL (as: sql) on its Source "${plan.source.name}", which is of type ${plan.source.spec.type}: name the warehouse (postgres, mysql, snowflake, bigquery) in spec.sourceRef`,
    );
  const biSource = toolSource(plan, tool);
  const context = {
    secrets: ctx.secrets,
    signal: ctx.signal ?? new AbortController().signal,
    log: ctx.log ?? silentLogger(),
  };
  const query =
    tool === 'metabase'
      ? await sqlOfQuestion(spec, biSource, plan.source.spec, context)
      : await sqlOfQuery(spec, biSource, plan.source.spec, context);
  const { metabase: _metabase, looker: _looker, ...rest } = spec;
  return { ...plan, model: { ...plan.model, spec: { ...rest, query } } };
}
