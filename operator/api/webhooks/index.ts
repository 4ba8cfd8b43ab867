export { parseWebhookFlags, describeWebhooks, webhookSecretEnv, type WebhookConfig } from './config.ts';
export { webhookRoutes, WEBHOOK_BODY_LIMIT } from './routes.ts';
export { SIGNATURE_HEADER, signBody } from './signature.ts';
