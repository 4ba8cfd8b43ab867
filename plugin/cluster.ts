import { KubeConfig } from '@kubernetes/client-node';
import type { Destination, Model, SecretKeySelector, Source, Sync } from '../crds/index.ts';
import { kubeRequest, resourcePath } from '../operator/runtime/kubeapi.ts';
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
    if (response.status === 401) {
      throw new SynclineError(
        'Unauthorized',
        `the API server did not accept your credentials while ${what}: log in again (your token may have expired)`,
      );
    }
    if (response.status === 403) {
      throw new SynclineError(
        'Forbidden',
        `you may not ${what}: ${response.body?.message ?? 'forbidden'}. Ask for the syncline-view (read) or syncline-edit (trigger, resync) role in that namespace`,
      );
    }
    if (response.status >= 300) {
      throw new SynclineError(
        'KubeApiError',
        `${what} failed (HTTP ${response.status}): ${response.body?.message ?? 'no message'}`,
      );
    }
    return response.body;
  }

  async get<T>(plural: SynclinePlural, name: string, namespace = this.namespace): Promise<T> {
    const path = resourcePath({ group: GROUP, version: VERSION, plural, namespace }, name);
    const found = await this.call<T>(`get ${plural} in namespace ${namespace}`, 'GET', path);
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

  async annotate(
    plural: SynclinePlural,
    name: string,
    annotations: Record<string, string>,
    namespace = this.namespace,
  ): Promise<void> {
    await this.get(plural, name, namespace);
    const path = resourcePath({ group: GROUP, version: VERSION, plural, namespace }, name);
    await this.call(
      `patch ${plural} in namespace ${namespace}`,
      'PATCH',
      path,
      { metadata: { annotations } },
      'application/merge-patch+json',
    );
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

export interface SyncGraph {
  sync: Sync;
  model: Model;
  source: Source;
  destination: Destination;
}

/** A Sync and what it references, each read from the API. */
export async function readSyncGraph(cluster: PluginCluster, name: string): Promise<SyncGraph> {
  const sync = await cluster.get<Sync>('syncs', name);
  const model = await cluster.get<Model>('models', sync.spec.modelRef.name);
  const destination = await cluster.get<Destination>('destinations', sync.spec.destinationRef.name);
  const source = await cluster.get<Source>('sources', model.spec.sourceRef.name);
  return { sync, model, source, destination };
}
