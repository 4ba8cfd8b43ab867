export * from './common.ts';
export * from './source.ts';
export * from './model.ts';
export * from './destination.ts';
export * from './sync.ts';
export * from './resources.ts';
export { parseGoDuration, CRON_RE } from './rules.ts';
export * from './api.ts';
export * from './webhooks.ts';
