// A stand-in for the kubelet, for tests only: no container runtime can run here (no Docker, no
// containerd), so this agent plays the kubelet's part for the pods of the operator's Jobs. It watches
// Pods on the API server, resolves their env the way a kubelet does (Secrets and ConfigMaps; a missing
// Secret or key leaves the pod waiting with CreateContainerConfigError), runs the container's command as
// a local process, and writes the pod status back: Pending -> Running -> Succeeded/Failed, with the
// container's exit code, reason and termination message.
import type { KubeConfig, V1Container, V1EnvVar, V1Pod } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Informer } from '../../operator/runtime/informer.ts';
import { kubeRequest, resourcePath } from '../../operator/runtime/kubeapi.ts';
import { createLogger, type Logger } from '../../core/logger.ts';
import { REPO_DIR } from '../stack/paths.ts';

export interface AgentOptions {
  kubeConfig: KubeConfig;
  /** Only pods of this namespace; all namespaces when omitted. */
  namespace?: string;
  labelSelector?: string;
  /** What `/app/` in a command stands for (default: the repository). */
  appDir?: string;
  /** The Node binary that `node` in a command runs (default: the repository's Node 24). */
  nodeBinary?: string;
  /** Images the "registry" does not have: their pods wait in ImagePullBackOff. */
  unpullable?: (image: string) => boolean;
  /** How often a waiting pod's env is resolved again (a kubelet retries with backoff). */
  retryMs?: number;
  log?: Logger;
}

interface Running {
  child?: ChildProcess;
  stopped: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

class EnvError extends Error {}

const MESSAGE_LIMIT = 4096;

export class Agent {
  private readonly options: AgentOptions;
  private readonly informer: Informer<V1Pod>;
  private readonly pods = new Map<string, Running>();
  private readonly log: Logger;
  private readonly workDir = mkdtempSync(join(tmpdir(), 'syncline-agent-'));
  /** Pods run to completion, by name, for tests to assert on. */
  readonly finished: { name: string; exitCode: number }[] = [];

  constructor(options: AgentOptions) {
    this.options = options;
    this.log = options.log ?? createLogger({ name: 'syncline-test-agent', level: 'warn' });
    this.informer = new Informer<V1Pod>({
      kubeConfig: options.kubeConfig,
      group: '',
      version: 'v1',
      plural: 'pods',
      ...(options.namespace ? { namespace: options.namespace } : {}),
      labelSelector: options.labelSelector ?? 'app.kubernetes.io/managed-by=syncline',
      log: this.log,
    });
    this.informer.onAdd((pod) => this.consider(pod));
    this.informer.onUpdate((_old, pod) => this.consider(pod));
    this.informer.onDelete((pod) => this.forget(pod));
  }

  async start(): Promise<void> {
    await this.informer.start();
  }

  async stop(): Promise<void> {
    this.informer.stop();
    for (const running of this.pods.values()) {
      running.stopped = true;
      if (running.timer) clearTimeout(running.timer);
      running.child?.kill('SIGKILL');
    }
    this.pods.clear();
    rmSync(this.workDir, { recursive: true, force: true });
  }

  private key(pod: V1Pod): string {
    return `${pod.metadata?.namespace}/${pod.metadata?.name}/${pod.metadata?.uid}`;
  }

  private consider(pod: V1Pod): void {
    const phase = pod.status?.phase;
    if (pod.metadata?.deletionTimestamp) return this.forget(pod);
    if (phase === 'Succeeded' || phase === 'Failed') return;
    const key = this.key(pod);
    if (this.pods.has(key)) return;
    const running: Running = { stopped: false };
    this.pods.set(key, running);
    void this.runPod(pod, running).catch((error: unknown) => {
      this.log.error({ pod: pod.metadata?.name, err: String(error) }, 'agent failed to run a pod');
    });
  }

  private forget(pod: V1Pod): void {
    const running = this.pods.get(this.key(pod));
    if (!running) return;
    running.stopped = true;
    if (running.timer) clearTimeout(running.timer);
    // Deleting a pod stops its containers, as the kubelet does (SIGTERM, then SIGKILL).
    running.child?.kill('SIGTERM');
    setTimeout(() => running.child?.kill('SIGKILL'), 2000).unref();
  }

  private async patchStatus(pod: V1Pod, status: Record<string, unknown>): Promise<boolean> {
    const path =
      resourcePath(
        { group: '', version: 'v1', plural: 'pods', namespace: pod.metadata?.namespace ?? 'default' },
        pod.metadata?.name,
      ) + '/status';
    const res = await kubeRequest(this.options.kubeConfig, {
      method: 'PATCH',
      path,
      body: { status },
      contentType: 'application/merge-patch+json',
    });
    return res.status === 200;
  }

  private async getObject(
    plural: 'secrets' | 'configmaps',
    namespace: string,
    name: string,
  ): Promise<Record<string, string> | undefined> {
    const res = await kubeRequest<{ data?: Record<string, string> }>(this.options.kubeConfig, {
      method: 'GET',
      path: resourcePath({ group: '', version: 'v1', plural, namespace }, name),
    });
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`reading ${plural}/${name}: HTTP ${res.status}`);
    const data = res.body.data ?? {};
    if (plural === 'configmaps') return data;
    return Object.fromEntries(
      Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
    );
  }

