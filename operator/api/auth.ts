import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { SynclineError } from '../../core/errors.ts';
import type { AccessQuestion, ApiKube, ApiUser } from './kube.ts';

/**
 * Authentication and authorisation by the cluster itself: a bearer token is whoever the API server's
 * TokenReview says it is (service-account tokens, OIDC, whatever the cluster's authenticator accepts),
 * and what that user may do is what a SubjectAccessReview answers, so RBAC decides. Answers are cached
 * briefly (keyed by a hash of the token, never the token) so a polling caller costs one review per
 * CACHE_TTL_MS, and a revoked token or role stops working within that time.
 */
export const CACHE_TTL_MS = 10_000;

export interface AuthOptions {
  /** Audiences a token must be for (TokenReview spec.audiences); empty: the API server's own. */
  audiences?: string[];
  ttlMs?: number;
}

export class Authorizer {
  private readonly users: LRUCache<string, { user: ApiUser }>;
  private readonly answers: LRUCache<string, { allowed: boolean }>;
  private readonly kube: ApiKube;
  private readonly audiences: string[];

  constructor(kube: ApiKube, options: AuthOptions = {}) {
    this.kube = kube;
    this.audiences = options.audiences ?? [];
    const ttl = options.ttlMs ?? CACHE_TTL_MS;
    this.users = new LRUCache({ max: 10_000, ttl });
    this.answers = new LRUCache({ max: 50_000, ttl });
  }

  /** The user of an Authorization header; throws Unauthenticated for none, a malformed one or a rejected token. */
  async authenticate(header: string | undefined): Promise<ApiUser> {
    const token = bearerToken(header);
    const id = tokenId(token);
    const cached = this.users.get(id);
    if (cached) return cached.user;
    const user = await this.kube.reviewToken(token, this.audiences);
    if (!user)
      throw new SynclineError(
        'Unauthenticated',
        'the API server did not accept the bearer token (expired, revoked, or of another cluster); get a new one, e.g. kubectl create token',
      );
    this.users.set(id, { user });
    return user;
  }

  async allowed(user: ApiUser, question: AccessQuestion): Promise<boolean> {
    const key = JSON.stringify([user.username, user.uid, user.groups, question]);
    const cached = this.answers.get(key);
    if (cached) return cached.allowed;
    const allowed = await this.kube.reviewAccess(user, question);
    this.answers.set(key, { allowed });
    return allowed;
  }

  /** Throws Forbidden unless the user may do the verb, naming what to grant. */
  async authorize(user: ApiUser, question: AccessQuestion): Promise<void> {
    if (await this.allowed(user, question)) return;
    const what = `${question.resource ?? 'syncs'}${question.name ? ` "${question.name}"` : ''}`;
    throw new SynclineError(
      'Forbidden',
      `${user.username} may not ${question.verb} ${what}.syncline.io in namespace ${question.namespace}; grant the verb with a Role (the chart's syncline-trigger ClusterRole has it)`,
    );
  }
}

/** The token of `Authorization: Bearer <token>`. */
export function bearerToken(header: string | undefined): string {
  const match = /^Bearer[ \t]+([!-~]+)[ \t]*$/i.exec(header ?? '');
  if (!match?.[1])
    throw new SynclineError(
      'Unauthenticated',
      header
        ? 'the Authorization header is not "Bearer <token>"'
        : 'no bearer token: send Authorization: Bearer <a Kubernetes token>',
    );
  return match[1];
}

/** What stands for a token in caches and rate limits: a hash, so no token is kept in memory longer than a request. */
export function tokenId(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
