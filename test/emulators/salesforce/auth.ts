// OAuth 2.0 JWT bearer assertions: verifying one (RS256, node:crypto) and, for tests, making a key pair
// and signing one the way a connected app's client does.
import { createSign, createVerify, generateKeyPairSync, type KeyObject } from 'node:crypto';

export interface TestKeyPair {
  /** PKCS#8 PEM, what a connected app's client signs with. */
  privateKey: string;
  /** SPKI PEM, what the emulator verifies with (the connected app's certificate, in Salesforce). */
  publicKey: string;
}

/** A fresh 2048-bit RSA key pair for a test's connected app. */
export function generateTestKeyPair(): TestKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { privateKey, publicKey };
}

export interface JwtClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  [claim: string]: unknown;
}

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

/** A signed RS256 JWT (`{"alg":"RS256"}` header, as Salesforce's documentation builds it). */
export function signAssertion(claims: JwtClaims, privateKey: string | KeyObject): string {
  const input = `${base64url(JSON.stringify({ alg: 'RS256' }))}.${base64url(JSON.stringify(claims))}`;
  const signature = createSign('RSA-SHA256').update(input).sign(privateKey);
  return `${input}.${base64url(signature)}`;
}

export type Decoded =
  | { ok: true; header: Record<string, unknown>; claims: Record<string, unknown>; signatureValid: boolean }
  | { ok: false };

/** Decode a compact JWS and check its RS256 signature against the public key. */
export function decodeAssertion(assertion: string, publicKey: string | KeyObject): Decoded {
  const parts = assertion.split('.');
  if (parts.length !== 3) return { ok: false };
  const [h = '', c = '', s = ''] = parts;
  try {
    const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
    const claims = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (typeof header !== 'object' || header === null || typeof claims !== 'object' || claims === null)
      return { ok: false };
    const signatureValid =
      header.alg === 'RS256' &&
      createVerify('RSA-SHA256').update(`${h}.${c}`).verify(publicKey, Buffer.from(s, 'base64url'));
    return { ok: true, header, claims, signatureValid };
  } catch {
    return { ok: false };
  }
}
