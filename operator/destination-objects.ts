// What a Destination's connection check discovered (its objects and fields, `core/diffstore`'s
// `<namespace>/_destinations/<name>/objects.json`), read by the operator to validate Syncs' mappings
// before any run. Read once per Destination and check: the cache is keyed by the Destination's
// `status.lastCheckedAt`, so a new check (which rewrote the file first) brings a new read.
import type { Destination } from '../crds/index.ts';
import type { DestinationObjects } from '../core/diffstore/index.ts';
import { describeError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { ReconcileContext } from './context.ts';

const READ_TIMEOUT_MS = 10_000;

export type ReadDestinationObjects = (
  namespace: string,
  destination: string,
) => Promise<DestinationObjects | undefined>;

/** The discovered objects of each Destination, read again when its last check changes. */
export class DestinationObjectsCache {
  private readonly entries = new Map<
    string,
    { checkedAt: string; value: Promise<DestinationObjects | undefined> }
  >();
  private readonly read: ReadDestinationObjects;
  private readonly log: Logger | undefined;

  constructor(read: ReadDestinationObjects, log?: Logger) {
    this.read = read;
    this.log = log;
  }

  /**
   * What the Destination's last check discovered; undefined before its first check, for a connector
   * without `discover`, and when the store cannot be read (not cached: the next reconcile reads again).
   */
  get(destination: Destination): Promise<DestinationObjects | undefined> {
    const namespace = destination.metadata.namespace ?? 'default';
    const name = destination.metadata.name;
    const checkedAt = destination.status?.lastCheckedAt;
    const key = `${namespace}/${name}`;
    if (!checkedAt) {
      this.entries.delete(key);
      return Promise.resolve(undefined);
    }
    const found = this.entries.get(key);
    if (found?.checkedAt === checkedAt) return found.value;
    const value = this.read(namespace, name).catch((error: unknown) => {
      this.log?.warn(
        { destination: key, err: describeError(error).message },
        "could not read the Destination's discovered objects from the diff store",
      );
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
      return undefined;
    });
    this.entries.set(key, { checkedAt, value });
    return value;
  }

  /** Forgets a Destination (deleted). */
  forget(namespace: string, name: string): void {
    this.entries.delete(`${namespace}/${name}`);
  }
}

/** Reads the discovered objects from the operator's diff store (its own credential, the namespace's prefix). */
export function diffStoreObjectsReader(
  ctx: Pick<ReconcileContext, 'config' | 'secrets'>,
): ReadDestinationObjects {
  return async (namespace, destination) => {
    const [{ openBlobStore }, { DiffStore }] = await Promise.all([
      import('../core/storage/index.ts'),
      import('../core/diffstore/index.ts'),
    ]);
    const blob = openBlobStore(ctx.config.diffStore.url, {
      ...(ctx.config.diffStore.s3 ? { s3: ctx.config.diffStore.s3 } : {}),
      ...(ctx.config.diffStore.gcs ? { gcs: ctx.config.diffStore.gcs } : {}),
      secrets: ctx.secrets,
    });
    return DiffStore.readDestinationObjects(blob, namespace, destination, {
      signal: AbortSignal.timeout(READ_TIMEOUT_MS),
    });
  };
}

/** Edit distance (Damerau-Levenshtein, optimal string alignment: a swap of two letters is one edit), case-insensitive. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  const d: number[][] = Array.from({ length: s.length + 1 }, (_, i) =>
    Array.from({ length: t.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? 0;
  for (let i = 1; i <= s.length; i++) {
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1])
        best = Math.min(best, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = best;
    }
  }
  return at(s.length, t.length);
}

/**
 * The names closest to `name` (at most `limit`): within an edit distance of a third of its length (at
 * least 2), or containing it or contained in it, nearest first.
 */
export function closestNames(name: string, candidates: readonly string[], limit = 3): string[] {
  const lower = name.toLowerCase();
  const threshold = Math.max(2, Math.floor(name.length / 3));
  return candidates
    .map((candidate) => {
      const other = candidate.toLowerCase();
      const distance = editDistance(name, candidate);
      const contains = lower.length >= 3 && (other.includes(lower) || lower.includes(other));
      return { candidate, distance, near: distance <= threshold || contains };
    })
    .filter((c) => c.near && c.candidate !== name)
    .sort((a, b) => a.distance - b.distance || a.candidate.localeCompare(b.candidate))
    .slice(0, limit)
    .map((c) => c.candidate);
}
