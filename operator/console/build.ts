// `npm run build:console`: bundles the console (Preact, uPlot, src/) with esbuild into dist/, which the
// operator serves at /console/. dist/ is git-ignored; the image builds it in a stage of its own.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const SRC = join(HERE, 'src');
export const CONSOLE_DIST = join(HERE, 'dist');

export interface ConsoleBuild {
  outdir: string;
  /** Bytes of each file written, by its path under outdir. */
  files: Record<string, number>;
}

/** Writes index.html and assets/app.js, app.css, favicon.svg under `outdir` (replacing what was there). */
export async function buildConsole(outdir = CONSOLE_DIST): Promise<ConsoleBuild> {
  rmSync(outdir, { recursive: true, force: true });
  const assets = join(outdir, 'assets');
  mkdirSync(assets, { recursive: true });
  const result = await build({
    entryPoints: [
      { in: join(SRC, 'main.tsx'), out: 'app' },
      { in: join(SRC, 'styles.css'), out: 'app' },
    ],
    outdir: assets,
    bundle: true,
    minify: true,
    sourcemap: false,
    format: 'esm',
    target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
    platform: 'browser',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    // The type-only imports of crds/ are erased; nothing of the server side may reach the bundle.
    external: [],
    legalComments: 'eof',
    metafile: true,
    logLevel: 'warning',
    absWorkingDir: HERE,
  });
  copyFileSync(join(SRC, 'index.html'), join(outdir, 'index.html'));
  copyFileSync(join(SRC, 'favicon.svg'), join(assets, 'favicon.svg'));
  const files: Record<string, number> = {};
  for (const [path, output] of Object.entries(result.metafile.outputs))
    files[path.slice(path.indexOf('assets/'))] = output.bytes;
  return { outdir, files };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const outdir = process.argv[2] ?? CONSOLE_DIST;
  const built = await buildConsole(outdir);
  for (const [file, bytes] of Object.entries(built.files))
    console.log(`${file.padEnd(24)} ${(bytes / 1024).toFixed(1).padStart(7)} KiB`);
  console.log(`console built in ${built.outdir}`);
}
