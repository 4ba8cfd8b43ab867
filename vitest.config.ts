import { defineConfig } from 'vitest/config';

// Two projects: `unit` (everything that starts its own servers, or none) and `kube`, whose global setup
// starts one real etcd + kube-apiserver + kube-controller-manager shared by its test files.
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 600_000,
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['**/*.test.ts'],
          exclude: ['node_modules/**', 'test/kube/**', 'test/e2e/**'],
        },
      },
      {
        extends: true,
        test: {
          name: 'kube',
          include: ['test/kube/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/stack/vitest-kube.ts'],
          fileParallelism: false,
        },
      },
    ],
  },
});
