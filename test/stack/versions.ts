import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { STACK_DIR } from './paths.ts';

export interface GoTool {
  /** Module path and version, as `go install` takes them. */
  module: string;
  version: string;
  /** Package to build, if not the module root. */
  package?: string;
  /** Name of the binary. */
  binary: string;
}

export interface Versions {
  kubernetes: { version: string; module: string; stagingVersion: string };
  etcd: { version: string; module: string };
  postgres: { debianPackage: string; major: number };
  goTools: Record<string, GoTool>;
}

export const VERSIONS = JSON.parse(readFileSync(join(STACK_DIR, 'versions.json'), 'utf8')) as Versions;
