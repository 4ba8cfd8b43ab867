import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { operatorCommand, type OperatorFlags } from '../main.ts';
import { startOperatorApi } from './start.ts';

const parse = (args: string[]) =>
  operatorCommand().exitOverride().parse(args, { from: 'user' }).opts<OperatorFlags>();
const log = pino({ level: 'silent' });
const kubeConfig = { getCurrentCluster: () => ({ server: 'https://127.0.0.1:1' }) } as never;

afterEach(() => {
  delete process.env['SYNCLINE_WEBHOOKS'];
  delete process.env['SYNCLINE_WEBHOOK_SECRET_DBT'];
});

describe("the run API's flags", () => {
  it('serves on 8443 by default, takes repeated --webhook flags, or the comma list of SYNCLINE_WEBHOOKS', () => {
    const flags = parse(['--webhook', 'dbt=dbtCloud', '--webhook', 'ft=fivetran']);
    expect(flags).toMatchObject({
      api: true,
      apiPort: 8443,
      apiRateLimit: 120,
      webhook: ['dbt=dbtCloud', 'ft=fivetran'],
    });
    process.env['SYNCLINE_WEBHOOKS'] = 'dbt=dbtCloud,ft=fivetran';
    expect(parse([]).webhook).toEqual(['dbt=dbtCloud,ft=fivetran']);
    expect(parse(['--no-api']).api).toBe(false);
  });

  it('refuses to start with a webhook whose secret is missing, or half a TLS pair, and starts with neither', async () => {
    await expect(
      startOperatorApi({
        flags: parse(['--webhook', 'dbt=dbtCloud', '--api-port', '0']),
        kubeConfig,
        namespaces: [],
        log,
      }),
    ).rejects.toMatchObject({ reason: 'WebhookSecretMissing' });
    await expect(
      startOperatorApi({
        flags: parse(['--api-tls-cert-file', '/x.crt', '--api-port', '0']),
        kubeConfig,
        namespaces: [],
        log,
      }),
    ).rejects.toThrow('--api-tls-cert-file and --api-tls-key-file go together');
    process.env['SYNCLINE_WEBHOOK_SECRET_DBT'] = 's3cret';
    const api = await startOperatorApi({
      flags: parse(['--webhook', 'dbt=dbtCloud', '--api-port', '0', '--api-host', '127.0.0.1']),
      kubeConfig,
      namespaces: [],
      log,
    });
    const answer = await fetch(`http://127.0.0.1:${api!.port}/webhooks/v1/dbt`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json', authorization: 'bad' },
    });
    expect(answer.status).toBe(401);
    await api!.close();
    expect(
      await startOperatorApi({ flags: parse(['--no-api']), kubeConfig, namespaces: [], log }),
    ).toBeUndefined();
  });
});