  /** The container's env as a kubelet builds it; throws EnvError with the kubelet's own message. */
  private async resolveEnv(pod: V1Pod, container: V1Container): Promise<Record<string, string>> {
    const namespace = pod.metadata?.namespace ?? 'default';
    const env: Record<string, string> = {};
    for (const variable of container.env ?? ([] as V1EnvVar[])) {
      if (variable.value !== undefined) env[variable.name] = variable.value;
      const from = variable.valueFrom;
      if (!from) continue;
      if (from.secretKeyRef) {
        const { name = '', key, optional } = from.secretKeyRef;
        const data = await this.getObject('secrets', namespace, name);
        if (!data) {
          if (optional) continue;
          throw new EnvError(`secret "${name}" not found`);
        }
        if (data[key] === undefined) {
          if (optional) continue;
          throw new EnvError(`couldn't find key ${key} in Secret ${namespace}/${name}`);
        }
        env[variable.name] = data[key];
      } else if (from.configMapKeyRef) {
        const { name = '', key, optional } = from.configMapKeyRef;
        const data = await this.getObject('configmaps', namespace, name);
        if (!data || data[key] === undefined) {
          if (optional) continue;
          throw new EnvError(
            data
              ? `couldn't find key ${key} in ConfigMap ${namespace}/${name}`
              : `configmap "${name}" not found`,
          );
        }
        env[variable.name] = data[key];
      } else if (from.fieldRef) {
        const field = from.fieldRef.fieldPath;
        if (field === 'metadata.name') env[variable.name] = pod.metadata?.name ?? '';
        if (field === 'metadata.namespace') env[variable.name] = namespace;
      }
    }
    return env;
  }

  private async runPod(pod: V1Pod, running: Running): Promise<void> {
    const container = pod.spec?.containers[0];
    if (!container) return;
    const name = container.name;
    const waiting = (reason: string, message: string) =>
      this.patchStatus(pod, {
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: new Date().toISOString() }],
        containerStatuses: [
          {
            name,
            ready: false,
            restartCount: 0,
            image: container.image,
            imageID: '',
            state: { waiting: { reason, message } },
          },
        ],
      });
    const retryMs = this.options.retryMs ?? 1000;

    // Image pull, then env: retried while the pod exists, as a kubelet does.
    let env: Record<string, string> | undefined;
    let attempt = 0;
    while (!running.stopped) {
      if (this.options.unpullable?.(container.image ?? '')) {
        await waiting(
          attempt === 0 ? 'ErrImagePull' : 'ImagePullBackOff',
          `Back-off pulling image "${container.image}"`,
        );
      } else {
        try {
          env = await this.resolveEnv(pod, container);
          break;
        } catch (error) {
          if (!(error instanceof EnvError)) throw error;
          await waiting('CreateContainerConfigError', error.message);
        }
      }
      attempt++;
      await new Promise<void>((resolve) => (running.timer = setTimeout(resolve, retryMs)));
    }
    if (running.stopped || !env) return;

    const appDir = this.options.appDir ?? REPO_DIR;
    const nodeBinary =
      this.options.nodeBinary ??
      (existsSync(join(REPO_DIR, 'node_modules/.bin/node'))
        ? join(REPO_DIR, 'node_modules/.bin/node')
        : process.execPath);
    const map = (part: string) => part.replaceAll('/app/', `${appDir.replace(/\/$/, '')}/`);
    const [command = 'node', ...args] = [...(container.command ?? []), ...(container.args ?? [])].map(map);
    const terminationLog = join(this.workDir, `${pod.metadata?.uid}.termination-log`);
    const startedAt = new Date().toISOString();
    await this.patchStatus(pod, {
      phase: 'Running',
      startTime: startedAt,
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: startedAt },
        { type: 'Ready', status: 'True', lastTransitionTime: startedAt },
      ],
      containerStatuses: [
        {
          name,
          ready: true,
          started: true,
          restartCount: 0,
          image: container.image,
          imageID: '',
          state: { running: { startedAt } },
        },
      ],
    });

    const output: Buffer[] = [];
    const child = spawn(command === 'node' ? nodeBinary : command, args, {
      cwd: appDir,
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: tmpdir(),
        ...env,
        SYNCLINE_TERMINATION_LOG: terminationLog,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.child = child;
    child.stdout?.on('data', (chunk: Buffer) => output.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => output.push(chunk));
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve) => {
        child.on('error', (error) => {
          output.push(Buffer.from(String(error)));
          resolve({ code: 127, signal: null });
        });
        child.on('exit', (c, s) => resolve({ code: c, signal: s }));
      },
    );
    const exitCode = code ?? (signal === 'SIGKILL' ? 137 : 143);
    let message = existsSync(terminationLog) ? readFileSync(terminationLog, 'utf8') : '';
    if (!message && exitCode !== 0 && container.terminationMessagePolicy === 'FallbackToLogsOnError') {
      message = Buffer.concat(output).toString('utf8').split('\n').slice(-80).join('\n');
    }
    message = message.slice(-MESSAGE_LIMIT);
    if (running.stopped) return;
    const finishedAt = new Date().toISOString();
    await this.patchStatus(pod, {
      phase: exitCode === 0 ? 'Succeeded' : 'Failed',
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: startedAt },
        { type: 'Ready', status: 'False', reason: 'PodCompleted', lastTransitionTime: finishedAt },
      ],
      containerStatuses: [
        {
          name,
          ready: false,
          started: false,
          restartCount: 0,
          image: container.image,
          imageID: '',
          state: {
            terminated: {
              exitCode,
              reason: exitCode === 0 ? 'Completed' : 'Error',
              ...(message ? { message } : {}),
              startedAt,
              finishedAt,
            },
          },
        },
      ],
    });
    this.finished.push({ name: pod.metadata?.name ?? '', exitCode });
    if (exitCode !== 0) {
      this.log.warn(
        { pod: pod.metadata?.name, exitCode, output: Buffer.concat(output).toString('utf8').slice(-2000) },
        'container failed',
      );
    }
  }
}
