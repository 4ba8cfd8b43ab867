import { describe, expect, it } from 'vitest';
import { redact, redactSecrets } from './redact.ts';

describe('redact', () => {
  it('removes resolved secrets and authorization-like values', () => {
    expect(redact('token=s3cr3t-value here', ['s3cr3t-value'])).toBe('token=[REDACTED] here');
    expect(redact('Authorization: Bearer abc.def\nX: y', [])).toBe('Authorization: [REDACTED]\nX: y');
    expect(redact('{"password":"hunter2","user":"bob"}', [])).toBe('{"password":"[REDACTED]","user":"bob"}');
    expect(redact('{"Authorization": "Basic Zm9v"}', [])).toBe('{"Authorization": "[REDACTED]"}');
    expect(redact('abc', ['ab'])).toBe('abc'); // too short to be a credential
  });
});

describe('redactSecrets', () => {
  const secret = 'Ab/"cd+ef 12\\34=xyz';
  it.each([
    ['as it is', secret],
    ['upper-cased', secret.toUpperCase()],
    ['lower-cased', secret.toLowerCase()],
    ['base64', Buffer.from(secret).toString('base64')],
    ['base64url', Buffer.from(secret).toString('base64url')],
    ['base64 inside a longer value', Buffer.from(`user:${secret}`).toString('base64')],
    ['percent-encoded', encodeURIComponent(secret)],
    ['percent-encoded in lower case', encodeURIComponent(secret).toLowerCase()],
    ['form-encoded', new URLSearchParams({ t: secret }).toString().slice(2)],
    ['JSON-escaped', JSON.stringify(secret).slice(1, -1)],
    ['JSON-escaped twice', JSON.stringify(JSON.stringify(secret)).slice(1, -1)],
    [
      'as \\u escapes',
      [...secret].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''),
    ],
  ])('removes a secret %s', (_form, echoed) => {
    const out = redactSecrets(`echo: <${echoed}>`, [secret]);
    expect(out).not.toContain(echoed);
    expect(out).toMatch(/^echo: <[^>]*\[REDACTED\][^>]*>$/);
  });

  it('leaves ordinary text alone', () => {
    expect(redactSecrets('nothing secret here: abc', [secret, 'abc'.repeat(3)])).toBe(
      'nothing secret here: abc',
    );
  });
});
