import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createVerify, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSynclineError } from '../../core/errors.ts';
import { secretResolver } from '../../core/secrets.ts';
import {
  clientCredentials,
  jwtBearer,
  oauthRefreshToken,
  secretValue,
  signJwt,
  staticToken,
  TokenProvider,
} from './auth.ts';

let server: Server;
let url: string;
const forms: URLSearchParams[] = [];
let answer: (form: URLSearchParams) => { status: number; body: unknown } = () => ({ status: 500, body: {} });

const read = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => resolve(text));
  });

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const form = new URLSearchParams(await read(req));
    forms.push(form);
    const { status, body } = answer(form);
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/oauth/v1/token`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const signal = new AbortController().signal;

describe('token sources', () => {
  it('reads credentials from secretKeyRefs', () => {
    const secrets = secretResolver({}, { hs: { token: 'pat-na1-abc\n' } });
    expect(secretValue(secrets, { secretKeyRef: { name: 'hs', key: 'token' } })).toBe('pat-na1-abc');
  });

  it('a static token is not renewable: refresh gives nothing', async () => {
    const provider = new TokenProvider(staticToken('pat-123456'));
    expect((await provider.token(signal)).token).toBe('pat-123456');
    expect(await provider.refresh('pat-123456', signal)).toBeUndefined();
  });

  it('refresh-token grant: form fields, rotation, cache and one refresh for concurrent 401s', async () => {
    let n = 0;
    answer = () => {
      n++;
      return {
        status: 200,
        body: {
          access_token: `access-${n}`,
          refresh_token: `refresh-${n}`,
          expires_in: 1800,
          token_type: 'bearer',
        },
      };
    };
    forms.length = 0;
    const source = oauthRefreshToken({
      tokenUrl: url,
      clientId: 'client-1',
      clientSecret: 'client-secret-xyz',
      refreshToken: 'refresh-0',
    });
    const provider = new TokenProvider(source);
    const [a, b] = await Promise.all([provider.token(signal), provider.token(signal)]);
    expect(a.token).toBe('access-1');
    expect(b.token).toBe('access-1');
    expect(forms).toHaveLength(1);
    expect(Object.fromEntries(forms[0] as URLSearchParams)).toEqual({
      grant_type: 'refresh_token',
      client_id: 'client-1',
      client_secret: 'client-secret-xyz',
      refresh_token: 'refresh-0',
    });
    const [r1, r2] = await Promise.all([
      provider.refresh('access-1', signal),
      provider.refresh('access-1', signal),
    ]);
    expect(r1?.token).toBe('access-2');
    expect(r2?.token).toBe('access-2');
    expect(forms).toHaveLength(2);
    expect(forms[1]?.get('refresh_token')).toBe('refresh-1');
    expect(provider.secrets()).toEqual(
      expect.arrayContaining(['client-secret-xyz', 'refresh-1', 'access-2']),
    );
    expect(JSON.stringify((await provider.token(signal)).extra ?? {})).not.toContain('refresh-');
  });

  it('fetches a new token when the cached one is about to expire', async () => {
    let n = 0;
    answer = () => ({ status: 200, body: { access_token: `t-${++n}`, expires_in: 120 } });
    let now = 1_000_000;
    const provider = new TokenProvider(
      oauthRefreshToken({
        tokenUrl: url,
        clientId: 'c',
        clientSecret: 'secret-1',
        refreshToken: 'rt-1',
        now: () => now,
      }),
      { now: () => now },
    );
    expect((await provider.token(signal)).token).toBe('t-1');
    now += 30_000;
    expect((await provider.token(signal)).token).toBe('t-1');
    now += 40_000; // within a minute of expiry
    expect((await provider.token(signal)).token).toBe('t-2');
  });

  it('a refused grant is AuthenticationFailed, naming the OAuth error and never a credential', async () => {
    answer = () => ({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'refresh token revoked' },
    });
    const provider = new TokenProvider(
      oauthRefreshToken({
        tokenUrl: url,
        clientId: 'c',
        clientSecret: 'super-secret-1',
        refreshToken: 'rt-secret-2',
      }),
    );
    const error = await provider.token(signal).catch((e: unknown) => e);
    expect(isSynclineError(error) && error.reason).toBe('AuthenticationFailed');
    expect(String((error as Error).message)).toContain('invalid_grant');
    expect(String((error as Error).message)).not.toMatch(/super-secret-1|rt-secret-2/);
  });

  it('a 5xx of the token endpoint is retryable', async () => {
    answer = () => ({ status: 503, body: {} });
    const error = await clientCredentials({ tokenUrl: url, clientId: 'c', clientSecret: 's3cret' })
      .fetch(signal)
      .catch((e: unknown) => e);
    expect(isSynclineError(error) && error.reason).toBe('DestinationUnreachable');
    expect((error as { retryable: boolean }).retryable).toBe(true);
  });

  it('client-credentials grant', async () => {
    forms.length = 0;
    answer = () => ({ status: 200, body: { access_token: 'cc-token', expires_in: 60 } });
    const token = await clientCredentials({
      tokenUrl: url,
      clientId: 'c',
      clientSecret: 's3cret',
      scope: 'crm',
    }).fetch(signal);
    expect(token.token).toBe('cc-token');
    expect(forms[0]?.get('grant_type')).toBe('client_credentials');
    expect(forms[0]?.get('scope')).toBe('crm');
  });

  it('JWT bearer: an RS256 assertion with iss, sub, aud and exp that verifies with the public key', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    forms.length = 0;
    answer = () => ({
      status: 200,
      body: { access_token: 'sf-token', instance_url: 'https://x.my.salesforce.com' },
    });
    const now = Date.UTC(2025, 0, 1);
    const token = await jwtBearer({
      tokenUrl: url,
      issuer: 'consumer-key',
      subject: 'user@example.com',
      audience: 'https://login.salesforce.com',
      privateKeyPem: pem,
      now: () => now,
    }).fetch(signal);
    expect(token.token).toBe('sf-token');
    expect(token.extra?.instance_url).toBe('https://x.my.salesforce.com');
    const form = forms[0] as URLSearchParams;
    expect(form.get('grant_type')).toBe('urn:ietf:params:oauth:grant-type:jwt-bearer');
    const [header, payload, signature] = (form.get('assertion') as string).split('.');
    expect(JSON.parse(Buffer.from(header as string, 'base64url').toString())).toEqual({
      alg: 'RS256',
      typ: 'JWT',
    });
    expect(JSON.parse(Buffer.from(payload as string, 'base64url').toString())).toEqual({
      iss: 'consumer-key',
      sub: 'user@example.com',
      aud: 'https://login.salesforce.com',
      exp: now / 1000 + 180,
    });
    const verify = createVerify('RSA-SHA256');
    verify.update(`${header}.${payload}`);
    expect(verify.verify(publicKey, Buffer.from(signature as string, 'base64url'))).toBe(true);
  });

  it('a key that is not a PEM private key is InvalidCredentials', () => {
    let error: unknown;
    try {
      signJwt({ iss: 'a', sub: 'b', aud: 'c', exp: 1 }, 'not a key');
    } catch (e) {
      error = e;
    }
    expect(isSynclineError(error) && error.reason).toBe('InvalidCredentials');
  });
});
