import { describe, expect, it } from 'vitest';
import { runPlan } from '../core/plan.ts';
import { RUN_TRIGGERS } from '../crds/index.ts';
import { defaultConfig } from './config.ts';
import {
  boundedName,
  buildCheckJob,
  buildRunJob,
  checkJobName,
  collectSecretRefs,
  CONFIGMAP_DIR,
  runJobName,
} from './jobs.ts';
import { buildCheckPlan, buildRunPlan } from './run-plan.ts';
import { runnerDiffStore } from './runner-policy.ts';
import { decide } from './schedule.ts';
import { destination, model, source, sync } from './testdata/fixtures.ts';

const config = defaultConfig({ runnerImage: 'registry.example.com/syncline:1.0.0' });

const storeSettings = {
  url: 's3://bucket/syncline',
  s3: {
    accessKeyId: { secretKeyRef: { name: 'store', key: 'id' } },
    secretAccessKey: { secretKeyRef: { name: 'store', key: 'secret' } },
  },
};

function runJob(over = {}, m = model(), jobConfig = config) {
  const s = sync(over);
  const start = decide({
    now: new Date('2025-03-01T10:00:00Z'),
    createdAt: new Date('2025-03-01T10:00:00Z'),
    schedule: s.spec.schedule,
    paused: false,
    annotations: {},
    status: {},
    active: false,
    blocked: false,
  }).start!;
  const plan = buildRunPlan({
    runId: runJobName(s.metadata.name, start.key),
    sync: s,
    model: m,
    source: source(),
    destination: destination(),
    start,
    diffStore: runnerDiffStore({ ...jobConfig, diffStore: storeSettings }, s),
  });
  return { plan, job: buildRunJob({ sync: s, plan, start, config: jobConfig }), start };
}

