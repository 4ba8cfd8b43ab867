import { stringify } from 'yaml';

export type OutputFormat = 'text' | 'json' | 'yaml';

/** Columns padded like kubectl's tables. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Machine-readable output as JSON or YAML, or the human text. */
export function render(format: OutputFormat, data: unknown, text: () => string): string {
  if (format === 'json') return JSON.stringify(data, null, 2);
  if (format === 'yaml') return stringify(data, { lineWidth: 0 }).trimEnd();
  return text();
}

/** "3m ago", "in 2h", from an RFC 3339 time. */
export function relative(time: string | undefined, now = Date.now()): string {
  if (!time) return '-';
  const ms = new Date(time).getTime() - now;
  if (!Number.isFinite(ms)) return '-';
  const abs = Math.abs(ms);
  const unit =
    abs < 60_000
      ? `${Math.round(abs / 1000)}s`
      : abs < 3_600_000
        ? `${Math.round(abs / 60_000)}m`
        : abs < 86_400_000
          ? `${Math.round(abs / 3_600_000)}h`
          : `${Math.round(abs / 86_400_000)}d`;
  return ms < 0 ? `${unit} ago` : `in ${unit}`;
}

export function duration(start: string | undefined, end: string | undefined): string {
  if (!start || !end) return '-';
  const seconds = (new Date(end).getTime() - new Date(start).getTime()) / 1000;
  if (!Number.isFinite(seconds) || seconds < 0) return '-';
  return seconds < 60 ? `${seconds.toFixed(1)}s` : `${Math.floor(seconds / 60)}m${Math.round(seconds % 60)}s`;
}
