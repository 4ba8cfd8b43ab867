import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SynclineMetrics } from '../../operator/metrics.ts';
import { RuntimeMetrics } from '../../operator/runtime/metrics.ts';
import { ensurePromtool } from '../stack/prometheus.ts';
import { run } from '../stack/process.ts';
import { metricNames, withoutGrafanaVariables } from './promql.ts';

const MONITORING = new URL('../../monitoring/', import.meta.url).pathname;

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RulesFile {
  groups: Array<{ name: string; rules: Rule[] }>;
}
interface UnitTests {
  tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
}
interface Panel {
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: Array<{ expr: string }>;
}

const rules = parse(readFileSync(join(MONITORING, 'alerts.yaml'), 'utf8')) as RulesFile;
const allRules = rules.groups.flatMap((g) => g.rules);
const alerts = allRules.filter((r) => r.alert);
const dashboard = JSON.parse(readFileSync(join(MONITORING, 'dashboard.json'), 'utf8')) as {
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; query: string | { query: string } }> };
};

/** Every series name the operator's registry exports, histograms with their _bucket/_sum/_count series. */
function exportedNames(): Set<string> {
  const registry = new Registry();
  new RuntimeMetrics({ registry });
  new SynclineMetrics(registry);
  const names = new Set<string>(['up']); // `up` is written by Prometheus for every target
  for (const metric of registry.getMetricsAsArray()) {
    const { name, type } = metric as unknown as { name: string; type: string };
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

let promtool: string;
let scratch: string;
beforeAll(async () => {
  promtool = await ensurePromtool();
  scratch = mkdtempSync(join(tmpdir(), 'syncline-monitoring-'));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('Prometheus alerts', () => {
  it('pass promtool check rules', async () => {
    const { stdout } = await run(promtool, ['check', 'rules', join(MONITORING, 'alerts.yaml')]);
    expect(stdout).toContain(`SUCCESS: ${allRules.length} rules found`);
  });

  it('pass their promtool unit tests', async () => {
    const { stdout } = await run(promtool, ['test', 'rules', 'alerts.test.yaml'], { cwd: MONITORING });
    expect(stdout).toContain('SUCCESS');
  });

  it('every alert has a unit test where it fires and one where it does not', () => {
    const tests = parse(readFileSync(join(MONITORING, 'alerts.test.yaml'), 'utf8')) as UnitTests;
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    const missing: string[] = [];
    for (const { alert } of alerts) {
      const own = cases.filter((c) => c.alertname === alert);
      if (!own.some((c) => c.exp_alerts.length > 0)) missing.push(`${alert}: no case where it fires`);
      if (!own.some((c) => c.exp_alerts.length === 0)) missing.push(`${alert}: no case where it stays quiet`);
    }
    expect(alerts.length).toBeGreaterThanOrEqual(8);
    expect(missing).toEqual([]);
  });

  it('every alert has a severity, a summary, a description and a runbook section', () => {
    const runbooks = readFileSync(join(MONITORING, 'runbooks.md'), 'utf8');
    for (const rule of alerts) {
      expect(['critical', 'warning'], rule.alert).toContain(rule.labels?.['severity']);
      expect(rule.annotations?.['summary'], rule.alert).toBeTruthy();
      expect(rule.annotations?.['description']?.length, rule.alert).toBeGreaterThan(80);
      const anchor = (rule.alert as string).toLowerCase();
      expect(rule.annotations?.['runbook_url'], rule.alert).toMatch(new RegExp(`runbooks\\.md#${anchor}$`));
      expect(runbooks, rule.alert).toContain(`## ${rule.alert}\n`);
    }
  });

  it('cover the cases the issue asks for', () => {
    const names = alerts.map((a) => a.alert);
    for (const wanted of [
      'SynclineSyncFailing',
      'SynclineSyncStale',
      'SynclineRowsRejected',
      'SynclineRunSlow',
      'SynclineOperatorDown',
      'SynclineOperatorNoLeader',
      'SynclineReconcileErrors',
    ]) {
      expect(names).toContain(wanted);
    }
  });

  it('read only metrics the operator exports (or rules record)', () => {
    const exported = exportedNames();
    const recorded = new Set(allRules.flatMap((r) => (r.record ? [r.record] : [])));
    const unknown = allRules.flatMap((r) =>
      metricNames(r.expr)
        .filter((name) => !exported.has(name) && !recorded.has(name))
        .map((name) => `${r.alert ?? r.record}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });
});

describe('Grafana dashboard', () => {
  const targets = dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
  );

  it('has the panels the issue asks for', () => {
    const titles = dashboard.panels.map((p) => p.title);
    for (const wanted of [
      'Runs by result',
      'Rows by operation',
      'Run duration percentiles',
      'Last success per Sync',
      'Work queue depth',
      'Reconcile errors',
    ]) {
      expect(titles).toContain(wanted);
    }
    expect(dashboard.uid).toBe('syncline-overview');
  });

  it('every query names a metric the operator exports', () => {
    const exported = exportedNames();
    const queries = [
      ...targets,
      ...dashboard.templating.list.flatMap((v) =>
        typeof v.query === 'object' ? [{ panel: `variable ${v.name}`, expr: v.query.query }] : [],
      ),
    ];
    expect(queries.length).toBeGreaterThan(15);
    const problems: string[] = [];
    for (const { panel, expr } of queries) {
      const plain = expr.replace(/^label_values\((.*),\s*\w+\)$/, '$1');
      const names = metricNames(withoutGrafanaVariables(plain));
      if (names.length === 0) problems.push(`${panel}: names no metric`);
      for (const name of names) if (!exported.has(name)) problems.push(`${panel}: ${name} is not exported`);
    }
    expect(problems).toEqual([]);
  });

  it('every query is valid PromQL (promtool parses it)', async () => {
    const file = join(scratch, 'dashboard-queries.yaml');
    const recordRules = targets.map((t, i) => ({
      record: `dashboard:query${i}`,
      expr: withoutGrafanaVariables(t.expr),
    }));
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: recordRules }] }));
    const { stdout } = await run(promtool, ['check', 'rules', file]);
    expect(stdout).toContain(`SUCCESS: ${recordRules.length} rules found`);
  });

  it('every panel reads the data source variable', () => {
    for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
    }
  });
});
