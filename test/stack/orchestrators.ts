import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_DIR } from './paths.ts';
import { ensurePythonVenv } from './python-venv.ts';

/** The orchestrator packages the examples run with for real (examples/orchestrators/tests/requirements.txt). */
export function orchestratorPins(): string[] {
  return readFileSync(join(REPO_DIR, 'examples/orchestrators/tests/requirements.txt'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
}

/** The venv with them (made once, about 35 s; cached in the stack cache): its python. */
export function ensureOrchestratorVenv(log?: (line: string) => void): Promise<string> {
  return ensurePythonVenv('orchestrators', orchestratorPins(), log);
}
