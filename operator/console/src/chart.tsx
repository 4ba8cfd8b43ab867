// Rows delivered and failed, and the duration, of a Sync's finished runs over time (uPlot, on a canvas).
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { ConsoleSyncDetail } from './api.ts';
import { Empty } from './ui.tsx';

type Run = ConsoleSyncDetail['runs'][number];

const HEIGHT = 260;

/** The finished runs with counts, oldest first, as uPlot's columns: time, delivered, failed, seconds. */
export function chartData(runs: Run[]): uPlot.AlignedData {
  const finished = runs
    .filter((r) => r.finishedAt && r.counts && !Number.isNaN(Date.parse(r.finishedAt)))
    .sort((a, b) => Date.parse(a.finishedAt!) - Date.parse(b.finishedAt!));
  return [
    finished.map((r) => Date.parse(r.finishedAt!) / 1000),
    finished.map((r) => r.counts!.delivered),
    finished.map((r) => r.counts!.failed),
    finished.map((r) => (r.durationMs === undefined ? null : r.durationMs / 1000)),
  ];
}

function lonePointRange(xs: ArrayLike<number>): [number, number] | undefined {
  const first = xs[0];
  const last = xs[xs.length - 1];
  if (first === undefined || last === undefined || last - first >= 60) return undefined;
  return [first - 60, last + 60];
}

function options(width: number): uPlot.Options {
  return {
    width,
    height: HEIGHT,
    scales: {
      // uPlot gives a lone point (or runs within a minute) a range of years: a minute either side instead.
      x: { time: true, range: (u, min, max) => lonePointRange(u.data[0]) ?? [min, max] },
      rows: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] },
      s: { range: (_u, _min, max) => [0, Math.max(0.1, max) * 1.1] },
    },
    series: [
      {},
      { label: 'Delivered', scale: 'rows', stroke: '#2e7d32', width: 2, points: { show: true } },
      { label: 'Failed', scale: 'rows', stroke: '#c62828', width: 2, points: { show: true } },
      {
        label: 'Duration (s)',
        scale: 's',
        stroke: '#1565c0',
        width: 1,
        dash: [6, 4],
        points: { show: true },
      },
    ],
    axes: [
      {},
      { scale: 'rows', label: 'rows' },
      { scale: 's', label: 'seconds', side: 1, grid: { show: false } },
    ],
  };
}

export function RunChart({ runs }: { runs: Run[] }) {
  const box = useRef<HTMLDivElement>(null);
  const data = chartData(runs);
  const points = data[0].length;
  useEffect(() => {
    const element = box.current;
    if (!element || points === 0) return;
    const plot = new uPlot(options(element.clientWidth || 800), chartData(runs), element);
    const resize = new ResizeObserver(() => plot.setSize({ width: element.clientWidth, height: HEIGHT }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [runs, points]);
  if (points === 0) return <Empty>No finished runs yet.</Empty>;
  return <div class="chart" ref={box} aria-label="Rows delivered and failed, and duration, per run" />;
}
