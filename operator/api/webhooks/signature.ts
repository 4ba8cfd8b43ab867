import { createHmac, timingSafeEqual } from 'node:crypto';
import type { WebhookType } from '../../../crds/index.ts';

/**
 * Where each sender puts its signature, the hex HMAC-SHA256 of the raw body keyed with the webhook's
 * secret: dbt Cloud in `Authorization` (lower-case hex), Fivetran in `X-Fivetran-Signature-256` (its own
 * examples compare it upper-cased). Either case is accepted.
 */
export const SIGNATURE_HEADER: Record<WebhookType, string> = {
  dbtCloud: 'authorization',
  fivetran: 'x-fivetran-signature-256',
};

/** The signature of a body: what the sender computes. */
export function signBody(body: Buffer | string, secret: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/**
 * Whether a signature header is the body's HMAC under the secret, compared in constant time (as bytes, so
 * the case of the hex does not matter). A missing, repeated or malformed header is not.
 */
export function signatureValid(header: string | string[] | undefined, body: Buffer, secret: string): boolean {
  if (typeof header !== 'string') return false;
  const given = header.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(given)) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(given, 'hex'));
}
