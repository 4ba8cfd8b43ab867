// The container image, without Docker (none can run here): hadolint checks the Dockerfile, and the same
// build steps run in a temp folder — the files the Dockerfile copies (parsed from it, so the test follows
// the file), `npm ci --omit=dev`, the console stage's build — and both entry points start from the result.
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec } from '../chart/helm.ts';
import { REPO_DIR } from '../stack/paths.ts';
import { ensureHadolint } from './hadolint.ts';

const DOCKERFILE = readFileSync(join(REPO_DIR, 'Dockerfile'), 'utf8');
const NODE = join(REPO_DIR, 'node_modules', '.bin', 'node');

interface Stage {
  name: string;
  from: string;
  lines: string[];
}

/** The Dockerfile's stages, with line continuations joined. */
function stages(): Stage[] {
  const lines = DOCKERFILE.replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const result: Stage[] = [];
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) result.push({ from: from[1] as string, name: from[2] ?? '', lines: [] });
    else result.at(-1)?.lines.push(line);
  }
  return result;
}

/** `COPY [--flags] src... dest` of a stage, without --from copies. */
function copies(stage: Stage): Array<{ sources: string[]; dest: string; from?: string }> {
  return stage.lines
    .filter((l) => /^COPY\s/i.test(l))
    .map((l) => {
      const words = l.split(/\s+/).slice(1);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const args = words.filter((w) => !w.startsWith('--'));
      return { sources: args.slice(0, -1), dest: args.at(-1) as string, ...(from ? { from } : {}) };
    });
}

