import { KubeConfig } from '@kubernetes/client-node';
import type { Destination, Model, SecretKeySelector, Source, Sync } from '../crds/index.ts';
import type { PatchOutcome } from '../operator/api/kube.ts';
import { kubeRequest, resourcePath, type KubeResponse } from '../operator/runtime/kubeapi.ts';
import { SynclineError, type Reason } from '../core/errors.ts';

export type SynclinePlural = 'sources' | 'models' | 'destinations' | 'syncs';
const GROUP = 'syncline.io';
const VERSION = 'v1alpha1';
const KIND_OF: Record<SynclinePlural, string> = {
  sources: 'Source',
  models: 'Model',
  destinations: 'Destination',
  syncs: 'Sync',
};
const NOT_FOUND: Record<SynclinePlural, Reason> = {
  sources: 'SourceNotFound',
  models: 'ModelNotFound',
  destinations: 'DestinationNotFound',
  syncs: 'SyncNotFound',
};

export interface ConnectionOptions {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
}

/** The user's cluster, through their kubeconfig, with errors that say what to do. */
export class PluginCluster {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;

  constructor(options: ConnectionOptions) {
    this.kubeConfig = new KubeConfig();
    try {
      if (options.kubeconfig) this.kubeConfig.loadFromFile(options.kubeconfig);
      else this.kubeConfig.loadFromDefault();
    } catch (error) {
      throw new SynclineError(
        'KubeConfigInvalid',
        `cannot read your kubeconfig: ${(error as Error).message}`,
      );
    }
    if (options.context) {
      if (!this.kubeConfig.getContextObject(options.context)) {
        throw new SynclineError(
          'ContextNotFound',
          `no context "${options.context}" in your kubeconfig; kubectl config get-contexts lists them`,
        );
      }
      this.kubeConfig.setCurrentContext(options.context);
    }
    if (!this.kubeConfig.getCurrentCluster()) {
      throw new SynclineError(
        'NoCluster',
        'your kubeconfig has no current cluster: set KUBECONFIG or pass --kubeconfig/--context',
      );
    }
    this.namespace =
      options.namespace ??
      this.kubeConfig.getContextObject(this.kubeConfig.getCurrentContext())?.namespace ??
      'default';
  }

