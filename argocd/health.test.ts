import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ensureLua } from '../test/stack/prometheus.ts';
import { run } from '../test/stack/process.ts';

const DIR = new URL('.', import.meta.url).pathname;
const HEALTH_LUA = join(DIR, 'health.lua');

interface HealthCase {
  inputPath: string;
  healthStatus: { status: string; message: string };
}

/** A JSON value as a Lua table constructor. */
function toLua(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'string') return JSON.stringify(value); // JSON string escapes are valid in Lua 5.1 for this text
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `{${value.map(toLua).join(', ')}}`;
  return `{${Object.entries(value as Record<string, unknown>)
    .map(([key, v]) => `[${JSON.stringify(key)}] = ${toLua(v)}`)
    .join(', ')}}`;
}

/**
 * Runs health.lua as Argo CD does: `obj` a global, the script a chunk that returns the health table, in a
 * sandbox with only the libraries Argo CD opens (no os, io, require or load).
 */
function harness(objLua: string): string {
  return `
local chunk = assert(loadfile(${JSON.stringify(HEALTH_LUA)}))
local sandbox = {
  obj = ${objLua},
  string = string, table = table, math = math,
  ipairs = ipairs, pairs = pairs, next = next, type = type, tostring = tostring, tonumber = tonumber,
  select = select, unpack = unpack, pcall = pcall, error = error,
}
setfenv(chunk, sandbox)
local hs = chunk()
io.write(hs.status, "\\n", hs.message or "")
`;
}

let lua: string;
let scratch: string;
beforeAll(async () => {
  lua = await ensureLua();
  scratch = mkdtempSync(join(tmpdir(), 'syncline-argocd-'));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function health(obj: unknown): Promise<{ status: string; message: string }> {
  const file = join(scratch, `case-${Math.random().toString(36).slice(2)}.lua`);
  writeFileSync(file, harness(toLua(obj)));
  const { stdout } = await run(lua, [file]);
  const [status = '', ...message] = stdout.split('\n');
  return { status, message: message.join('\n') };
}

const cases = (parse(readFileSync(join(DIR, 'health_test.yaml'), 'utf8')) as { tests: HealthCase[] }).tests;

describe('Argo CD health check (Lua 5.1, as gopher-lua)', () => {
  it.each(cases)('$inputPath is $healthStatus.status', async ({ inputPath, healthStatus }) => {
    const obj = parse(readFileSync(join(DIR, inputPath), 'utf8'));
    expect(await health(obj)).toEqual(healthStatus);
  });

  it('covers Healthy, Progressing, Degraded and Suspended, and all five kinds', () => {
    const statuses = new Set(cases.map((c) => c.healthStatus.status));
    expect([...statuses].sort()).toEqual(['Degraded', 'Healthy', 'Progressing', 'Suspended']);
    const kinds = new Set(
      cases.map((c) => (parse(readFileSync(join(DIR, c.inputPath), 'utf8')) as { kind: string }).kind),
    );
    expect([...kinds].sort()).toEqual(['Destination', 'Model', 'Sequence', 'Source', 'Sync']);
  });

  it('uses no library outside Argo CD sandbox and no Lua 5.2+ syntax', async () => {
    const code = readFileSync(HEALTH_LUA, 'utf8').replace(/--.*$/gm, '');
    expect(code).not.toMatch(/\b(os|io|require|load|loadstring|dofile|goto)\b/);
    // luac5.1 -p is not shipped by every Debian lua5.1 package; loading without running is the same parse.
    const { stdout } = await run(lua, [
      '-e',
      `assert(loadfile(${JSON.stringify(HEALTH_LUA)})) io.write("parsed")`,
    ]);
    expect(stdout).toBe('parsed');
  });

  it('argocd-cm.yaml installs the same script for each kind', () => {
    const cm = parse(readFileSync(join(DIR, 'argocd-cm.yaml'), 'utf8')) as { data: Record<string, string> };
    const script = readFileSync(HEALTH_LUA, 'utf8');
    expect(Object.keys(cm.data).sort()).toEqual(
      ['Destination', 'Model', 'Sequence', 'Source', 'Sync'].map(
        (k) => `resource.customizations.health.syncline.io_${k}`,
      ),
    );
    for (const value of Object.values(cm.data)) expect(value).toBe(script);
  });
});
