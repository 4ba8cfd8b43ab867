// Global setup of the vitest project "kube": one real control plane shared by the project's test files.
import type { TestProject } from 'vitest/node';
import { startKube, type KubeStack } from './kube.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    kubeconfigPath: string;
    kubeServer: string;
    /** The folder of the control plane's PKI: sa.key signs service-account tokens (a test may forge an expired one). */
    kubeDir: string;
  }
}

let stack: KubeStack | undefined;

export async function setup(project: TestProject): Promise<void> {
  const started = Date.now();
  const auditLogPath = process.env['SYNCLINE_KUBE_AUDIT_LOG'];
  stack = await startKube({
    controllerManager: true,
    log: (line) => console.log(`[stack] ${line}`),
    ...(auditLogPath ? { auditLogPath } : {}),
  });
  console.log(
    `[stack] control plane ready at ${stack.server} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  project.provide('kubeconfigPath', stack.kubeconfigPath);
  project.provide('kubeServer', stack.server);
  project.provide('kubeDir', stack.dir);
}

export async function teardown(): Promise<void> {
  await stack?.stop();
}
