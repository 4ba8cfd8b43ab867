// dbt models as Syncline models: resolve a Model's `dbt` block to the relation dbt built and its key.
export { resolveDbtModel, findNode, declaredKey, type DbtResolution } from './resolve.ts';
export { loadManifest, type Manifest, type ManifestContext } from './manifest.ts';