  private async call<T>(
    what: string,
    method: 'GET' | 'PATCH',
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<T | undefined> {
    const response = await kubeRequest<T & { message?: string }>(this.kubeConfig, {
      method,
      path,
      ...(body === undefined ? {} : { body }),
      ...(contentType ? { contentType } : {}),
    });
    if (response.status === 404) return undefined;
    if (response.status >= 300) throw failure(what, response);
    return response.body;
  }

  /** The name of the kubeconfig's current user, which the run ledger records as who asked. */
  get caller(): string {
    return this.kubeConfig.getCurrentUser()?.name || 'kubectl';
  }

  /** An object, or undefined when there is none of that name. */
  async find<T>(plural: SynclinePlural, name: string, namespace = this.namespace): Promise<T | undefined> {
    const path = resourcePath({ group: GROUP, version: VERSION, plural, namespace }, name);
    return this.call<T>(`get ${plural} in namespace ${namespace}`, 'GET', path);
  }

  async get<T>(plural: SynclinePlural, name: string, namespace = this.namespace): Promise<T> {
    const found = await this.find<T>(plural, name, namespace);
    if (!found) {
      throw new SynclineError(
        NOT_FOUND[plural],
        `${KIND_OF[plural]} "${name}" not found in namespace "${namespace}" (kubectl get ${plural} -n ${namespace} lists them; -n picks another namespace)`,
      );
    }
    return found;
  }

  async list<T>(plural: SynclinePlural, namespace: string | undefined): Promise<T[]> {
    const path = resourcePath({
      group: GROUP,
      version: VERSION,
      plural,
      ...(namespace ? { namespace } : {}),
    });
    const where = namespace ? `in namespace ${namespace}` : 'in all namespaces';
    const body = await this.call<{ items: T[] }>(`list ${plural} ${where}`, 'GET', path);
    if (!body)
      throw new SynclineError(
        'CrdsNotInstalled',
        'the syncline.io resources are not installed in this cluster: install the Syncline Helm chart',
      );
    return body.items;
  }

  /**
   * Sets (string) or removes (null) a Sync's annotations in one merge patch conditioned on the
   * resourceVersion read: 'conflict' when the Sync changed since, 'gone' when it was deleted.
   */
  async patchSyncAnnotations(
    namespace: string,
    name: string,
    annotations: Record<string, string | null>,
    resourceVersion: string,
  ): Promise<PatchOutcome> {
    const path = resourcePath({ group: GROUP, version: VERSION, plural: 'syncs', namespace }, name);
    const response = await kubeRequest<{ message?: string }>(this.kubeConfig, {
      method: 'PATCH',
      path,
      body: { metadata: { resourceVersion, annotations } },
      contentType: 'application/merge-patch+json',
    });
    if (response.status === 409) return 'conflict';
    if (response.status === 404) return 'gone';
    if (response.status >= 300) throw failure(`patch syncs in namespace ${namespace}`, response);
    return 'patched';
  }

  /** A Secret key's value, or undefined when the Secret or key does not exist; a SynclineError when it may not be read. */
  async secretValue(ref: SecretKeySelector, namespace = this.namespace): Promise<string | undefined> {
    const path = resourcePath({ group: '', version: 'v1', plural: 'secrets', namespace }, ref.name);
    const secret = await this.call<{ data?: Record<string, string> }>(
      `read Secret ${ref.name} in namespace ${namespace}`,
      'GET',
      path,
    );
    const encoded = secret?.data?.[ref.key];
    return encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString('utf8');
  }

  /** The diff store URL of the Syncline operator the chart installed, from its Deployment's env. */
  async operatorDiffStoreUrl(): Promise<string | undefined> {
    const selector = encodeURIComponent(
      'app.kubernetes.io/name=syncline,app.kubernetes.io/component=operator',
    );
    const body = await this.call<{
      items: Array<{
        spec: {
          template: { spec: { containers: Array<{ env?: Array<{ name: string; value?: string }> }> } };
        };
      }>;
    }>(
      'list Deployments in all namespaces (to find the diff store)',
      'GET',
      `/apis/apps/v1/deployments?labelSelector=${selector}`,
    ).catch(() => undefined);
    for (const deployment of body?.items ?? []) {
      for (const container of deployment.spec.template.spec.containers) {
        const url = container.env?.find((e) => e.name === 'SYNCLINE_DIFF_STORE_URL')?.value;
        if (url) return url;
      }
    }
    return undefined;
  }
}

/** A SynclineError for an API answer that is not a success, saying what to do about it. */
function failure(what: string, response: KubeResponse<{ message?: string } | undefined>): SynclineError {
  if (response.status === 401) {
    return new SynclineError(
      'Unauthorized',
      `the API server did not accept your credentials while ${what}: log in again (your token may have expired)`,
    );
  }
  if (response.status === 403) {
    return new SynclineError(
      'Forbidden',
      `you may not ${what}: ${response.body?.message ?? 'forbidden'}. Ask for the syncline-view (read) or syncline-edit (trigger, resync) role in that namespace`,
    );
  }
  return new SynclineError(
    'KubeApiError',
    `${what} failed (HTTP ${response.status}): ${response.body?.message ?? 'no message'}`,
    { retryable: response.status === 429 || response.status >= 500 },
  );
}

export interface SyncGraph {
  sync: Sync;
  model: Model;
  source: Source;
  destination: Destination;
}

/** A Sync and what it references, each read from the API. */
export async function readSyncGraph(cluster: Pick<PluginCluster, 'get'>, name: string): Promise<SyncGraph> {
  const sync = await cluster.get<Sync>('syncs', name);
  const model = await cluster.get<Model>('models', sync.spec.modelRef.name);
  const destination = await cluster.get<Destination>('destinations', sync.spec.destinationRef.name);
  const source = await cluster.get<Source>('sources', model.spec.sourceRef.name);
  return { sync, model, source, destination };
}
