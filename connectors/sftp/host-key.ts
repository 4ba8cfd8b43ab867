// The server's host key, pinned in the resource: a public key line (as in known_hosts or a .pub file) or
// its SHA256 fingerprint as `ssh-keygen -lf` prints it. Checked during the key exchange, before any
// credential is sent.
import { createHash } from 'node:crypto';
import type { ServerHostKeyAlgorithm } from 'ssh2';
import { SynclineError } from '../../core/errors.ts';

export interface HostKeyPin {
  /** `SHA256:` and the unpadded base64 of the key's SHA-256, as OpenSSH prints it. */
  fingerprint: string;
  /** The key type when the pin says it (a key line's type, or the `(ED25519)` of an ssh-keygen line). */
  keyType?: string;
  /** The host key algorithms to offer, so that the server presents the pinned key and not another of its keys. */
  algorithms?: ServerHostKeyAlgorithm[];
}

const RSA_ALGORITHMS: ServerHostKeyAlgorithm[] = ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];

function algorithmsOf(keyType: string): ServerHostKeyAlgorithm[] | undefined {
  if (keyType === 'ssh-rsa') return RSA_ALGORITHMS;
  if (/^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521))$/.test(keyType))
    return [keyType as ServerHostKeyAlgorithm];
  return undefined;
}

/** The fingerprint OpenSSH prints for a public key blob (the SSH wire form). */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named at the start of a public key blob (a length-prefixed string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString('latin1');
}

/** An ssh-keygen -lf type, e.g. `(ECDSA)` of a 256-bit key, as the key type it names. */
function keygenType(type: string, bits: number | undefined): string | undefined {
  switch (type) {
    case 'ED25519':
      return 'ssh-ed25519';
    case 'RSA':
      return 'ssh-rsa';
    case 'ECDSA':
      return bits === undefined ? undefined : `ecdsa-sha2-nistp${bits}`;
    default:
      return undefined;
  }
}

/** Parse hostKey; an unparseable pin is refused (the CRD's pattern refuses most of them already). */
export function parseHostKey(text: string): HostKeyPin {
  const line = text.trim();
  const keyLine = /^([a-z0-9@.-]+) ([A-Za-z0-9+/]+={0,3})(\s.*)?$/.exec(line);
  if (keyLine && !line.startsWith('SHA256:')) {
    const blob = Buffer.from(keyLine[2] ?? '', 'base64');
    const keyType = keyTypeOf(blob);
    if (keyType !== keyLine[1]) {
      throw new SynclineError(
        'InvalidSource',
        `hostKey is a public key line of type ${keyLine[1]} whose key says ${keyType}: copy the line from the server's .pub file or ssh-keyscan`,
      );
    }
    return { fingerprint: fingerprintOf(blob), keyType, algorithms: algorithmsOf(keyType) };
  }
  const printed =
    /^(?:(\d+) )?(SHA256:[A-Za-z0-9+/]{43})(?:\s.*?)?(?:\((ED25519|ECDSA|RSA|DSA)[^)]*\))?$/.exec(line);
  if (printed) {
    const keyType = printed[3]
      ? keygenType(printed[3], printed[1] ? Number(printed[1]) : undefined)
      : undefined;
    return {
      fingerprint: printed[2] ?? '',
      keyType,
      algorithms: keyType ? algorithmsOf(keyType) : undefined,
    };
  }
  throw new SynclineError(
    'InvalidSource',
    'hostKey must be the server\'s public key line ("ssh-ed25519 AAAA...") or its fingerprint as ssh-keygen -lf prints it ("SHA256:...")',
  );
}

/** What the server presented, when it was not the pinned key. */
export interface HostKeySeen {
  fingerprint: string;
  keyType: string;
}

/** A verifier for ssh2's hostVerifier: records what a mismatching server presented. */
export function hostVerifier(pin: HostKeyPin): {
  verify: (key: Buffer) => boolean;
  mismatch(): HostKeySeen | undefined;
} {
  let seen: HostKeySeen | undefined;
  return {
    verify(key: Buffer) {
      const fingerprint = fingerprintOf(key);
      if (fingerprint === pin.fingerprint) return true;
      seen = { fingerprint, keyType: keyTypeOf(key) };
      return false;
    },
    mismatch: () => seen,
  };
}

/** The refusal of a server whose host key is not the pinned one; nothing was sent to it. */
export function hostKeyMismatch(where: string, pin: HostKeyPin, seen: HostKeySeen): SynclineError {
  const pinned = pin.keyType ? `${pin.fingerprint} (${pin.keyType})` : pin.fingerprint;
  const hint = pin.keyType
    ? ''
    : '. The pin does not say its key type, so the server showed the key it prefers: if you pinned another of its keys, pin its public key line or the whole ssh-keygen -lf line, which ends with the type, e.g. (ECDSA)';
  return new SynclineError(
    'SftpHostKeyMismatch',
    `the SSH server ${where} presented host key ${seen.fingerprint} (${seen.keyType}), not the pinned ${pinned}: ` +
      "no credential was sent. If the server's key was changed on purpose, pin the new one (ssh-keygen -lf on the server, " +
      `or ssh-keyscan -p PORT HOST | ssh-keygen -lf -); otherwise something else answers at that address${hint}`,
  );
}
