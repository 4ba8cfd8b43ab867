// Requests shaped to an API's limits, and bad rows isolated. An API that rejects a whole batch because of
// one bad row (HubSpot answers 400 for the batch when one input has an invalid value) gets the batch split in
// halves until each bad row is alone; the good rows are delivered and each bad row gets the API's message.
// Results come back by key: responses need not be in input order.

/** Items in groups of at most `maxItems` and (when sized) `maxBytes` each; an item larger than maxBytes goes alone. */
export function chunk<T>(
  items: readonly T[],
  limits: { maxItems: number; maxBytes?: number; size?: (item: T) => number },
): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = limits.maxBytes !== undefined && limits.size ? limits.size(item) : 0;
    const full =
      group.length >= limits.maxItems ||
      (limits.maxBytes !== undefined && group.length > 0 && bytes + size > limits.maxBytes);
    if (full) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(item);
    bytes += size;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/** UTF-8 bytes of an item's JSON, for chunk's maxBytes (plus a comma). */
export const jsonBytes = (item: unknown): number => Buffer.byteLength(JSON.stringify(item)) + 1;

/** One item's failure. */
export interface ItemFailure {
  ok: false;
  reason: string;
  retryable: boolean;
  retryAfterMs?: number;
}

/**
 * What one request of a part answered: per-item outcomes (a partial success: one per item of the part, in
 * the part's order), or the whole part refused. `splittable` says whether one bad item may be the cause
 * (a 400 of validation, not a 401 or a 429): only then is the part split.
 */
export type PartOutcome<R> =
  | { kind: 'items'; outcomes: (R | ItemFailure)[] }
  | { kind: 'rejected'; failure: ItemFailure; splittable: boolean };

export interface IsolateOptions {
  /** Stop splitting when the run is asked to stop: what is left answers this failure. */
  signal?: AbortSignal;
  stopped?: ItemFailure;
}

/**
 * Send `items` as one request; when the API refuses the whole request for a reason one item may cause,
 * bisect and send each half, down to single items, which then carry the API's message. At most
 * 2·n − 1 requests for n items, log2(n) + 1 when one item is bad.
 */
export async function sendIsolating<T, R>(
  items: readonly T[],
  send: (part: readonly T[]) => Promise<PartOutcome<R>>,
  options: IsolateOptions = {},
): Promise<(R | ItemFailure)[]> {
  if (items.length === 0) return [];
  if (options.signal?.aborted) {
    const stopped = options.stopped ?? {
      ok: false,
      reason: 'not sent: the run was stopped',
      retryable: true,
    };
    return items.map(() => stopped);
  }
  const outcome = await send(items);
  if (outcome.kind === 'items') {
    if (outcome.outcomes.length !== items.length)
      throw new Error(`sendIsolating: ${outcome.outcomes.length} outcomes for ${items.length} items`);
    return outcome.outcomes;
  }
  if (!outcome.splittable || items.length === 1) return items.map(() => outcome.failure);
  const middle = Math.ceil(items.length / 2);
  const left = await sendIsolating(items.slice(0, middle), send, options);
  const right = await sendIsolating(items.slice(middle), send, options);
  return [...left, ...right];
}

/**
 * Results matched back to items by key: `resultKeys` lists the keys each result answers (an id, a unique
 * value, a trace id); an item gets the first result that names one of its keys, or `missing`.
 */
export function byKey<R>(
  itemKeys: readonly (readonly string[])[],
  results: readonly R[],
  resultKeys: (result: R) => readonly (string | undefined)[],
  missing: (index: number) => R | ItemFailure,
  normalize: (key: string) => string = (key) => key,
): (R | ItemFailure)[] {
  const index = new Map<string, R>();
  for (const result of results) {
    for (const key of resultKeys(result)) {
      if (key === undefined || key === '') continue;
      const k = normalize(key);
      if (!index.has(k)) index.set(k, result);
    }
  }
  return itemKeys.map((keys, i) => {
    for (const key of keys) {
      if (key === '') continue;
      const found = index.get(normalize(key));
      if (found !== undefined) return found;
    }
    return missing(i);
  });
}

/**
 * One result per change of `batch`, in its order: each change prepared (or answered at once, when it
 * cannot be sent), then the prepared ones delivered per kind of operation.
 */
export async function writeByOperation<
  P extends { index: number; change: { operation: string } },
  O extends { ok: boolean },
>(
  batch: readonly P['change'][],
  prepare: (change: P['change'], index: number) => P | O,
  deliver: (operation: string, items: P[]) => Promise<O[]>,
): Promise<O[]> {
  const results: O[] = new Array<O>(batch.length);
  const groups = new Map<string, P[]>();
  batch.forEach((change, index) => {
    const prepared = prepare(change, index);
    if ('ok' in prepared) {
      results[index] = prepared;
      return;
    }
    const list = groups.get(change.operation) ?? [];
    list.push(prepared);
    groups.set(change.operation, list);
  });
  for (const [operation, items] of groups) {
    const outcomes = await deliver(operation, items);
    items.forEach((item, i) => (results[item.index] = outcomes[i] as O));
  }
  return results;
}
