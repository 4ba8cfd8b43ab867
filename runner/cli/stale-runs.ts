import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUN_FOLDER_OWNER, RUN_FOLDER_PREFIX } from '../duck.ts';

/** A folder without an owner file (made by an older version) is removed only when this old. */
const UNOWNED_MAX_AGE_MS = 24 * 3600_000;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists, it belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether no live process may still use a run folder. */
function isStale(dir: string, now: number): boolean {
  let owner: { pid?: unknown; host?: unknown };
  try {
    owner = JSON.parse(readFileSync(join(dir, RUN_FOLDER_OWNER), 'utf8')) as typeof owner;
  } catch {
    // No owner file (yet, or an older version's folder), or a half-written one: go by age.
    return now - statSync(dir).mtimeMs > UNOWNED_MAX_AGE_MS;
  }
  if (owner.host !== hostname() || typeof owner.pid !== 'number') return false; // another machine's
  // This process has opened no run yet: a folder naming its pid is an earlier process's (a restarted
  // container gets the same pid).
  return owner.pid === process.pid || !isAlive(owner.pid);
}

/**
 * Remove the temp folders of runs that were killed (SIGKILL, out of memory) before they could remove
 * them: model rows and spill files. Only folders whose process is gone; call before this process opens
 * a run. Returns the folders removed.
 */
export function removeStaleRunFolders(parent: string = tmpdir(), now = Date.now()): string[] {
  let names: string[];
  try {
    names = readdirSync(parent).filter((name) => name.startsWith(RUN_FOLDER_PREFIX));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const dir = join(parent, name);
    try {
      if (!statSync(dir).isDirectory() || !isStale(dir, now)) continue;
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // Gone meanwhile, or not ours to remove: leave it.
    }
  }
  return removed;
}
