export { snowflakeSource as source } from './source.ts';
