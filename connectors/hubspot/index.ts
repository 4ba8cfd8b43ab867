export { hubspotDestination as destination } from './destination.ts';