describe('run Jobs', () => {
  it('has a deterministic name within 63 characters', () => {
    expect(runJobName('customers-to-crm', 's-abc')).toBe('customers-to-crm-s-abc');
    const long = 'a'.repeat(70);
    const name = runJobName(long, 's-abc');
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toBe(runJobName(long, 's-abc'));
    expect(runJobName(`${long}x`, 's-abc')).not.toBe(name);
    expect(boundedName('x.y-'.repeat(20), 'k')).toMatch(/^[a-z0-9][-a-z0-9.]*[a-z0-9]$/);
    expect(checkJobName('Source', 'warehouse', 'abcd1234')).toBe('warehouse-src-check-abcd1234');
  });

  it('fixes the run plan in env and passes credentials only as secretKeyRefs', () => {
    const { job, plan } = runJob();
    const container = job.spec!.template.spec!.containers[0]!;
    const env = Object.fromEntries(container.env!.map((e) => [e.name, e]));
    expect(runPlan.parse(JSON.parse(env['SYNCLINE_RUN_PLAN']!.value!))).toEqual(plan);
    expect(env['SYNCLINE_SECRET_PG__PASSWORD']!.valueFrom!.secretKeyRef).toEqual({
      name: 'pg',
      key: 'password',
      optional: false,
    });
    expect(env['SYNCLINE_SECRET_CRM__TOKEN']!.valueFrom!.secretKeyRef).toEqual({
      name: 'crm',
      key: 'token',
      optional: false,
    });
    expect(env['SYNCLINE_SECRET_STORE__SECRET']).toBeDefined();
    for (const e of container.env!)
      expect(e.value === undefined || !e.value.includes('"password":"')).toBe(true);
    expect(container.command).toEqual(['node']);
    expect(container.args).toEqual(['/app/bin/syncline.mjs', 'job']);
  });

  it('is owned by the Sync, runs once, and is locked down', () => {
    const { job } = runJob({
      runner: { activeDeadlineSeconds: 600, resources: { limits: { memory: '1Gi' } } },
    });
    expect(job.metadata!.ownerReferences).toEqual([
      {
        apiVersion: 'syncline.io/v1alpha1',
        kind: 'Sync',
        name: 'customers-to-crm',
        uid: 'uid-sync',
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    expect(job.spec).toMatchObject({
      backoffLimit: 0,
      activeDeadlineSeconds: 600,
      ttlSecondsAfterFinished: 86_400,
    });
    const pod = job.spec!.template.spec!;
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.containers[0]!.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(pod.containers[0]!.resources).toEqual({ limits: { memory: '1Gi' } });
    expect(job.metadata!.labels).toMatchObject({
      'app.kubernetes.io/managed-by': 'syncline',
      'syncline.io/sync': 'customers-to-crm',
      'syncline.io/component': 'run',
    });
    expect(job.spec!.template.metadata!.labels).toEqual(job.metadata!.labels);
  });

  it('uses the operator defaults when the Sync sets none', () => {
    const { job } = runJob();
    expect(job.spec!.activeDeadlineSeconds).toBe(3600);
    expect(job.spec!.template.spec!.containers[0]!.resources).toEqual(config.runner.resources);
  });

  it('bounds /tmp: an emptyDir as large as the ephemeral-storage limit, which the defaults set', () => {
    const pod = runJob().job.spec!.template.spec!;
    expect(pod.containers[0]!.resources).toMatchObject({
      requests: { 'ephemeral-storage': '1Gi' },
      limits: { 'ephemeral-storage': '10Gi' },
    });
    expect(pod.volumes!.find((v) => v.name === 'tmp')).toEqual({
      name: 'tmp',
      emptyDir: { sizeLimit: '10Gi' },
    });
    const own = runJob({ runner: { resources: { limits: { 'ephemeral-storage': '30Gi' } } } });
    expect(own.job.spec!.template.spec!.volumes![0]).toEqual({
      name: 'tmp',
      emptyDir: { sizeLimit: '30Gi' },
    });
  });

  it('caps what a Sync leaves unlimited at the maximum, and refuses to build a Job above one', () => {
    const capped = defaultConfig({
      ...config,
      runner: {
        ...config.runner,
        maxResources: { memory: '4Gi', 'ephemeral-storage': '20Gi' },
        maxActiveDeadlineSeconds: 7200,
      },
    });
    const { job } = runJob({ runner: { resources: { requests: { memory: '3Gi' } } } }, model(), capped);
    expect(job.spec!.template.spec!.containers[0]!.resources).toEqual({
      requests: { memory: '3Gi' },
      limits: { memory: '4Gi', 'ephemeral-storage': '20Gi' },
    });
    expect(job.spec!.template.spec!.volumes![0]).toEqual({ name: 'tmp', emptyDir: { sizeLimit: '20Gi' } });
    expect(() =>
      runJob({ runner: { resources: { limits: { memory: '5Gi' } } } }, model(), capped),
    ).toThrowError(expect.objectContaining({ reason: 'RunnerResourcesAboveMaximum' }));
    expect(() => runJob({ runner: { activeDeadlineSeconds: 9000 } }, model(), capped)).toThrowError(
      expect.objectContaining({ reason: 'RunnerDeadlineAboveMaximum' }),
    );
  });

  it("gives runner pods their namespace's diff-store Secret, and never the operator's", () => {
    const tenant = defaultConfig({ ...config, diffStoreNamespaceSecret: 'syncline-diffstore' });
    const { job, plan } = runJob({}, model(), tenant);
    const env = job.spec!.template.spec!.containers[0]!.env!;
    const refs = env.filter((e) => e.valueFrom?.secretKeyRef).map((e) => e.valueFrom!.secretKeyRef!.name);
    expect(refs).toContain('syncline-diffstore');
    expect(refs).not.toContain('store');
    expect(env.find((e) => e.name === 'SYNCLINE_SECRET_SYNCLINE_DIFFSTORE__SECRETACCESSKEY')).toEqual({
      name: 'SYNCLINE_SECRET_SYNCLINE_DIFFSTORE__SECRETACCESSKEY',
      valueFrom: { secretKeyRef: { name: 'syncline-diffstore', key: 'secretAccessKey', optional: false } },
    });
    expect(plan.diffStore.s3?.accessKeyId).toEqual({
      secretKeyRef: { name: 'syncline-diffstore', key: 'accessKeyId' },
    });
    // The Job lives in the Sync's namespace, so the kubelet resolves that namespace's Secret.
    expect(job.metadata!.namespace).toBe('team');
  });

  it('keeps a Sync in its namespace part of the store', () => {
    expect(runJob({ diffStore: { url: 's3://bucket/syncline/team/v2' } }).plan.diffStore.url).toBe(
      's3://bucket/syncline/team/v2',
    );
    expect(() => runJob({ diffStore: { url: 's3://bucket/syncline/other-team' } })).toThrowError(
      expect.objectContaining({ reason: 'DiffStoreOutsideNamespace' }),
    );
  });

  it('builds check Jobs with the check plan', () => {
    const target = source();
    const job = buildCheckJob({
      target,
      plan: buildCheckPlan(target),
      name: 'warehouse-src-check-1',
      checkHash: 'h',
      config,
    });
    const env = Object.fromEntries(job.spec!.template.spec!.containers[0]!.env!.map((e) => [e.name, e]));
    expect(JSON.parse(env['SYNCLINE_CHECK_PLAN']!.value!)).toMatchObject({
      kind: 'CheckPlan',
      target: { kind: 'Source', name: 'warehouse' },
    });
    expect(env['SYNCLINE_SECRET_PG__PASSWORD']).toBeDefined();
    expect(job.spec!.template.spec!.containers[0]!.args).toEqual(['/app/bin/syncline.mjs', 'check']);
    expect(job.spec!.activeDeadlineSeconds).toBe(120);
    expect(job.spec!.template.spec!.volumes![0]).toEqual({ name: 'tmp', emptyDir: { sizeLimit: '1Gi' } });
  });

  it('collects every secretKeyRef once', () => {
    const refs = collectSecretRefs({
      a: { secretKeyRef: { name: 's', key: 'k' } },
      b: [{ valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }],
    });
    expect(refs).toEqual([{ name: 's', key: 'k' }]);
  });

  it('builds a plan the runner accepts for every trigger (a retry once failed as InvalidRunPlan)', () => {
    for (const trigger of RUN_TRIGGERS) {
      const plan = buildRunPlan({
        runId: runJobName('customers-to-crm', 't-abc'),
        sync: sync(),
        model: model(),
        source: source(),
        destination: destination(),
        start: { trigger, fullResync: false },
        diffStore: { url: 'file:///x' },
      });
      expect(plan.trigger).toBe(trigger);
    }
  });

  it('rejects a plan the runner would reject, with a reason', () => {
    expect(() =>
      buildRunPlan({
        runId: '',
        sync: sync(),
        model: model(),
        source: source(),
        destination: destination(),
        start: { trigger: 'manual', fullResync: false },
        diffStore: { url: 'file:///x' },
      }),
    ).toThrowError(expect.objectContaining({ reason: 'InvalidRunPlan' }));
  });
  it('mounts the ConfigMap of a dbt manifest read-only where the runner reads it', () => {
    const dbtModel = model();
    dbtModel.spec = {
      sourceRef: { name: 'warehouse' },
      dbt: { model: 'customers', manifest: { configMapRef: { name: 'dbt.manifest', key: 'manifest.json' } } },
      primaryKey: 'id',
    };
    const { job } = runJob({}, dbtModel);
    const pod = job.spec!.template.spec!;
    const mount = pod.containers[0]!.volumeMounts!.find((m) => m.mountPath.startsWith(CONFIGMAP_DIR));
    expect(mount).toMatchObject({ mountPath: '/etc/syncline/configmaps/dbt.manifest', readOnly: true });
    expect(mount!.name).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    expect(pod.volumes!.find((v) => v.name === mount!.name)).toEqual({
      name: mount!.name,
      configMap: { name: 'dbt.manifest' },
    });
    // The runner reads $SYNCLINE_CONFIGMAP_DIR/<name>/<key>, by default under CONFIGMAP_DIR.
    expect(`${mount!.mountPath}/manifest.json`).toBe('/etc/syncline/configmaps/dbt.manifest/manifest.json');

    const plain = runJob().job.spec!.template.spec!;
    expect(plain.volumes!.map((v) => v.name)).toEqual(['tmp']);
    expect(plain.containers[0]!.volumeMounts!.map((m) => m.mountPath)).toEqual(['/tmp']);
  });
});
