import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { LineCounter, parseAllDocuments } from 'yaml';
import { checkReservedFields } from '../../connectors/files/destination.ts';
import { checkResource } from '../../crds/checks.ts';
import {
  API_VERSION,
  OBJECT_SCHEMAS,
  runsAfter,
  type Destination,
  type Model,
  type Sequence,
  type Source,
  type Sync,
} from '../../crds/index.ts';
import { isSynclineError, SynclineError } from '../../core/errors.ts';
import { segmentQueryModel } from '../../core/segments/index.ts';

export const DEFAULT_NAMESPACE = 'default';

/**
 * The most alias expansions one YAML document may make (the yaml package counts nodes copied through
 * aliases): resources hardly use aliases, and a "billion laughs" document must not eat the memory.
 */
export const MAX_YAML_ALIASES = 100;

interface Located<T> {
  object: T;
  file: string;
}

/** The resources of a folder, by `namespace/name`, each with the file it came from. */
export interface ResourceSet {
  sources: Map<string, Located<Source>>;
  models: Map<string, Located<Model>>;
  destinations: Map<string, Located<Destination>>;
  syncs: Map<string, Located<Sync>>;
  /** Secrets found among the resources: name -> key -> value. */
  secrets: Record<string, Record<string, string>>;
  /** The file each of those Secrets came from: name -> file. */
  secretFiles: Record<string, string>;
  /** ConfigMaps found among the resources (dbt manifests): name -> key -> value. */
  configMaps: Record<string, Record<string, string>>;
}

export function keyOf(namespace: string | undefined, name: string): string {
  return `${namespace ?? DEFAULT_NAMESPACE}/${name}`;
}

function yamlFiles(path: string): string[] {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path)
    .filter((f) => /\.ya?ml$/i.test(f))
    .sort()
    .map((f) => join(path, f))
    .filter((f) => statSync(f).isFile());
}

/** A YAML document as plain values; a document that cannot be turned into one names the file and why. */
export function documentValue(
  doc: { toJS(options: { maxAliasCount: number }): unknown },
  where: string,
): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (error) {
    const message = (error as Error).message;
    if (/alias/i.test(message)) {
      throw new SynclineError(
        'YamlAliasLimit',
        `${where}: YAML aliases expand to more than ${MAX_YAML_ALIASES} nodes (an alias bomb?): write the values out instead of repeating anchors`,
      );
    }
    throw new SynclineError('InvalidYaml', `${where}: ${message}`);
  }
}

/** A Kubernetes Secret manifest's data and stringData as plain text. */
function secretData(doc: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((doc['data'] as Record<string, unknown> | undefined) ?? {})) {
    out[k] = Buffer.from(String(v), 'base64').toString('utf8');
  }
  for (const [k, v] of Object.entries((doc['stringData'] as Record<string, unknown> | undefined) ?? {}))
    out[k] = String(v);
  return out;
}

/**
 * Read every *.yaml / *.yml file in a folder (multi-document), validate each Syncline resource with the
 * CRD schemas (including the rules the API server would enforce), and check that references resolve.
 * All problems are reported at once, each naming file, resource and field.
 */
export function loadResources(path: string): ResourceSet {
  const files = resourceFiles(path);
  const reading: Reading = { set: emptyResourceSet(), problems: [], sequences: new Map() };
  for (const file of files) readResourceFile(file, reading);
  checkModelReferences(reading);
  checkSyncReferences(reading);
  checkSequenceReferences(reading);
  const { set, problems } = reading;
  if (problems.length > 0) {
    throw new SynclineError(
      'InvalidResources',
      `${problems.length} problem(s) in ${path}:\n  ${problems.join('\n  ')}`,
    );
  }
  if (set.syncs.size === 0) {
    const found = [...set.sources.keys(), ...set.models.keys(), ...set.destinations.keys()].length;
    throw new SynclineError(
      'NoSyncs',
      `no Sync in ${path} (${files.length} YAML file(s), ${found} other Syncline resource(s)): add a Sync (kind: Sync, apiVersion: ${API_VERSION}) that names a Model and a Destination, or point -f at the folder that has one`,
    );
  }
  return set;
}

/** The resources read so far and every problem found on the way. */
interface Reading {
  set: ResourceSet;
  problems: string[];
  /** Sequences are checked (schema, steps) but not run: the operator runs them. */
  sequences: Map<string, Located<Sequence>>;
}

/** One document of a file: the file, as shown in messages, and the document's place in it. */
interface DocumentPlace {
  file: string;
  shown: string;
  where: string;
}

function emptyResourceSet(): ResourceSet {
  return {
    sources: new Map(),
    models: new Map(),
    destinations: new Map(),
    syncs: new Map(),
    secrets: {},
    secretFiles: {},
    configMaps: {},
  };
}

/** The YAML files at `path` (a file or a folder); none, or an unreadable path, is an error. */
function resourceFiles(path: string): string[] {
  let files: string[];
  try {
    files = yamlFiles(path);
  } catch (error) {
    throw new SynclineError('ResourcesNotFound', `cannot read ${path}: ${(error as Error).message}`);
  }
  if (files.length === 0) throw new SynclineError('ResourcesNotFound', `no *.yaml or *.yml files in ${path}`);
  return files;
}

