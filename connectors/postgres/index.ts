export { postgresSource as source } from './source.ts';
export { postgresDestination as destination } from './destination.ts';
