export { httpDestination as destination } from './destination.ts';
