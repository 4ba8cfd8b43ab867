import type { Sync } from '../../crds/index.ts';
import type { AccessQuestion, ApiKube, ApiUser, PatchOutcome } from './kube.ts';

/** One RBAC allowance of the fake: a user may do a verb in a namespace (on one Sync, or any with no name). */
export interface Allowance {
  user: string;
  verb: string;
  namespace: string;
  name?: string;
  resource?: string;
}

/**
 * An in-memory ApiKube for the API's unit tests: Syncs with resourceVersions (a write with an old one is a
 * conflict), tokens that map to users, and an allow-list standing for RBAC. Counts the reviews it answers.
 */
export class FakeApiKube implements ApiKube {
  readonly syncs = new Map<string, Sync>();
  readonly tokens = new Map<string, ApiUser>();
  readonly allowances: Allowance[] = [];
  tokenReviews = 0;
  accessReviews = 0;
  patches = 0;
  /** Conflicts to answer before the next patch succeeds (a busy object). */
  conflictsToInject = 0;
  private version = 1;

  putSync(sync: Sync): Sync {
    const stored = structuredClone(sync);
    stored.metadata.namespace ??= 'default';
    stored.metadata.resourceVersion = String(this.version++);
    this.syncs.set(`${stored.metadata.namespace}/${stored.metadata.name}`, stored);
    return stored;
  }

  /** Changes a stored Sync (its status, as the operator would), bumping its resourceVersion. */
  update(namespace: string, name: string, change: (sync: Sync) => void): void {
    const sync = this.syncs.get(`${namespace}/${name}`);
    if (!sync) throw new Error(`no Sync ${namespace}/${name}`);
    change(sync);
    sync.metadata.resourceVersion = String(this.version++);
  }

  addUser(token: string, username: string, groups: string[] = ['system:authenticated']): ApiUser {
    const user = { username, groups };
    this.tokens.set(token, user);
    return user;
  }

  allow(allowance: Allowance): void {
    this.allowances.push(allowance);
  }

  async getSync(namespace: string, name: string): Promise<Sync | undefined> {
    const sync = this.syncs.get(`${namespace}/${name}`);
    return sync ? structuredClone(sync) : undefined;
  }

  async listSyncs(namespace?: string): Promise<Sync[]> {
    return [...this.syncs.values()]
      .filter((s) => namespace === undefined || s.metadata.namespace === namespace)
      .map((s) => structuredClone(s));
  }

  async patchSyncAnnotations(
    namespace: string,
    name: string,
    annotations: Record<string, string | null>,
    resourceVersion: string,
  ): Promise<PatchOutcome> {
    const sync = this.syncs.get(`${namespace}/${name}`);
    if (!sync) return 'gone';
    if (this.conflictsToInject > 0) {
      this.conflictsToInject--;
      sync.metadata.resourceVersion = String(this.version++);
      return 'conflict';
    }
    if (sync.metadata.resourceVersion !== resourceVersion) return 'conflict';
    const next = { ...sync.metadata.annotations };
    for (const [key, value] of Object.entries(annotations)) {
      if (value === null) delete next[key];
      else next[key] = value;
    }
    sync.metadata.annotations = next;
    sync.metadata.resourceVersion = String(this.version++);
    this.patches++;
    return 'patched';
  }

  async reviewToken(token: string): Promise<ApiUser | undefined> {
    this.tokenReviews++;
    return this.tokens.get(token);
  }

  async reviewAccess(user: ApiUser, question: AccessQuestion): Promise<boolean> {
    this.accessReviews++;
    return this.allowances.some(
      (a) =>
        a.user === user.username &&
        a.verb === question.verb &&
        a.namespace === question.namespace &&
        (a.resource ?? 'syncs') === (question.resource ?? 'syncs') &&
        (a.name === undefined || a.name === question.name),
    );
  }
}
