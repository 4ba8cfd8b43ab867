// One leader-election candidate as its own process, for the failover tests: prints one JSON line per
// transition on stdout, and on SIGTERM stops (releasing the lease) and exits. SIGKILL leaves the lease held.
import { KubeConfig } from '@kubernetes/client-node';
import { LeaderElector } from '../../operator/runtime/leader.ts';
import { createLogger } from '../../core/logger.ts';

const [kubeconfigPath, namespace, name, identity] = process.argv.slice(2);
if (!kubeconfigPath || !namespace || !name || !identity) {
  console.error('usage: runtime-leader-child.ts <kubeconfig> <namespace> <lease> <identity>');
  process.exit(2);
}
const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(kubeconfigPath);

function report(event: string): void {
  process.stdout.write(`${JSON.stringify({ event, identity, at: Date.now() })}\n`);
}
const elector = new LeaderElector({
  kubeConfig,
  namespace,
  name,
  identity,
  log: createLogger({ level: 'warn', destination: process.stderr }),
});
process.on('SIGTERM', () => {
  elector.stop().then(
    () => {
      report('exiting');
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});
report('started');
await elector.run({
  onStartedLeading: () => report('leading'),
  onStoppedLeading: () => report('stopped'),
});
