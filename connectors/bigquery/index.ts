export { bigquerySource as source } from './source.ts';
