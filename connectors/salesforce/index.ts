export { salesforceDestination as destination } from './destination.ts';
