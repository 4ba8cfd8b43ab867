// Resolving a Model's `dbt: {model, manifest}` to the relation dbt built (database, schema, alias) and the
// model's declared unique key, from dbt's manifest.json.
import type { ModelSpec, SourceSpec } from '../../crds/index.ts';
import { SynclineError } from '../../core/errors.ts';
import { loadManifest, type Manifest, type ManifestContext, type ManifestNode } from './manifest.ts';

export interface DbtResolution {
  /** Fully qualified relation, quoted for the Source's dialect (dbt's own rendering when the manifest has it). */
  table: string;
  /** The model's declared unique key (or primary-key constraint), unless the Model names a primaryKey. */
  primaryKey?: string;
  relation: { database?: string; schema: string; alias: string };
}

/** Node types ref() can name that dbt materialises as a relation. */
const REFERABLE = new Set(['model', 'seed', 'snapshot']);

/** dbt adapters whose relations each Source type can read. */
const ADAPTERS: Record<string, string[]> = {
  postgres: ['postgres', 'redshift'],
  snowflake: ['snowflake'],
  bigquery: ['bigquery'],
  mysql: ['mysql', 'mariadb'],
};

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_v, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

function notFound(manifest: Manifest, wanted: string, name: string): SynclineError {
  const disabled = Object.values(manifest.disabled ?? {})
    .flat()
    .some((node) => node.name === name && REFERABLE.has(node.resource_type));
  if (disabled) {
    return new SynclineError(
      'DbtModelNotFound',
      `dbt model "${wanted}" is disabled in the manifest (enabled: false); enable it in dbt or pick another model`,
    );
  }
  const names = [
    ...new Set(
      Object.values(manifest.nodes)
        .filter((n) => REFERABLE.has(n.resource_type))
        .map((n) => n.name),
    ),
  ];
  const close = names
    .filter((n) => distance(n.toLowerCase(), name.toLowerCase()) <= 2 || n.includes(name) || name.includes(n))
    .slice(0, 5);
  const hint = close.length > 0 ? ` Did you mean ${close.map((n) => `"${n}"`).join(', ')}?` : '';
  return new SynclineError(
    'DbtModelNotFound',
    `the dbt manifest of project "${manifest.metadata.project_name ?? '?'}" has no model "${wanted}".${hint} Check dbt.model, and that the manifest is current.`,
  );
}

/** The node a ref() name resolves to: package-qualified or not, latest version for versioned models. */
export function findNode(manifest: Manifest, wanted: string): ManifestNode {
  const dot = wanted.lastIndexOf('.');
  const [pkg, name] = dot > 0 ? [wanted.slice(0, dot), wanted.slice(dot + 1)] : [undefined, wanted];
  const candidates = Object.values(manifest.nodes).filter(
    (node) =>
      REFERABLE.has(node.resource_type) &&
      node.name === name &&
      (pkg === undefined || node.package_name === pkg),
  );
  if (candidates.length === 0) throw notFound(manifest, wanted, name);
  const packages = [...new Set(candidates.map((n) => n.package_name))];
  if (packages.length > 1) {
    throw new SynclineError(
      'DbtModelAmbiguous',
      `dbt model "${wanted}" exists in several packages (${packages.map((p) => `${p}.${name}`).join(', ')}); qualify dbt.model with its package`,
    );
  }
  if (candidates.length === 1) return candidates[0]!;
  const latest = candidates.find(
    (n) => n.version !== undefined && n.version !== null && String(n.version) === String(n.latest_version),
  );
  if (latest) return latest;
  throw new SynclineError(
    'DbtModelAmbiguous',
    `dbt model "${wanted}" matches ${candidates.length} nodes and none is the latest version`,
  );
}

