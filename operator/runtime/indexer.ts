/** What an index reads of an object: its namespace and name. */
export interface IndexedObject {
  metadata?: { name?: string; namespace?: string };
}

/** The informer events an index follows (an `Informer`, or several read as one). */
export interface IndexSource<T> {
  onAdd(fn: (obj: T) => void): void;
  onUpdate(fn: (oldObj: T, obj: T) => void): void;
  onDelete(fn: (obj: T) => void): void;
}

/**
 * Objects by keys derived from each (client-go's `Indexer`), kept current from informer events so that a
 * look-up ("the Syncs that read Model m") costs the size of its answer, not a scan of every object. An
 * object may have several keys (a Sync's `dependsOn` names), or none. Keys are the caller's: include the
 * namespace in them when look-ups are per namespace.
 */
export class Indexer<T extends IndexedObject> {
  private readonly byKey = new Map<string, Map<string, T>>();
  /** The keys each object was filed under, so an update or delete removes exactly those. */
  private readonly keysById = new Map<string, readonly string[]>();
  private readonly keysOf: (obj: T) => readonly string[];

  constructor(keysOf: (obj: T) => string | readonly string[] | undefined) {
    this.keysOf = (obj) => {
      const keys = keysOf(obj);
      return keys === undefined ? [] : typeof keys === 'string' ? [keys] : [...new Set(keys)];
    };
  }

  private static id(obj: IndexedObject): string {
    return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
  }

  /** Follows an informer: adds, updates and deletes (a relist's too) keep the index equal to its cache. */
  follow(source: IndexSource<T>): this {
    source.onAdd((obj) => this.put(obj));
    source.onUpdate((_oldObj, obj) => this.put(obj));
    source.onDelete((obj) => this.remove(obj));
    return this;
  }

  /** Files an object (new, or a newer version of one already filed) under its current keys. */
  put(obj: T): void {
    const id = Indexer.id(obj);
    this.unfile(id);
    const keys = this.keysOf(obj);
    if (keys.length === 0) return;
    for (const key of keys) {
      let bucket = this.byKey.get(key);
      if (!bucket) this.byKey.set(key, (bucket = new Map()));
      bucket.set(id, obj);
    }
    this.keysById.set(id, keys);
  }

  remove(obj: T): void {
    this.unfile(Indexer.id(obj));
  }

  private unfile(id: string): void {
    for (const key of this.keysById.get(id) ?? []) {
      const bucket = this.byKey.get(key);
      bucket?.delete(id);
      if (bucket?.size === 0) this.byKey.delete(key);
    }
    this.keysById.delete(id);
  }

  /** The objects filed under a key (the latest version of each). */
  get(key: string): T[] {
    return [...(this.byKey.get(key)?.values() ?? [])];
  }

  /** How many objects are filed (for tests and metrics). */
  get size(): number {
    return this.keysById.size;
  }
}
