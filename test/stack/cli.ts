// `npm run stack -- <command>`: build, start or check the local test stack by hand. See test/README.md.
import { startKube } from './kube.ts';
import { startPostgres } from './postgres.ts';
import { prepareStack } from './prepare.ts';

const log = (line: string) => console.error(`[stack] ${line}`);
const command = process.argv[2] ?? 'help';

async function up(): Promise<void> {
  const started = Date.now();
  const kube = await startKube({ controllerManager: true, log, logDir: process.env['SYNCLINE_STACK_LOGS'] });
  const pg = await startPostgres();
  log(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`export KUBECONFIG=${kube.kubeconfigPath}`);
  console.log(`export PGURL=${pg.url}`);
  log('logs and certificates are in ' + kube.dir + '; press Ctrl-C to stop');
  const stop = async () => {
    await pg.stop();
    await kube.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  setInterval(() => {}, 1 << 30);
}

switch (command) {
  case 'build': {
    const started = Date.now();
    await prepareStack(log);
    log(`everything the tests need is installed and built (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    break;
  }
  case 'up':
    await up();
    break;
  default:
    console.log(
      'usage: npm run stack -- build | up\n  build  install and build everything the tests run (Debian packages, Go tools, Python tools; cached)\n  up     start the control plane and PostgreSQL, print the env to use them, run until Ctrl-C',
    );
}
