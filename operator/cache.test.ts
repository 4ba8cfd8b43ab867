import { describe, expect, it } from 'vitest';
import { slimForCache } from './manager.ts';

describe('slimForCache', () => {
  it("drops managedFields everywhere and the containers' env of Jobs and Pods, keeping what is read", () => {
    const container = { name: 'runner', image: 'i', env: [{ name: 'SYNCLINE_RUN_PLAN', value: '{}' }] };
    const job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'j', labels: { a: 'b' }, managedFields: [{ manager: 'x' }] },
      spec: { activeDeadlineSeconds: 60, template: { spec: { containers: [container] } } },
      status: { active: 1 },
    };
    const slim = slimForCache(job) as typeof job;
    expect(slim.metadata).toEqual({ name: 'j', labels: { a: 'b' } });
    expect(slim.spec.activeDeadlineSeconds).toBe(60);
    expect(slim.spec.template.spec.containers).toEqual([{ name: 'runner', image: 'i' }]);
    expect(slim.status).toEqual({ active: 1 });
    // The object the watch delivered is not changed.
    expect(job.spec.template.spec.containers[0]!.env).toHaveLength(1);

    const podObject = { kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [container] } };
    const pod = slimForCache(podObject) as typeof podObject;
    expect(pod.spec.containers).toEqual([{ name: 'runner', image: 'i' }]);

    const sync = { kind: 'Sync', metadata: { name: 's', managedFields: [] }, spec: { mode: 'upsert' } };
    expect(slimForCache(sync)).toEqual({ kind: 'Sync', metadata: { name: 's' }, spec: { mode: 'upsert' } });
  });
});
