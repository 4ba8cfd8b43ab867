export { filesSource as source } from './source.ts';
export { filesDestination as destination } from './destination.ts';