const ignored = readFileSync(join(REPO_DIR, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const isIgnored = (relative: string) =>
  ignored.some((pattern) => {
    const body = pattern
      .replace(/\./g, '\\.')
      .replace(/\*\*\//g, '\u0000')
      .replace(/\*/g, '[^/]*')
      .replaceAll('\u0000', '(.*/)?');
    const regex = new RegExp(`^${body}(/.*)?$`);
    return regex.test(relative);
  });

/** Where a COPY of `source` to `dest` lands, relative to the stage's WORKDIR (/app). */
const copyTarget = (source: string, dest: string) =>
  dest === './' ? (source.split('/').at(-1) as string) : dest.replace(/^\.\//, '');

/** Copies `source` (relative to the repository) to `dest`, leaving out what .dockerignore leaves out of the context. */
function copyLikeDocker(source: string, dest: string): void {
  cpSync(join(REPO_DIR, source), dest, {
    recursive: true,
    filter: (path) => {
      const relative = path.slice(REPO_DIR.length + 1);
      return relative === '' || !isIgnored(relative);
    },
  });
}

let image: string;
let buildSeconds = 0;

/**
 * Stage "console": its COPYs from the context and its `RUN node ...` build. Its `npm ci --include=dev` is
 * stood for by the repository's node_modules (installed from the same lockfile), linked in.
 */
async function buildConsoleStage(stage: Stage, dir: string): Promise<void> {
  for (const copy of copies(stage))
    for (const source of copy.sources) copyLikeDocker(source, join(dir, copyTarget(source, copy.dest)));
  symlinkSync(join(REPO_DIR, 'node_modules'), join(dir, 'node_modules'));
  for (const line of stage.lines.filter((l) => /^RUN\s+node\s/.test(l))) {
    const args = line.replace(/^RUN\s+node\s+/, '').split(/\s+/);
    const built = await exec(NODE, args, { cwd: dir, env: { PATH: process.env['PATH'] } });
    if (built.code !== 0) throw new Error(`${line} failed:\n${built.stderr}`);
  }
}

beforeAll(async () => {
  const started = Date.now();
  image = mkdtempSync(join(tmpdir(), 'syncline-image-'));
  const all = stages();
  const deps = all.find((stage) => stage.name === 'deps');
  const consoleStage = all.find((stage) => stage.name === 'console');
  const runtime = all.at(-1);
  if (!deps || !consoleStage || !runtime)
    throw new Error('the Dockerfile should have a deps, a console and a runtime stage');
  const depsDir = join(image, 'deps');
  const consoleDir = join(image, 'console');
  const appDir = join(image, 'app');
  const stageDirs: Record<string, string> = { deps: depsDir, console: consoleDir };
  // Stage "deps": the lockfile and `RUN npm ci ...` as written.
  for (const copy of copies(deps))
    for (const source of copy.sources) copyLikeDocker(source, join(depsDir, source));
  const npmLine = deps.lines.find((l) => /^RUN\s+npm ci/.test(l));
  const npmArgs = (npmLine?.replace(/^RUN\s+/, '').split('&&')[0] ?? '').trim().split(/\s+/).slice(1);
  const npm = await exec('npm', [...npmArgs, '--prefer-offline'], {
    cwd: depsDir,
    env: { ...process.env, PATH: `${join(REPO_DIR, 'node_modules', '.bin')}:${process.env['PATH']}` },
  });
  if (npm.code !== 0) throw new Error(`npm ${npmArgs.join(' ')} failed:\n${npm.stderr}`);
  await buildConsoleStage(consoleStage, consoleDir);
  // Stage "runtime": every COPY, from another stage or the (filtered) context.
  for (const copy of copies(runtime)) {
    for (const source of copy.sources) {
      const target = join(appDir, copyTarget(source, copy.dest));
      const from = copy.from ? stageDirs[copy.from] : undefined;
      if (copy.from && !from) throw new Error(`COPY --from=${copy.from}: no such stage`);
      if (from) cpSync(join(from, source.replace(/^\/app\//, '')), target, { recursive: true });
      else copyLikeDocker(source, target);
    }
  }
  buildSeconds = (Date.now() - started) / 1000;
}, 600_000);

afterAll(() => {
  if (image) rmSync(image, { recursive: true, force: true });
});

describe('Dockerfile', () => {
  it('passes hadolint', async () => {
    const hadolint = await ensureHadolint();
    const result = await exec(hadolint, ['--no-color', join(REPO_DIR, 'Dockerfile')]);
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('hadolint does catch a bad Dockerfile (the check can fail)', async () => {
    const hadolint = await ensureHadolint();
    const dir = mkdtempSync(join(tmpdir(), 'syncline-hadolint-'));
    try {
      const bad = join(dir, 'Dockerfile');
      writeFileSync(bad, 'FROM node:latest\nRUN apt-get install curl\n');
      const checked = await exec(hadolint, ['--no-color', bad]);
      expect(checked.code).not.toBe(0);
      expect(checked.stdout).toContain('DL3007');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is multi-stage on Node 24, runs as a non-root user and carries OCI labels', () => {
    const all = stages();
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const stage of all) expect(stage.from).toMatch(/^node:\$\{NODE_VERSION\}-bookworm-slim$/);
    expect(DOCKERFILE).toMatch(/^ARG NODE_VERSION=24\.\d+\.\d+$/m);
    const runtime = all.at(-1) as Stage;
    expect(runtime.lines.find((l) => l.startsWith('USER'))).toBe('USER 1000:1000');
    for (const label of ['title', 'description', 'version', 'revision', 'created', 'licenses', 'source']) {
      expect(DOCKERFILE).toContain(`org.opencontainers.image.${label}=`);
    }
    expect(runtime.lines).toContain('ENTRYPOINT ["node"]');
    expect(runtime.lines).toContain('CMD ["/app/operator/main.ts"]');
  });
});

describe('the image, built the same way in a temp folder', () => {
  it('holds production dependencies only, and no tests, charts or plugin', () => {
    const modules = readdirSync(join(image, 'app', 'node_modules'));
    expect(modules).toContain('@kubernetes');
    expect(modules).toContain('@duckdb');
    for (const dev of ['vitest', 'typescript', 'eslint', 'prettier', 'node'])
      expect(modules, dev).not.toContain(dev);
    expect(readdirSync(join(image, 'app')).sort()).toEqual([
      'bin',
      'connectors',
      'core',
      'crds',
      'node_modules',
      'operator',
      'package.json',
      'runner',
    ]);
    const walk = (dir: string): string[] =>
      readdirSync(dir).flatMap((e) =>
        statSync(join(dir, e)).isDirectory() ? walk(join(dir, e)) : [join(dir, e)],
      );
    const tests = ['operator', 'runner', 'connectors', 'core', 'crds']
      .flatMap((d) => walk(join(image, 'app', d)))
      .filter((f) => f.endsWith('.test.ts'));
    expect(tests).toEqual([]);
    console.log(`[image] built in ${buildSeconds.toFixed(0)} s`);
  });

  it('holds the built console and none of its build tools', () => {
    const dist = join(image, 'app', 'operator', 'console', 'dist');
    expect(readdirSync(join(dist, 'assets')).sort()).toEqual(['app.css', 'app.js', 'favicon.svg']);
    expect(readFileSync(join(dist, 'index.html'), 'utf8')).toContain('assets/app.js');
    const modules = readdirSync(join(image, 'app', 'node_modules'));
    for (const dev of ['esbuild', 'preact', 'uplot', 'playwright-core'])
      expect(modules, dev).not.toContain(dev);
  });

  it('starts the operator entry point (the default command)', async () => {
    const result = await exec(NODE, [join(image, 'app', 'operator', 'main.ts'), '--help'], {
      cwd: join(image, 'app'),
      env: { PATH: process.env['PATH'], NODE_ENV: 'production' },
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Run the Syncline operator');
    expect(result.stdout).toContain('--diff-store-url');
  });

  it("starts the runner entry point (the Jobs' command)", async () => {
    const result = await exec(NODE, [join(image, 'app', 'bin', 'syncline.mjs'), '--help'], {
      cwd: join(image, 'app'),
      env: { PATH: process.env['PATH'], NODE_ENV: 'production' },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: syncline');
  });

  it('the runner runs a real Sync from the image (embedded engines, no server)', async () => {
    const work = mkdtempSync(join(tmpdir(), 'syncline-image-run-'));
    try {
      cpSync(join(REPO_DIR, 'examples', 'quickstart'), join(work, 'quickstart'), { recursive: true });
      const result = await exec(
        NODE,
        [
          join(image, 'app', 'bin', 'syncline.mjs'),
          'run',
          '-f',
          join(work, 'quickstart'),
          '--state-dir',
          join(work, 'state'),
          '-o',
          'json',
        ],
        {
          cwd: work,
          env: { PATH: process.env['PATH'], HOME: work, NODE_ENV: 'production' },
        },
      );
      expect(result.code, result.stderr).toBe(0);
      const summary = JSON.parse(result.stdout.trim().split('\n').at(-1) as string) as {
        result: string;
        counts: { delivered: number };
      };
      expect(summary.result).toBe('Succeeded');
      expect(summary.counts.delivered).toBeGreaterThan(0);
      expect(existsSync(join(work, 'state'))).toBe(true);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
