import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadKubeAccess } from './kubeconfig.ts';

function kubeconfig(dir: string, user: string): string {
  const path = join(dir, 'kubeconfig');
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'current-context: main',
      'contexts:',
      '- name: main',
      '  context: { cluster: c1, user: u1 }',
      '- name: other',
      '  context: { cluster: c2, user: u1 }',
      'clusters:',
      '- name: c1',
      '  cluster: { server: "https://127.0.0.1:6443", certificate-authority: ca.crt, tls-server-name: kube.local }',
      '- name: c2',
      '  cluster: { server: "https://10.0.0.1" }',
      'users:',
      '- name: u1',
      `  user: ${user}`,
    ].join('\n'),
  );
  return path;
}

describe('loadKubeAccess', () => {
  it('reads the current context of a kubeconfig with static credentials, files relative to it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'syncline-kubeconfig-'));
    writeFileSync(join(dir, 'ca.crt'), 'CA PEM');
    writeFileSync(join(dir, 'token'), 'file-token\n');
    const access = await loadKubeAccess(kubeconfig(dir, '{ tokenFile: token, client-key-data: a2V5 }'), {});
    expect(access.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
    const options: Record<string, unknown> & { headers: Record<string, unknown> } = { headers: { x: '1' } };
    await access.applyToHTTPSOptions(options);
    expect(String(options['ca'])).toBe('CA PEM');
    expect(String(options['key'])).toBe('key');
    expect(options['servername']).toBe('kube.local');
    expect(options.headers).toEqual({ x: '1', Authorization: 'Bearer file-token' });
  });

  it("hands kubeconfigs with exec plugins to client-node's KubeConfig", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'syncline-kubeconfig-'));
    writeFileSync(join(dir, 'ca.crt'), 'CA PEM');
    const access = await loadKubeAccess(
      kubeconfig(dir, '{ exec: { apiVersion: client.authentication.k8s.io/v1, command: "true" } }'),
      {},
    );
    expect(access.constructor.name).toBe('KubeConfig');
    expect(access.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
  });

  it('says which kubeconfig it could not read', async () => {
    await expect(loadKubeAccess('/nonexistent/kubeconfig', {})).rejects.toThrow(/\/nonexistent\/kubeconfig/);
  });
});
