import type { Sync } from '../../crds/index.ts';
import { GROUP, VERSION } from '../../crds/index.ts';
import type { KubeAccess } from '../runtime/kubeconfig.ts';
import { apiError, kubeRequest, resourcePath } from '../runtime/kubeapi.ts';

/** Who a bearer token belongs to, as the API server's TokenReview says. */
export interface ApiUser {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

/** What a SubjectAccessReview asks: may `user` do `verb` on syncs (or a subresource) in a namespace. */
export interface AccessQuestion {
  verb: string;
  namespace: string;
  name?: string;
  resource?: string;
}

export type PatchOutcome = 'patched' | 'conflict' | 'gone';

/**
 * The API-server calls the run API makes. It reads live from the API server, not from the informer
 * caches: every replica serves the API, and only the leader has caches.
 */
export interface ApiKube {
  getSync(namespace: string, name: string): Promise<Sync | undefined>;
  /** Syncs of one namespace, or of every namespace the operator watches when namespace is undefined. */
  listSyncs(namespace?: string): Promise<Sync[]>;
  /** Sets (string) or removes (null) annotations, failing with 'conflict' if the Sync changed since resourceVersion. */
  patchSyncAnnotations(
    namespace: string,
    name: string,
    annotations: Record<string, string | null>,
    resourceVersion: string,
  ): Promise<PatchOutcome>;
  /** The user of a token, or undefined when the API server does not accept it. */
  reviewToken(token: string, audiences?: string[]): Promise<ApiUser | undefined>;
  reviewAccess(user: ApiUser, question: AccessQuestion): Promise<boolean>;
}

const API_TIMEOUT_MS = 10_000;

/** ApiKube on the API server, with the operator's own credentials. */
export class KubeApiClient implements ApiKube {
  private readonly kubeConfig: KubeAccess;
  /** The namespaces the operator watches; empty for all. */
  private readonly namespaces: string[];

  constructor(kubeConfig: KubeAccess, namespaces: string[]) {
    this.kubeConfig = kubeConfig;
    this.namespaces = namespaces;
  }

  async getSync(namespace: string, name: string): Promise<Sync | undefined> {
    const path = resourcePath({ group: GROUP, version: VERSION, plural: 'syncs', namespace }, name);
    const response = await kubeRequest<Sync>(this.kubeConfig, {
      method: 'GET',
      path,
      timeoutMs: API_TIMEOUT_MS,
    });
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw apiError(`get Sync ${namespace}/${name}`, response);
    return response.body;
  }

  async listSyncs(namespace?: string): Promise<Sync[]> {
    const scopes =
      namespace !== undefined ? [namespace] : this.namespaces.length ? this.namespaces : [undefined];
    const lists = await Promise.all(scopes.map((scope) => this.listIn(scope)));
    return lists.flat();
  }

  private async listIn(namespace: string | undefined): Promise<Sync[]> {
    const path = resourcePath({
      group: GROUP,
      version: VERSION,
      plural: 'syncs',
      ...(namespace ? { namespace } : {}),
    });
    const response = await kubeRequest<{ items?: Sync[] }>(this.kubeConfig, {
      method: 'GET',
      path,
      timeoutMs: API_TIMEOUT_MS,
    });
    if (response.status !== 200) throw apiError(`list Syncs${namespace ? ` in ${namespace}` : ''}`, response);
    return response.body.items ?? [];
  }

  async patchSyncAnnotations(
    namespace: string,
    name: string,
    annotations: Record<string, string | null>,
    resourceVersion: string,
  ): Promise<PatchOutcome> {
    const path = resourcePath({ group: GROUP, version: VERSION, plural: 'syncs', namespace }, name);
    const response = await kubeRequest(this.kubeConfig, {
      method: 'PATCH',
      path,
      contentType: 'application/merge-patch+json',
      body: { metadata: { resourceVersion, annotations } },
      timeoutMs: API_TIMEOUT_MS,
    });
    if (response.status === 200) return 'patched';
    if (response.status === 409) return 'conflict';
    if (response.status === 404) return 'gone';
    throw apiError(`annotate Sync ${namespace}/${name}`, response);
  }

  async reviewToken(token: string, audiences?: string[]): Promise<ApiUser | undefined> {
    const response = await kubeRequest<{ status?: TokenReviewStatus }>(this.kubeConfig, {
      method: 'POST',
      path: '/apis/authentication.k8s.io/v1/tokenreviews',
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, ...(audiences?.length ? { audiences } : {}) },
      },
      timeoutMs: API_TIMEOUT_MS,
    });
    // The token is never part of an error: apiError carries only the server's status message.
    if (response.status !== 201 && response.status !== 200) throw apiError('TokenReview', response);
    const status = response.body.status;
    if (!status?.authenticated || !status.user?.username) return undefined;
    return {
      username: status.user.username,
      groups: status.user.groups ?? [],
      ...(status.user.uid ? { uid: status.user.uid } : {}),
      ...(status.user.extra ? { extra: status.user.extra } : {}),
    };
  }

  async reviewAccess(user: ApiUser, question: AccessQuestion): Promise<boolean> {
    const response = await kubeRequest<{ status?: { allowed?: boolean } }>(this.kubeConfig, {
      method: 'POST',
      path: '/apis/authorization.k8s.io/v1/subjectaccessreviews',
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: user.username,
          groups: user.groups,
          ...(user.uid ? { uid: user.uid } : {}),
          ...(user.extra ? { extra: user.extra } : {}),
          resourceAttributes: {
            group: GROUP,
            resource: question.resource ?? 'syncs',
            verb: question.verb,
            namespace: question.namespace,
            ...(question.name ? { name: question.name } : {}),
          },
        },
      },
      timeoutMs: API_TIMEOUT_MS,
    });
    if (response.status !== 201 && response.status !== 200) throw apiError('SubjectAccessReview', response);
    return response.body.status?.allowed === true;
  }
}

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}
