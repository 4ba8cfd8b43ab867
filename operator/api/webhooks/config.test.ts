import { describe, expect, it } from 'vitest';
import { describeWebhooks, parseWebhookFlags, webhookSecretEnv } from './config.ts';

const env = {
  SYNCLINE_WEBHOOK_SECRET_DBT_PROD: 's3cret-dbt',
  SYNCLINE_WEBHOOK_SECRET_FIVETRAN: 's3cret-fivetran\n',
};

describe('parseWebhookFlags', () => {
  it('reads NAME=TYPE flags, each with its secret from SYNCLINE_WEBHOOK_SECRET_<NAME>', () => {
    expect(parseWebhookFlags(['dbt-prod=dbtCloud', 'fivetran=fivetran'], env)).toEqual([
      { name: 'dbt-prod', type: 'dbtCloud', secret: 's3cret-dbt' },
      // A Secret made from a file ends in a newline that is not part of the secret.
      { name: 'fivetran', type: 'fivetran', secret: 's3cret-fivetran' },
    ]);
    expect(webhookSecretEnv('dbt-prod')).toBe('SYNCLINE_WEBHOOK_SECRET_DBT_PROD');
  });

  it('reads a comma-separated list, as SYNCLINE_WEBHOOKS holds them', () => {
    expect(parseWebhookFlags(['dbt-prod=dbtCloud, fivetran=fivetran'], env).map((w) => w.name)).toEqual([
      'dbt-prod',
      'fivetran',
    ]);
    expect(parseWebhookFlags([], env)).toEqual([]);
    expect(parseWebhookFlags([''], env)).toEqual([]);
  });

  it.each([
    ['dbt-prod', 'is not NAME=TYPE: give e.g. --webhook dbt-prod=dbtCloud'],
    ['Dbt_Prod=dbtCloud', 'the name "Dbt_Prod" must be a DNS label'],
    [`${'a'.repeat(64)}=dbtCloud`, 'must be a DNS label'],
    ['=dbtCloud', 'the name "" must be a DNS label'],
    ['dbt-prod=dbtcloud', 'the type "dbtcloud" is not one of dbtCloud, fivetran (did you mean dbtCloud?)'],
    ['dbt-prod=airflow', 'the type "airflow" is not one of dbtCloud, fivetran'],
  ])('refuses the flag %s: %s', (flag, message) => {
    expect(() => parseWebhookFlags([flag], env)).toThrowError(
      expect.objectContaining({ reason: 'InvalidFlag', message: expect.stringContaining(message) }),
    );
  });

  it('refuses a name given twice', () => {
    expect(() => parseWebhookFlags(['dbt-prod=dbtCloud', 'dbt-prod=fivetran'], env)).toThrowError(
      expect.objectContaining({ reason: 'InvalidFlag', message: expect.stringContaining('given twice') }),
    );
  });

  it('refuses a webhook without its secret, naming the variable, and an empty one', () => {
    for (const secrets of [
      {},
      { SYNCLINE_WEBHOOK_SECRET_DBT_STAGING: '' },
      { SYNCLINE_WEBHOOK_SECRET_DBT_STAGING: '\n' },
    ])
      expect(() => parseWebhookFlags(['dbt-staging=dbtCloud'], secrets)).toThrowError(
        expect.objectContaining({
          reason: 'WebhookSecretMissing',
          message: expect.stringContaining(
            'set the environment variable SYNCLINE_WEBHOOK_SECRET_DBT_STAGING',
          ),
        }),
      );
  });

  it('describes webhooks for logs without their secrets', () => {
    const described = JSON.stringify(describeWebhooks(parseWebhookFlags(['dbt-prod=dbtCloud'], env)));
    expect(described).toBe('[{"name":"dbt-prod","type":"dbtCloud"}]');
  });
});