function readResourceFile(file: string, reading: Reading): void {
  const shown = relative(process.cwd(), file) || file;
  const lines = new LineCounter();
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { lineCounter: lines });
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, index) => {
    const place = { file, shown, where: `${shown} (document ${index + 1})` };
    const value = parsedDocument(doc, lines, place, reading.problems);
    if (value !== null && value !== undefined) addDocument(value, place, reading);
  });
}

/** The document's value; undefined (its problems noted) when it is not valid YAML. */
function parsedDocument(
  doc: ReturnType<typeof parseAllDocuments>[number],
  lines: LineCounter,
  { shown, where }: DocumentPlace,
  problems: string[],
): unknown {
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const pos = lines.linePos(e.pos[0]);
      problems.push(`${shown}:${pos.line}:${pos.col}: invalid YAML: ${e.message.split('\n')[0]}`);
    }
    return undefined;
  }
  try {
    return documentValue(doc, where);
  } catch (error) {
    problems.push((error as Error).message);
    return undefined;
  }
}

/** A Secret or ConfigMap goes to the set's data, a Syncline resource (once checked) to its map. */
function addDocument(value: unknown, place: DocumentPlace, reading: Reading): void {
  if (typeof value !== 'object' || Array.isArray(value)) {
    reading.problems.push(`${place.where}: expected a resource (a mapping with apiVersion and kind)`);
    return;
  }
  const obj = value as Record<string, unknown>;
  const name = String((obj['metadata'] as Record<string, unknown> | undefined)?.['name'] ?? '(no name)');
  if (addKubernetesData(obj, name, place.shown, reading.set)) return;
  const resource = checkedResource(obj, name, place, reading.problems);
  if (resource) addResource(resource, name, place, reading);
}

/** A v1 Secret or ConfigMap into the set; false for any other kind. */
function addKubernetesData(
  obj: Record<string, unknown>,
  name: string,
  shown: string,
  set: ResourceSet,
): boolean {
  if (obj['apiVersion'] !== 'v1') return false;
  if (obj['kind'] === 'Secret') {
    set.secrets[name] = { ...set.secrets[name], ...secretData(obj) };
    set.secretFiles[name] = shown;
    return true;
  }
  if (obj['kind'] === 'ConfigMap') {
    const data = (obj['data'] as Record<string, unknown> | undefined) ?? {};
    set.configMaps[name] = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, String(v)]));
    return true;
  }
  return false;
}

type Resource = Source | Model | Destination | Sync | Sequence;

/** The resource when its kind, apiVersion and schema check out; undefined (problems noted) otherwise. */
function checkedResource(
  obj: Record<string, unknown>,
  name: string,
  { shown, where }: DocumentPlace,
  problems: string[],
): Resource | undefined {
  const kind = obj['kind'];
  if (typeof kind !== 'string' || !(kind in OBJECT_SCHEMAS)) {
    problems.push(
      `${where}: kind ${JSON.stringify(kind)} is not one of Source, Model, Destination, Sync, Sequence`,
    );
    return undefined;
  }
  if (obj['apiVersion'] !== API_VERSION) {
    problems.push(`${where}: ${kind} "${name}": apiVersion must be ${API_VERSION}`);
    return undefined;
  }
  // The checks the API server and the operator make, unknown fields and the schedule included.
  const checked = checkResource(kind as keyof typeof OBJECT_SCHEMAS, obj);
  if (!checked.ok) {
    for (const problem of checked.problems) problems.push(`${shown}: ${kind} "${name}": ${problem.message}`);
    return undefined;
  }
  return checked.resource;
}

/** Into the map of its kind, unless one of that kind and name is already there. */
function addResource(
  resource: Resource,
  name: string,
  { file, shown }: DocumentPlace,
  reading: Reading,
): void {
  const { set } = reading;
  const key = keyOf(resource.metadata.namespace, resource.metadata.name);
  const target = {
    Source: set.sources,
    Model: set.models,
    Destination: set.destinations,
    Sync: set.syncs,
    Sequence: reading.sequences,
  }[resource.kind] as Map<string, Located<typeof resource>>;
  const existing = target.get(key);
  if (existing) {
    reading.problems.push(
      `${shown}: ${resource.kind} "${name}" is also defined in ${relative(process.cwd(), existing.file) || existing.file}`,
    );
    return;
  }
  target.set(key, { object: resource, file });
}

/** Every Model names a Source of its namespace. */
function checkModelReferences({ set, problems }: Reading): void {
  for (const [key, { object: model, file }] of set.models) {
    const ns = key.split('/')[0];
    if (!set.sources.has(keyOf(ns, model.spec.sourceRef.name))) {
      problems.push(
        `${relative(process.cwd(), file)}: Model "${model.metadata.name}": spec.sourceRef.name: no Source "${model.spec.sourceRef.name}" in namespace ${ns}`,
      );
    } else if (model.spec.segment) {
      const problem = segmentProblem(set, ns, model);
      if (problem)
        problems.push(`${relative(process.cwd(), file)}: Model "${model.metadata.name}": ${problem}`);
    }
  }
}

