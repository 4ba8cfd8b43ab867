import { describe, expect, it } from 'vitest';
import { defaultConfig } from './config.ts';
import { configFromFlags, operatorCommand, type OperatorFlags } from './main.ts';
import {
  parseQuantity,
  resourcesProblem,
  runnerDiffStore,
  runnerResources,
  runnerSettingsProblem,
  syncDiffStoreUrl,
} from './runner-policy.ts';
import { validateSync } from './validation.ts';
import { destination, httpCapabilities, model, sync } from './testdata/fixtures.ts';

const s3Config = defaultConfig({
  diffStore: {
    url: 's3://state/syncline',
    s3: {
      region: 'eu-west-1',
      accessKeyId: { secretKeyRef: { name: 'operator-store', key: 'id' } },
      secretAccessKey: { secretKeyRef: { name: 'operator-store', key: 'secret' } },
    },
  },
});

const withStore = (url: string) => sync({ diffStore: { url } });

describe('Kubernetes quantities', () => {
  it.each([
    ['500m', '0.5'],
    ['1.5Gi', '1610612736'],
    ['2G', '2000000000'],
    ['1e3', '1000'],
    ['.5', '0.5'],
    ['128974848', '128974848'],
    ['129e6', '129000000'],
    ['123Mi', '128974848'],
  ])('%s is exactly %s', (text, value) => {
    const a = parseQuantity(text)!;
    const b = parseQuantity(value)!;
    expect(a.num * b.den).toBe(b.num * a.den);
  });

  it.each(['', 'lots', '1 Gi', '1GiB', '--1', '1e999'])('%j is not a quantity', (text) => {
    expect(parseQuantity(text)).toBeUndefined();
  });

  it('compares across units, exactly (1Gi is more than 1G)', () => {
    expect(resourcesProblem({ limits: { memory: '1Gi' } }, { memory: '1G' }, 'x')).toContain(
      'x.limits.memory is 1Gi, above the maximum of 1G',
    );
    expect(resourcesProblem({ limits: { memory: '1G' } }, { memory: '1Gi' }, 'x')).toBeUndefined();
    expect(resourcesProblem({ requests: { cpu: '2001m' } }, { cpu: '2' }, 'x')).toContain('requests.cpu');
    expect(resourcesProblem({ requests: { cpu: '2000m' } }, { cpu: '2' }, 'x')).toBeUndefined();
  });
});

describe('runner maximums', () => {
  const config = defaultConfig({
    runner: {
      ...defaultConfig().runner,
      maxResources: { memory: '4Gi', cpu: '2', 'ephemeral-storage': '20Gi' },
      maxActiveDeadlineSeconds: 7200,
    },
  });

  it('refuses a Sync asking for more memory than the maximum, naming the field and the limit', () => {
    const problem = runnerSettingsProblem(
      config,
      sync({ runner: { resources: { limits: { memory: '8Gi' } } } }),
    );
    expect(problem).toEqual({
      reason: 'RunnerResourcesAboveMaximum',
      message:
        'spec.runner.resources.limits.memory is 8Gi, above the maximum of 4Gi that the operator allows ' +
        '(--runner-max-resources): lower it, or ask an administrator to raise the maximum',
    });
  });

  it('refuses a deadline above the maximum, and a quantity that is none', () => {
    expect(runnerSettingsProblem(config, sync({ runner: { activeDeadlineSeconds: 7201 } }))?.reason).toBe(
      'RunnerDeadlineAboveMaximum',
    );
    expect(runnerSettingsProblem(config, sync({ runner: { activeDeadlineSeconds: 7200 } }))).toBeUndefined();
    expect(
      runnerSettingsProblem(config, sync({ runner: { resources: { requests: { cpu: 'two' } } } }))?.reason,
    ).toBe('InvalidRunnerResources');
  });

  it('a resource with a maximum and no limit gets the maximum as its limit', () => {
    const resources = runnerResources(config, sync({ runner: { resources: { requests: { cpu: '1' } } } }));
    expect(resources).toEqual({
      requests: { cpu: '1' },
      limits: { memory: '4Gi', cpu: '2', 'ephemeral-storage': '20Gi' },
    });
    // Without maximums, the Sync's resources are used as they are (they replace the defaults).
    expect(
      runnerResources(defaultConfig(), sync({ runner: { resources: { requests: { cpu: '1' } } } })),
    ).toEqual({ requests: { cpu: '1' } });
  });

  it('makes the Sync Stalled in validation, before any reference that is merely not Ready', () => {
    const verdict = validateSync(
      sync({ runner: { resources: { requests: { memory: '5Gi' } } } }),
      {
        model: model({ conditions: [] }),
        destination: destination({ conditions: [] }),
        dependencies: [],
        capabilities: httpCapabilities,
        lookupSync: () => undefined,
      },
      config,
    );
    expect(verdict).toMatchObject({ ok: false, stalled: true, reason: 'RunnerResourcesAboveMaximum' });
  });
});

