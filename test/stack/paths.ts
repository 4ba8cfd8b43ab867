import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where built binaries and their Go caches live between runs (override with SYNCLINE_STACK_CACHE). */
export const CACHE_DIR = process.env['SYNCLINE_STACK_CACHE'] ?? join(homedir(), '.cache', 'syncline-stack');
export const STACK_DIR = fileURLToPath(new URL('.', import.meta.url));
export const REPO_DIR = fileURLToPath(new URL('../..', import.meta.url));
