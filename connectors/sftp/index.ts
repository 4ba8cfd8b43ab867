export { sftpSource as source } from './source.ts';
export { sftpDestination as destination } from './destination.ts';
