import { describe, expect, it } from 'vitest';
import { Indexer, type IndexSource } from './indexer.ts';

interface Obj {
  metadata: { namespace: string; name: string };
  refs: string[];
}

const obj = (name: string, ...refs: string[]): Obj => ({ metadata: { namespace: 'ns', name }, refs });

/** An informer's event API, driven by the test. */
function fakeInformer() {
  const handlers = {
    add: [] as ((o: Obj) => void)[],
    update: [] as ((a: Obj, b: Obj) => void)[],
    delete: [] as ((o: Obj) => void)[],
  };
  const source: IndexSource<Obj> = {
    onAdd: (fn) => handlers.add.push(fn),
    onUpdate: (fn) => handlers.update.push(fn),
    onDelete: (fn) => handlers.delete.push(fn),
  };
  return {
    source,
    add: (o: Obj) => handlers.add.forEach((fn) => fn(o)),
    update: (a: Obj, b: Obj) => handlers.update.forEach((fn) => fn(a, b)),
    delete: (o: Obj) => handlers.delete.forEach((fn) => fn(o)),
  };
}

const names = (objs: Obj[]) => objs.map((o) => o.metadata.name).sort();

describe('Indexer', () => {
  it('files each object under every key it has, and none when it has none', () => {
    const index = new Indexer<Obj>((o) => o.refs.map((r) => `ns/${r}`));
    index.put(obj('a', 'x', 'y'));
    index.put(obj('b', 'y'));
    index.put(obj('c'));
    expect(names(index.get('ns/x'))).toEqual(['a']);
    expect(names(index.get('ns/y'))).toEqual(['a', 'b']);
    expect(index.get('ns/z')).toEqual([]);
    expect(index.size).toBe(2);
  });

  it('moves an object whose keys changed, and drops a deleted one, from informer events', () => {
    const informer = fakeInformer();
    const index = new Indexer<Obj>((o) => o.refs.map((r) => `ns/${r}`)).follow(informer.source);
    const before = obj('a', 'x', 'y');
    informer.add(before);
    const after = obj('a', 'y', 'z');
    informer.update(before, after);
    expect(index.get('ns/x')).toEqual([]);
    expect(index.get('ns/y')).toEqual([after]);
    expect(index.get('ns/z')).toEqual([after]);
    informer.delete(after);
    expect(index.get('ns/y')).toEqual([]);
    expect(index.size).toBe(0);
  });

  it('removes what an object was filed under even when the deleted copy says otherwise', () => {
    // A delete (a relist's tombstone) may carry an older copy than the one filed.
    const index = new Indexer<Obj>((o) => o.refs.map((r) => `ns/${r}`));
    index.put(obj('a', 'x'));
    index.put(obj('a', 'y'));
    index.remove(obj('a', 'x'));
    expect(index.get('ns/x')).toEqual([]);
    expect(index.get('ns/y')).toEqual([]);
  });

  it('takes a single key, and counts a repeated key once', () => {
    const index = new Indexer<Obj>((o) => (o.refs.length ? o.refs.map((r) => `ns/${r}`) : undefined));
    index.put(obj('a', 'x', 'x'));
    expect(index.get('ns/x')).toHaveLength(1);
    const single = new Indexer<Obj>((o) => o.refs[0]);
    single.put(obj('b', 'k'));
    expect(names(single.get('k'))).toEqual(['b']);
  });
});