/** What the operator would stall a segment Model with: an unknown column, relationship or segment, a cycle. */
function segmentProblem(set: ResourceSet, ns: string | undefined, model: Model): string | undefined {
  const source = set.sources.get(keyOf(ns, model.spec.sourceRef.name))?.object;
  if (!source) return undefined;
  try {
    segmentQueryModel(
      model.metadata.name,
      model.spec,
      source.spec,
      (name) => set.models.get(keyOf(ns, name))?.object.spec,
    );
    return undefined;
  } catch (error) {
    if (!isSynclineError(error)) throw error;
    return `${error.message} (${error.reason})`;
  }
}

/** Every Sync names a Model, a Destination and Syncs it depends on of its namespace; files get no reserved fields. */
function checkSyncReferences({ set, problems }: Reading): void {
  for (const [key, { object: sync, file }] of set.syncs) {
    const ns = key.split('/')[0];
    const problem = (text: string) =>
      problems.push(`${relative(process.cwd(), file)}: Sync "${sync.metadata.name}": ${text}`);
    if (!set.models.has(keyOf(ns, sync.spec.modelRef.name)))
      problem(`spec.modelRef.name: no Model "${sync.spec.modelRef.name}" in namespace ${ns}`);
    if (!set.destinations.has(keyOf(ns, sync.spec.destinationRef.name)))
      problem(
        `spec.destinationRef.name: no Destination "${sync.spec.destinationRef.name}" in namespace ${ns}`,
      );
    const destination = set.destinations.get(keyOf(ns, sync.spec.destinationRef.name))?.object;
    // Both write each record after _operation and _key (connectors/files/destination.ts).
    if ((destination?.spec.type === 'files' || destination?.spec.type === 'sftp') && sync.spec.mappings) {
      try {
        checkReservedFields(sync.spec.mappings);
      } catch (error) {
        problem((error as Error).message);
      }
    }
    const after = runsAfter(sync.spec);
    for (const name of after?.names ?? []) {
      if (!set.syncs.has(keyOf(ns, name))) problem(`${after?.field}: no Sync "${name}" in namespace ${ns}`);
    }
  }
}

/** Every step of a Sequence names a Sync of its namespace. */
function checkSequenceReferences({ set, sequences, problems }: Reading): void {
  for (const [key, { object: sequence, file }] of sequences) {
    const ns = key.split('/')[0];
    sequence.spec.steps.forEach((step, i) => {
      if (!set.syncs.has(keyOf(ns, step.sync)))
        problems.push(
          `${relative(process.cwd(), file)}: Sequence "${sequence.metadata.name}": spec.steps[${i}].sync: no Sync "${step.sync}" in namespace ${ns}`,
        );
    });
  }
}

/**
 * A local secrets file: YAML mapping Secret name -> key -> value, or Kubernetes Secret manifests
 * (data base64-encoded, or stringData).
 */
export function loadSecretsFile(file: string): Record<string, Record<string, string>> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new SynclineError(
      'SecretsFileUnreadable',
      `cannot read the secrets file ${file}: ${(error as Error).message}`,
    );
  }
  const secrets: Record<string, Record<string, string>> = {};
  // Every value as the text written: `password: 0123` is "0123", not the number 123; an empty one is "".
  const docs = parseAllDocuments(text, { schema: 'failsafe' });
  for (const doc of docs as ReturnType<typeof parseAllDocuments> & unknown[]) {
    if (doc.errors.length > 0) {
      throw new SynclineError(
        'SecretsFileInvalid',
        `the secrets file ${file} is not valid YAML: ${doc.errors[0]?.message.split('\n')[0]}`,
      );
    }
    const value = documentValue(doc, `the secrets file ${file}`);
    if (value === null || value === undefined || value === '') continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new SynclineError(
        'SecretsFileInvalid',
        `the secrets file ${file} must map Secret names to key/value maps`,
      );
    }
    const obj = value as Record<string, unknown>;
    if (obj['kind'] === 'Secret') {
      const name = String((obj['metadata'] as Record<string, unknown> | undefined)?.['name'] ?? '');
      secrets[name] = { ...secrets[name], ...secretData(obj) };
      continue;
    }
    for (const [name, keys] of Object.entries(obj)) {
      if (typeof keys !== 'object' || keys === null || Array.isArray(keys)) {
        throw new SynclineError(
          'SecretsFileInvalid',
          `the secrets file ${file}: "${name}" must map keys to values`,
        );
      }
      for (const [k, v] of Object.entries(keys)) {
        if (typeof v !== 'string') {
          throw new SynclineError(
            'SecretsFileInvalid',
            `the secrets file ${file}: "${name}" key "${k}" must be a text value, not a list or a map`,
          );
        }
        secrets[name] = { ...secrets[name], [k]: v };
      }
    }
  }
  return secrets;
}
