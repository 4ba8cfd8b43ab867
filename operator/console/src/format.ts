// Text for numbers and times, as the pages show them.

/** `850 ms`, `4.2 s`, `3 min 20 s`, `2 h 5 min`. */
export function duration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(s % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** `in 5 min`, `3 h ago`, `just now`, relative to `now`. */
export function relative(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '–';
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const delta = at - now;
  const abs = Math.abs(delta);
  if (abs < 10_000) return 'just now';
  const [value, unit] =
    abs < 60_000
      ? [Math.round(abs / 1000), 's']
      : abs < 3_600_000
        ? [Math.round(abs / 60_000), 'min']
        : abs < 86_400_000
          ? [Math.round(abs / 3_600_000), 'h']
          : [Math.round(abs / 86_400_000), 'd'];
  return delta > 0 ? `in ${value} ${unit}` : `${value} ${unit} ago`;
}

/** `2026-01-01 12:00:08` in the browser's time zone. */
export function dateTime(iso: string | undefined): string {
  if (!iso) return '–';
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ` +
    `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`
  );
}

export function count(n: number | undefined): string {
  return n === undefined ? '–' : n.toLocaleString('en-US');
}

/** The CSS class of a result or Ready status: ok, warn, bad or idle. */
export function tone(value: string | undefined): 'ok' | 'warn' | 'bad' | 'idle' {
  switch (value) {
    case 'Succeeded':
    case 'True':
      return 'ok';
    case 'PartiallySucceeded':
    case 'Running':
    case 'Pending':
      return 'warn';
    case 'Failed':
    case 'False':
      return 'bad';
    default:
      return 'idle';
  }
}
