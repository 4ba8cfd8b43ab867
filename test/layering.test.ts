// The lint step enforces the layering (eslint.config.js): a wrong import fails it, a right one passes.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const eslint = new ESLint({ cwd: REPO });

async function restricted(file: string, specifier: string): Promise<boolean> {
  const code = `import { x } from '${specifier}';\nexport const y = x;\n`;
  const [result] = await eslint.lintText(code, { filePath: join(REPO, file) });
  return (result?.messages ?? []).some((m) => m.ruleId === 'no-restricted-imports');
}

describe('layering', () => {
  it.each([
    ['crds/x.ts', '../core/errors.ts'],
    ['core/x.ts', '../runner/run.ts'],
    ['core/storage/x.ts', '../../connectors/registry.ts'],
    ['core/x.ts', '../test/stack/process.ts'],
    ['connectors/http/x.ts', '../../runner/requestlog.ts'],
    ['connectors/x.ts', '../operator/sync.ts'],
    ['runner/x.ts', '../operator/jobs.ts'],
    ['operator/x.ts', '../runner/run.ts'],
    ['operator/x.ts', '../connectors/registry.ts'],
    ['operator/runtime/x.ts', '../sync.ts'],
    ['operator/runtime/x.ts', '../../crds/index.ts'],
    ['operator/runtime/x.ts', '../testdata/x.ts'],
  ])('refuses %s importing %s', async (file, specifier) => {
    expect(await restricted(file, specifier)).toBe(true);
  });

  it.each([
    ['core/x.ts', '../crds/index.ts'],
    ['connectors/http/x.ts', '../../core/redact.ts'],
    ['runner/x.ts', '../connectors/registry.ts'],
    ['operator/x.ts', '../core/plan.ts'],
    ['operator/runtime/x.ts', '../../core/errors.ts'],
    ['operator/runtime/x.ts', './workqueue.ts'],
    ['connectors/http/x.test.ts', '../../runner/run.ts'],
  ])('allows %s importing %s', async (file, specifier) => {
    expect(await restricted(file, specifier)).toBe(false);
  });
});