/** The declared key of a node: config unique_key, else a one-column primary-key constraint. */
export function declaredKey(node: ManifestNode): string | string[] | undefined {
  const unique = node.config?.unique_key;
  if (typeof unique === 'string' && unique.trim() !== '')
    return unique.includes(',') ? unique.split(',').map((k) => k.trim()) : unique.trim();
  if (Array.isArray(unique) && unique.length > 0) return unique.length === 1 ? unique[0] : unique;
  const modelConstraint = node.constraints?.find(
    (c) => c.type === 'primary_key' && (c.columns?.length ?? 0) > 0,
  );
  if (modelConstraint?.columns)
    return modelConstraint.columns.length === 1 ? modelConstraint.columns[0] : modelConstraint.columns;
  const columns = Object.values(node.columns ?? {}).filter((c) =>
    c.constraints?.some((k) => k.type === 'primary_key'),
  );
  if (columns.length === 1) return columns[0]!.name;
  if (columns.length > 1) return columns.map((c) => c.name);
  return undefined;
}

function quoteParts(parts: string[], open: string, close = open): string {
  return parts.map((p) => `${open}${p.replaceAll(close, close + close)}${close}`).join('.');
}

/** The relation as the Source's dialect names it, when the manifest has no relation_name. */
function relationSql(type: SourceSpec['type'], relation: DbtResolution['relation']): string {
  const parts = [relation.database, relation.schema, relation.alias].filter(
    (p): p is string => p !== undefined && p !== '',
  );
  switch (type) {
    case 'postgres':
      return quoteParts(parts, '"');
    case 'snowflake':
      // dbt-snowflake does not quote by default: Snowflake folds the unquoted names to upper case.
      return quoteParts(
        parts.map((p) => p.toUpperCase()),
        '"',
      );
    case 'mysql':
      return quoteParts([relation.schema, relation.alias], '`');
    case 'bigquery':
      return quoteParts(parts, '`');
    default:
      throw new SynclineError('DbtUnsupportedSource', `dbt models cannot be read from a ${type} Source`);
  }
}

export async function resolveDbtModel(
  model: ModelSpec,
  source: SourceSpec,
  ctx: ManifestContext,
): Promise<DbtResolution> {
  if (!model.dbt) throw new SynclineError('InvalidModel', 'the Model has no dbt block to resolve');
  const accepted = ADAPTERS[source.type];
  if (!accepted)
    throw new SynclineError('DbtUnsupportedSource', `dbt models cannot be read from a ${source.type} Source`);
  const manifest = await loadManifest(model.dbt.manifest, ctx);
  const adapter = manifest.metadata.adapter_type;
  if (adapter !== undefined && !accepted.includes(adapter)) {
    throw new SynclineError(
      'DbtAdapterMismatch',
      `the dbt manifest was built with the ${adapter} adapter but the Model's Source is ${source.type}; point the Model at a Source of the warehouse dbt builds in`,
    );
  }
  const node = findNode(manifest, model.dbt.model);
  const materialized = node.config?.materialized ?? 'view';
  if (materialized === 'ephemeral') {
    throw new SynclineError(
      'DbtModelNotMaterialized',
      `dbt model "${model.dbt.model}" is ephemeral: it exists only as a CTE inside other models, not as a table or view. Materialise it (view, table or incremental) or sync a model that selects from it.`,
    );
  }
  const relation = {
    ...(node.database ? { database: node.database } : {}),
    schema: node.schema,
    alias: node.alias ?? node.name,
  };
  const table = node.relation_name ?? relationSql(source.type, relation);
  if (model.primaryKey !== undefined) return { table, primaryKey: model.primaryKey, relation };
  const key = declaredKey(node);
  if (Array.isArray(key)) {
    throw new SynclineError(
      'DbtCompositeUniqueKey',
      `dbt model "${model.dbt.model}" declares a composite unique key (${key.join(', ')}); Syncline needs one key column: add a surrogate key column to the model and set primaryKey`,
    );
  }
  if (key === undefined) {
    throw new SynclineError(
      'PrimaryKeyMissing',
      `dbt model "${model.dbt.model}" declares no unique_key or primary-key constraint: set the Model's primaryKey`,
    );
  }
  return { table, primaryKey: key, relation };
}
