import type { RunProgress } from '../run.ts';

/**
 * A one-line progress display on stderr, only when stderr is a terminal (never in logs or pipes),
 * redrawn at most a few times a second.
 */
export function terminalProgress(
  label: string,
  stream: NodeJS.WriteStream = process.stderr,
): {
  update(progress: RunProgress): void;
  done(): void;
} {
  if (!stream.isTTY) return { update: () => undefined, done: () => undefined };
  let last = 0;
  let shown = false;
  const draw = (text: string) => {
    stream.write(`\r\x1b[2K${text}`);
    shown = true;
  };
  return {
    update(progress) {
      const now = Date.now();
      if (progress.delivery && now - last < 200) return;
      last = now;
      const d = progress.delivery;
      const detail = d
        ? ` ${d.delivered + d.failed}/${d.total} (${d.total > 0 ? Math.floor(((d.delivered + d.failed) / d.total) * 100) : 100}%)${d.failed ? `, ${d.failed} failed` : ''}`
        : '';
      draw(`${label}: ${progress.phase}${detail}`);
    },
    done() {
      if (shown) stream.write('\r\x1b[2K');
    },
  };
}
