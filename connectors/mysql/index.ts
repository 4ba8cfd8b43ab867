export { mysqlSource as source } from './source.ts';