describe("a Sync's diff store stays within its namespace's prefix", () => {
  it('defaults to the operator store; the runner appends <namespace>/<sync>', () => {
    expect(syncDiffStoreUrl(s3Config, sync())).toBe('s3://state/syncline');
  });

  it.each(['s3://state/syncline/team', 's3://state/syncline/team/', 's3://state/syncline/team/archive/v2'])(
    'allows %s',
    (url) => {
      expect(syncDiffStoreUrl(s3Config, withStore(url))).toBe(url.replace(/\/$/, ''));
    },
  );

  it.each([
    ['another namespace', 's3://state/syncline/other'],
    ['a namespace whose name starts the same', 's3://state/syncline/team-b'],
    ['the whole store', 's3://state/syncline'],
    ['another bucket', 's3://elsewhere/syncline/team'],
    ['another scheme', 'gs://state/syncline/team'],
    ['a local path', 'file:///var/lib/syncline/diffstore/team'],
  ])('refuses %s', (_what, url) => {
    expect(() => syncDiffStoreUrl(s3Config, withStore(url))).toThrowError(
      expect.objectContaining({
        reason: 'DiffStoreOutsideNamespace',
        message: expect.stringContaining('use s3://state/syncline/team or a folder under it'),
      }),
    );
  });

  it('refuses paths that climb out, on every scheme', () => {
    expect(() => syncDiffStoreUrl(s3Config, withStore('s3://state/syncline/team/../other'))).toThrowError(
      expect.objectContaining({ reason: 'InvalidDiffStoreUrl' }),
    );
    const local = defaultConfig({ diffStore: { url: 'file:///var/lib/syncline/diffstore' } });
    expect(syncDiffStoreUrl(local, withStore('file:///var/lib/syncline/diffstore/team/x'))).toBe(
      'file:///var/lib/syncline/diffstore/team/x',
    );
    expect(() =>
      syncDiffStoreUrl(local, withStore('file:///var/lib/syncline/diffstore/team/../other')),
    ).toThrowError(expect.objectContaining({ reason: 'DiffStoreOutsideNamespace' }));
  });
});

describe('per-namespace diff-store credentials', () => {
  it("give runner pods the namespace's Secret, not the operator's credential", () => {
    const config = { ...s3Config, diffStoreNamespaceSecret: 'syncline-diffstore' };
    expect(runnerDiffStore(config, sync())).toEqual({
      url: 's3://state/syncline',
      s3: {
        region: 'eu-west-1',
        accessKeyId: { secretKeyRef: { name: 'syncline-diffstore', key: 'accessKeyId' } },
        secretAccessKey: { secretKeyRef: { name: 'syncline-diffstore', key: 'secretAccessKey' } },
      },
    });
    const gcs = defaultConfig({
      diffStore: {
        url: 'gs://state/p',
        gcs: { serviceAccountKey: { secretKeyRef: { name: 'op', key: 'k' } } },
      },
      diffStoreNamespaceSecret: 'syncline-diffstore',
    });
    expect(runnerDiffStore(gcs, sync()).gcs).toEqual({
      serviceAccountKey: { secretKeyRef: { name: 'syncline-diffstore', key: 'serviceAccountKey' } },
    });
  });

  it('without one, runners share the operator-wide settings (one credential for every namespace)', () => {
    expect(runnerDiffStore(s3Config, withStore('s3://state/syncline/team/x'))).toEqual({
      ...s3Config.diffStore,
      url: 's3://state/syncline/team/x',
    });
  });
});

describe('operator flags', () => {
  const flags = (args: string[]) =>
    configFromFlags(
      operatorCommand()
        .parse(['node', 'operator', ...args])
        .opts<OperatorFlags>(),
    );

  it('read the maximums, the namespace Secret and keep the defaults within the maximums', () => {
    const config = flags([
      '--runner-max-resources',
      '{"memory":"16Gi","ephemeral-storage":"50Gi"}',
      '--runner-max-deadline-seconds',
      '7200',
      '--diff-store-namespace-secret',
      'syncline-diffstore',
    ]);
    expect(config.runner.maxResources).toEqual({ memory: '16Gi', 'ephemeral-storage': '50Gi' });
    expect(config.runner.maxActiveDeadlineSeconds).toBe(7200);
    expect(config.diffStoreNamespaceSecret).toBe('syncline-diffstore');
  });

  it.each([
    [['--runner-max-resources', '{"memory":"lots"}'], '"memory" is "lots", not a Kubernetes quantity'],
    [['--runner-max-resources', '["4Gi"]'], 'must be a JSON object'],
    [
      ['--runner-max-resources', '{"memory":"1Gi"}'],
      '--runner-resources.limits.memory is 2Gi, above the maximum of 1Gi',
    ],
    [
      ['--runner-max-deadline-seconds', '600'],
      '--runner-deadline-seconds (3600) is above --runner-max-deadline-seconds (600)',
    ],
  ])('refuse %j', (args, message) => {
    expect(() => flags(args)).toThrowError(
      expect.objectContaining({ reason: 'InvalidFlag', message: expect.stringContaining(message) }),
    );
  });
});
