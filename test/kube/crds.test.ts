import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RESOURCES } from '../../crds/index.ts';
import {
  INVALID_CASES,
  OPERATOR_INVALID_SYNCS,
  VALID_SPECS,
  caseObject,
  objectFor,
} from '../fixtures/invalid-resources.ts';
import { run } from '../stack/process.ts';

const kubeconfigPath = inject('kubeconfigPath');
const env = { ...process.env, KUBECONFIG: kubeconfigPath };
const kubectl = (...args: string[]) => run('kubectl', args, { env }).then((r) => r.stdout);
const NAMESPACE = 'crds-test';
const EXAMPLES = new URL('../../examples/', import.meta.url).pathname;

const kc = new KubeConfig();
kc.loadFromFile(kubeconfigPath);
const custom = kc.makeApiClient(CustomObjectsApi);

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(entry) ? [path] : [];
  });
}

function pluralOf(kind: string): string {
  const def = RESOURCES.find((r) => r.kind === kind);
  if (!def) throw new Error(kind);
  return def.plural;
}

async function create(obj: Record<string, unknown>): Promise<unknown> {
  return custom.createNamespacedCustomObject({
    group: 'syncline.io',
    version: 'v1alpha1',
    namespace: NAMESPACE,
    plural: pluralOf(obj['kind'] as string),
    body: obj,
    fieldValidation: 'Strict',
  });
}

/** The message of the Status object the API server answered with. */
function statusMessage(error: { body?: unknown; message?: string } | undefined): string {
  const body = error?.body;
  if (typeof body === 'string') {
    try {
      return String((JSON.parse(body) as { message?: string }).message);
    } catch {
      return body;
    }
  }
  if (body && typeof body === 'object') return String((body as { message?: string }).message);
  return String(error?.message);
}

beforeAll(async () => {
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NAMESPACE } } });
});

afterAll(async () => {
  await kc.makeApiClient(CoreV1Api).deleteNamespace({ name: NAMESPACE });
});

describe('the CRDs on a real API server', () => {
  it('are Established, namespaced, with short names, the syncline category and the status subresource', async () => {
    const api = kc.makeApiClient(ApiextensionsV1Api);
    for (const def of RESOURCES) {
      const crd = await api.readCustomResourceDefinition({ name: `${def.plural}.syncline.io` });
      const established = crd.status?.conditions?.find((c) => c.type === 'Established');
      expect(established?.status, def.kind).toBe('True');
      expect(crd.spec.scope).toBe('Namespaced');
      expect(crd.spec.names.shortNames).toEqual(def.shortNames);
      expect(crd.spec.names.categories).toContain('syncline');
      expect(crd.spec.versions[0]?.subresources?.status).toEqual({});
    }
  });

  it('kubectl explain shows the field descriptions', async () => {
    // kubectl wraps the text; compare with whitespace folded.
    const explain = async (field: string) => (await kubectl('explain', field)).replace(/\s+/g, ' ');
    expect(await explain('sync.spec.mode')).toContain(
      'every row every run, the destination ends equal to the model',
    );
    expect(await explain('source.spec.postgres.password')).toContain('plain values are not accepted');
  });

  it('accepts every file in examples/', async () => {
    const files = yamlFiles(EXAMPLES);
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const file of files) {
      // Strict field validation: an unknown or misspelled field is an error, not silently pruned.
      const out = await kubectl('apply', '--validate=strict', '-n', NAMESPACE, '-f', file);
      expect(out, file).toMatch(/created|configured|unchanged/);
    }
    const listed = await kubectl('get', 'syncline', '-n', NAMESPACE, '-o', 'name');
    expect(listed).toContain('sync.syncline.io/customers-to-crm');
    expect(listed).toContain('source.syncline.io/snowflake');
  });

  it.each(INVALID_CASES)('rejects $kind: $name', async (c) => {
    const obj = caseObject(c, `bad-${c.kind.toLowerCase()}`);
    const error = await create(obj).then(
      () => undefined,
      (e: { body?: string; message?: string }) => e,
    );
    expect(error, 'the API server accepted an invalid resource').toBeDefined();
    expect(statusMessage(error)).toContain(c.api);
  });

  it('accepts the schedules only the operator (and the embedded CLI) can find wrong', async () => {
    for (const [i, c] of OPERATOR_INVALID_SYNCS.entries()) {
      await create(objectFor('Sync', `operator-invalid-${i}`, c.spec(VALID_SPECS.Sync)));
    }
  });

  it('rejects an unknown field under strict field validation', async () => {
    const spec = { ...VALID_SPECS.Source, postgres: { ...VALID_SPECS.Source['postgres'], passwrd: 'x' } };
    const error = await create(objectFor('Source', 'typo', spec)).then(
      () => undefined,
      (e: { body?: string }) => e,
    );
    expect(statusMessage(error)).toContain('unknown field "spec.postgres.passwrd"');
  });

  it('kubectl get syncs shows the printer columns', async () => {
    await create(objectFor('Sync', 'printed', VALID_SPECS.Sync));
    // What the operator writes after a run, written here through the status subresource by hand.
    const status = {
      schedule: 'every 15m',
      lastRun: {
        id: 'r1',
        result: 'Succeeded',
        counts: { queried: 10, added: 3, changed: 2, removed: 0, delivered: 5, failed: 0, skipped: 0 },
      },
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Succeeded',
          message: 'ok',
          lastTransitionTime: new Date().toISOString(),
        },
      ],
    };
    await kubectl(
      'patch',
      'sync',
      'printed',
      '-n',
      NAMESPACE,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status }),
    );
    const out = await kubectl('get', 'syncs', 'printed', '-n', NAMESPACE);
    const [header, row] = out.trim().split('\n');
    expect(header?.split(/\s{2,}/)).toEqual([
      'NAME',
      'MODEL',
      'DESTINATION',
      'MODE',
      'SCHEDULE',
      'LAST RESULT',
      'ROWS',
      'READY',
      'AGE',
    ]);
    expect(row?.split(/\s{2,}/).slice(0, 8)).toEqual([
      'printed',
      'customers',
      'crm',
      'upsert',
      'every 15m',
      'Succeeded',
      '5',
      'True',
    ]);
    const wide = await kubectl('get', 'sources', '-n', NAMESPACE);
    expect(wide.split('\n')[0]?.split(/\s{2,}/)).toEqual(['NAME', 'TYPE', 'READY', 'AGE']);
  });

  it('kubectl get seq shows the steps, the last result and Ready', async () => {
    await create(objectFor('Sequence', 'printed', VALID_SPECS.Sequence));
    const status = {
      order: 'accounts, contacts',
      lastRun: { id: 'printed-m-1', startedAt: new Date().toISOString(), result: 'Failed', steps: [] },
      conditions: [
        {
          type: 'Ready',
          status: 'False',
          reason: 'SourceQueryFailed',
          message: 'step 1 of 2 (accounts) failed',
          lastTransitionTime: new Date().toISOString(),
        },
      ],
    };
    await kubectl(
      ...['patch', 'sequence', 'printed', '-n', NAMESPACE, '--subresource=status', '--type=merge'],
      ...['-p', JSON.stringify({ status })],
    );
    const [header, row] = (await kubectl('get', 'seq', 'printed', '-n', NAMESPACE)).trim().split('\n');
    expect(header?.split(/\s{2,}/)).toEqual(['NAME', 'STEPS', 'LAST RESULT', 'READY', 'AGE']);
    expect(row?.split(/\s{2,}/).slice(0, 4)).toEqual(['printed', 'accounts, contacts', 'Failed', 'False']);
  });
});
