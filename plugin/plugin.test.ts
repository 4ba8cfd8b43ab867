import { describe, expect, it } from 'vitest';
import { secretRefs } from './commands.ts';
import { duration, relative, render, table } from './format.ts';
import { main } from './main.ts';

describe('kubectl syncline output', () => {
  it('pads tables like kubectl', () => {
    expect(
      table(
        ['NAME', 'READY'],
        [
          ['contacts', 'True'],
          ['a', 'False'],
        ],
      ),
    ).toBe('NAME       READY\ncontacts   True\na          False');
  });

  it('renders JSON, YAML or text', () => {
    const data = { items: [{ name: 'contacts' }] };
    expect(JSON.parse(render('json', data, () => 'x'))).toEqual(data);
    expect(render('yaml', data, () => 'x')).toBe('items:\n  - name: contacts');
    expect(render('text', data, () => 'the text')).toBe('the text');
  });

  it('says times relative to now', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    expect(relative('2026-01-01T11:57:00Z', now)).toBe('3m ago');
    expect(relative('2026-01-01T14:00:00Z', now)).toBe('in 2h');
    expect(relative(undefined, now)).toBe('-');
    expect(duration('2026-01-01T12:00:00Z', '2026-01-01T12:01:30Z')).toBe('1m30s');
  });

  it('finds every secretKeyRef a plan needs', () => {
    const spec = {
      postgres: { password: { secretKeyRef: { name: 'pg', key: 'password' } } },
      http: { headers: [{ valueFrom: { secretKeyRef: { name: 'crm', key: 'token' } } }] },
    };
    expect(secretRefs(spec)).toEqual([
      { name: 'pg', key: 'password' },
      { name: 'crm', key: 'token' },
    ]);
  });
});

describe('kubectl syncline errors', () => {
  it('an unknown command exits 2 and points at --help', async () => {
    const lines: string[] = [];
    const stderr = process.stderr.write;
    process.stderr.write = ((chunk: string) =>
      lines.push(chunk) > 0) as unknown as typeof process.stderr.write;
    try {
      expect(await main(['node', 'kubectl-syncline', 'frob'], { out: (t) => lines.push(t) })).toBe(2);
    } finally {
      process.stderr.write = stderr;
    }
    expect(lines.join('')).toContain("unknown command 'frob'");
  });

  it('a missing kubeconfig is one line that says so', async () => {
    const lines: string[] = [];
    const stderr = process.stderr.write;
    process.stderr.write = ((chunk: string) =>
      lines.push(chunk) > 0) as unknown as typeof process.stderr.write;
    try {
      const code = await main(
        ['node', 'kubectl-syncline', 'status', '--kubeconfig', '/nonexistent/kubeconfig'],
        { out: (t) => lines.push(t) },
      );
      expect(code).toBe(1);
    } finally {
      process.stderr.write = stderr;
    }
    expect(lines.join('')).toMatch(
      /^error: cannot read your kubeconfig: .*\/nonexistent\/kubeconfig.* \(KubeConfigInvalid\)\n$/,
    );
  });
});
