import { describe, expect, it } from 'vitest';
import {
  containerMemoryLimit,
  defaultMemoryLimit,
  DEFAULT_MEMORY_LIMIT,
  openEmbeddedDuck,
  queryOne,
} from './duck.ts';

const files =
  (entries: Record<string, string>) =>
  (path: string): string | undefined =>
    entries[path];

describe('the default DuckDB memory limit', () => {
  it('is a share of the container limit, from cgroup v2 or v1', () => {
    expect(containerMemoryLimit(files({ '/sys/fs/cgroup/memory.max': '2147483648\n' }))).toBe(2147483648);
    expect(
      containerMemoryLimit(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '1073741824\n' })),
    ).toBe(1073741824);
    expect(defaultMemoryLimit(2 * 1024 ** 3)).toBe('614MiB');
    expect(defaultMemoryLimit(256 * 1024 ** 2)).toBe('128MiB');
    expect(defaultMemoryLimit(4 * 1024 ** 3)).toBe('1228MiB');
  });

  it('is the fixed default where the container has no limit', () => {
    expect(containerMemoryLimit(files({ '/sys/fs/cgroup/memory.max': 'max\n' }))).toBeUndefined();
    expect(
      containerMemoryLimit(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712' })),
    ).toBeUndefined();
    expect(containerMemoryLimit(files({}))).toBeUndefined();
    expect(defaultMemoryLimit(undefined)).toBe(DEFAULT_MEMORY_LIMIT);
  });

  it('is what an embedded DuckDB gets when nothing else is set', async () => {
    const duck = await openEmbeddedDuck();
    try {
      const row = await queryOne(duck.connection, "SELECT current_setting('memory_limit') AS limit");
      const expected = defaultMemoryLimit();
      // DuckDB prints the limit in its own units (e.g. 400.0 MiB).
      expect(String(row['limit'])).toBe(`${Number.parseInt(expected, 10)}.0 MiB`);
    } finally {
      duck.close();
    }
  });
});
