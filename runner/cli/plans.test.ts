import { describe, expect, it } from 'vitest';
import type { Sync } from '../../crds/index.ts';
import { dependencyOrder } from './plans.ts';

const sync = (name: string, spec: Partial<Sync['spec']> = {}) => ({
  object: { metadata: { name, namespace: 'team' }, spec } as unknown as Sync,
});

describe('dependencyOrder', () => {
  it('runs a Sync after the Syncs of its afterSyncs trigger, as after those of dependsOn', () => {
    const syncs = new Map([
      [
        'team/a',
        sync('a', { schedule: { triggers: [{ afterSyncs: { names: ['c'], onFailure: 'continue' } }] } }),
      ],
      ['team/b', sync('b', { dependsOn: [{ name: 'a' }] })],
      ['team/c', sync('c')],
    ]);
    expect(dependencyOrder(syncs)).toEqual(['team/c', 'team/a', 'team/b']);
  });

  it('refuses a cycle through afterSyncs', () => {
    const syncs = new Map([
      [
        'team/a',
        sync('a', { schedule: { triggers: [{ afterSyncs: { names: ['b'], onFailure: 'stop' } }] } }),
      ],
      ['team/b', sync('b', { dependsOn: [{ name: 'a' }] })],
    ]);
    expect(() => dependencyOrder(syncs)).toThrowError(expect.objectContaining({ reason: 'DependencyCycle' }));
  });
});
