// The hostKey pin as OpenSSH's own tools print keys: the fingerprint computed here must be the one
// ssh-keygen -lf prints, for every key type, and the type a pin names restricts the algorithms offered.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isSynclineError } from '../../core/errors.ts';
import { parseHostKey } from './host-key.ts';

const dir = mkdtempSync(join(tmpdir(), 'syncline-host-key-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let keys = 0;

function keygen(type: string, bits?: number): { line: string; printed: string } {
  keys += 1;
  const file = join(dir, `key-${keys}`);
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    type,
    ...(bits ? ['-b', String(bits)] : []),
    '-N',
    '',
    '-C',
    'c',
    '-f',
    file,
  ]);
  const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], {
    encoding: 'utf8',
  }).trim();
  return { line: readFileSync(`${file}.pub`, 'utf8').trim(), printed };
}

describe('hostKey pins', () => {
  it.each([
    ['ed25519', undefined, 'ssh-ed25519', ['ssh-ed25519']],
    ['ecdsa', 384, 'ecdsa-sha2-nistp384', ['ecdsa-sha2-nistp384']],
    ['rsa', 2048, 'ssh-rsa', ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']],
  ] as const)(
    '%s: the key line and the ssh-keygen -lf line give its fingerprint and type',
    (type, bits, keyType, algorithms) => {
      const { line, printed } = keygen(type, bits);
      const fingerprint = /SHA256:\S+/.exec(printed)?.[0];
      expect(parseHostKey(line)).toEqual({ fingerprint, keyType, algorithms });
      expect(parseHostKey(printed)).toEqual({ fingerprint, keyType, algorithms });
      expect(parseHostKey(fingerprint ?? '')).toEqual({
        fingerprint,
        keyType: undefined,
        algorithms: undefined,
      });
    },
  );

  it('refuses a key line whose type is not its key, and anything else', () => {
    const { line } = keygen('ed25519', undefined);
    for (const pin of [line.replace('ssh-ed25519', 'ssh-rsa'), 'MD5:16:27:ac', 'yes']) {
      let error: unknown;
      try {
        parseHostKey(pin);
      } catch (e) {
        error = e;
      }
      expect(isSynclineError(error) && error.reason, pin).toBe('InvalidSource');
    }
  });
});
