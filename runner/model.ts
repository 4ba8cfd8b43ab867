import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveDbtModel } from '../connectors/dbt/index.ts';
import { resolveBiModel } from '../connectors/bi/resolve.ts';
import type { RunPlan } from '../core/plan.ts';
import type { SecretResolver } from '../core/secrets.ts';
import type { Logger } from '../core/connectors.ts';

/** Reads one key of a ConfigMap (a dbt manifest); where from depends on where the run happens. */
export type ConfigMapReader = (name: string, key: string) => Promise<string>;

/**
 * In a runner pod the operator mounts the ConfigMaps a run needs under this folder, one folder per
 * ConfigMap and one file per key, as a kubelet mounts a ConfigMap volume.
 */
export function mountedConfigMapReader(
  dir = process.env['SYNCLINE_CONFIGMAP_DIR'] ?? '/etc/syncline/configmaps',
): ConfigMapReader {
  return (name, key) => readFile(join(dir, name, key), 'utf8');
}

/**
 * A Model of a BI question (metabase, looker) with as: sql becomes a Model of the question's SQL.
 * A Model that names a dbt model becomes, for this run, a Model of the table dbt built, with the
 * primary key the Model gives or the dbt model declares.
 */
export async function resolveModel(
  plan: RunPlan,
  ctx: { secrets: SecretResolver; readConfigMap?: ConfigMapReader; signal?: AbortSignal; log?: Logger },
): Promise<RunPlan> {
  const spec = plan.model.spec;
  if (spec.metabase || spec.looker) return resolveBiModel(plan, ctx);
  if (!spec.dbt) return plan;
  const resolution = await resolveDbtModel(spec, plan.source.spec, {
    secrets: ctx.secrets,
    tmpDir: tmpdir(),
    ...(ctx.readConfigMap ? { readConfigMap: ctx.readConfigMap } : {}),
  });
  const { dbt: _dbt, ...rest } = spec;
  return {
    ...plan,
    model: {
      ...plan.model,
      spec: { ...rest, table: resolution.table, primaryKey: resolution.primaryKey ?? spec.primaryKey },
    },
  };
}
