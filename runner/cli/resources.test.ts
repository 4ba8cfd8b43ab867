import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadResources } from './resources.ts';

const EXAMPLE = new URL('../../examples/sequence-accounts-then-contacts/', import.meta.url).pathname;
let dir: string | undefined;
afterEach(() => dir && rmSync(dir, { recursive: true, force: true }));

describe('a Sequence among the resources of a folder', () => {
  it('is checked and left to the operator: the Syncs it names are loaded to run', () => {
    const set = loadResources(EXAMPLE);
    expect([...set.syncs.keys()].sort()).toEqual([
      'default/accounts-to-salesforce',
      'default/contacts-to-salesforce',
    ]);
  });

  it('names a step whose Sync is not in the folder', () => {
    dir = mkdtempSync(join(tmpdir(), 'syncline-sequence-'));
    cpSync(EXAMPLE, dir, { recursive: true });
    const file = join(dir, 'resources.yaml');
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace('- sync: contacts-to-salesforce', '- sync: contacts'),
    );
    expect(() => loadResources(dir!)).toThrow(
      'Sequence "crm-load": spec.steps[1].sync: no Sync "contacts" in namespace default',
    );
  });
});
