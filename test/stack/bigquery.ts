// goccy/bigquery-emulator for the BigQuery source tests. It links go-zetasql (a large C++ build through
// cgo), so building it is slow and needs clang; it is therefore an explicit opt-in and never part of the
// default `npm test` (see test/warehouses/bigquery/README.md for the measurements).
//
// `go install module@version` cannot be used: the Go module proxy refuses the module's version list, which
// go install reads for deprecation notices. Like the kube binaries, it is built from a tiny wrapper module
// that requires the pinned version.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { CACHE_DIR } from './paths.ts';
import { freePort, run, startProcess, waitFor, type ManagedProcess } from './process.ts';
import { VERSIONS } from './versions.ts';

interface EmulatorVersion {
  module: string;
  version: string;
  package: string;
  go: string;
}

function emulatorVersion(): EmulatorVersion {
  const entry = (VERSIONS as unknown as { bigqueryEmulator?: EmulatorVersion }).bigqueryEmulator;
  if (!entry) throw new Error('test/stack/versions.json has no "bigqueryEmulator" entry');
  return entry;
}

/** Where the built binary is cached; SYNCLINE_BIGQUERY_EMULATOR_BIN overrides it. */
export function bigQueryEmulatorPath(): string {
  return (
    process.env['SYNCLINE_BIGQUERY_EMULATOR_BIN'] ??
    join(CACHE_DIR, `bigquery-emulator-${emulatorVersion().version}`, 'bigquery-emulator')
  );
}

/** Build the emulator (clang from apt if missing); minutes of C++ compilation when Go's cache is cold. */
export async function buildBigQueryEmulator(log: (line: string) => void = () => {}): Promise<string> {
  const binary = bigQueryEmulatorPath();
  if (existsSync(binary)) return binary;
  const { module, version, package: pkg, go } = emulatorVersion();
  mkdirSync(CACHE_DIR, { recursive: true });
  const release = await lockfile.lock(CACHE_DIR, {
    lockfilePath: join(CACHE_DIR, 'bigquery-emulator.lock'),
    retries: { retries: 3600, minTimeout: 1000, maxTimeout: 1000 },
    stale: 120_000,
  });
  try {
    if (existsSync(binary)) return binary;
    if (!existsSync('/usr/bin/clang++')) {
      if (process.getuid?.() !== 0)
        throw new Error('building the BigQuery emulator needs clang: sudo apt-get install clang');
      log('installing clang with apt-get');
      await run('apt-get', ['update', '-q']);
      await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'clang'], {
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    }
    const wrapper = mkdtempSync(join(tmpdir(), 'syncline-bq-build-'));
    try {
      writeFileSync(
        join(wrapper, 'go.mod'),
        `module syncline.test/bigquery-emulator\n\ngo ${go}\n\nrequire ${module} ${version}\n`,
      );
      writeFileSync(join(wrapper, 'tools.go'), `//go:build tools\n\npackage tools\n\nimport _ "${pkg}"\n`);
      const env = {
        ...process.env,
        CGO_ENABLED: '1',
        CC: 'clang',
        CXX: 'clang++',
        GOTOOLCHAIN: 'local',
        GOFLAGS: '-mod=mod',
      };
      log(`building ${pkg}@${version} (cgo, go-zetasql: slow)`);
      await run('go', ['mod', 'tidy'], { cwd: wrapper, env });
      mkdirSync(join(binary, '..'), { recursive: true });
      await run('go', ['build', '-o', binary, pkg], { cwd: wrapper, env });
    } finally {
      rmSync(wrapper, { recursive: true, force: true });
    }
    return binary;
  } finally {
    await release();
  }
}

export interface BigQueryEmulator {
  /** API endpoint for @google-cloud/bigquery's apiEndpoint. */
  endpoint: string;
  project: string;
  stop(): Promise<void>;
}

/** Start the emulator on free ports with one project and dataset. Fails clearly when it is not built. */
export async function startBigQueryEmulator(
  options: { project?: string; dataset?: string } = {},
): Promise<BigQueryEmulator> {
  const binary = bigQueryEmulatorPath();
  if (!existsSync(binary)) {
    throw new Error(
      `the BigQuery emulator is not built (looked for ${binary}). Build it with ` +
        '`node test/stack/bigquery.ts build` (a cold build compiles go-zetasql: see test/warehouses/bigquery/README.md), ' +
        'or set SYNCLINE_BIGQUERY_EMULATOR_BIN to a built bigquery-emulator binary.',
    );
  }
  const project = options.project ?? 'syncline-test';
  const dir = mkdtempSync(join(tmpdir(), 'syncline-bq-'));
  const [port, grpcPort] = [await freePort(), await freePort()];
  const server: ManagedProcess = startProcess(
    `bigquery-emulator-${port}`,
    binary,
    [
      `--project=${project}`,
      `--dataset=${options.dataset ?? 'analytics'}`,
      `--port=${port}`,
      `--grpc-port=${grpcPort}`,
      '--host=127.0.0.1',
    ],
    { logDir: dir },
  );
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor(
    'bigquery-emulator',
    async () => {
      if (server.exited()) throw new Error('bigquery-emulator exited');
      const response = await fetch(`${endpoint}/bigquery/v2/projects/${project}/datasets`);
      return response.ok;
    },
    { timeoutMs: 60_000 },
  );
  return {
    endpoint,
    project,
    async stop() {
      await server.stop(10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}` && process.argv[2] === 'build') {
  const started = Date.now();
  const binary = await buildBigQueryEmulator((line) => console.log(line));
  console.log(`${binary} (${Math.round((Date.now() - started) / 1000)} s)`);
}
