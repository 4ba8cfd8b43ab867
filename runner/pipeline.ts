// The stages of a run in order, each timed and named once here: a failure carries the stage it happened
// in to the summary and the log.
import type { RunSummary } from '../core/summary.ts';
import type { RunPhase } from './stages/context.ts';

export type StageName =
  'open' | 'query' | 'validate' | 'diff' | 'fetch' | 'guard' | 'intent' | 'deliver' | 'commit';

type Timings = RunSummary['timings'];

/** The summary's timing a stage counts in (fetching the changed rows is part of reading the model). */
const TIMING: Partial<Record<StageName, keyof Timings>> = {
  query: 'queryMs',
  fetch: 'queryMs',
  validate: 'validateMs',
  diff: 'diffMs',
  intent: 'commitMs',
  deliver: 'deliverMs',
  commit: 'commitMs',
};

/** The phase a stage starts (delivery reports its own, with counts). */
const PHASE: Partial<Record<StageName, RunPhase>> = {
  query: 'Querying',
  diff: 'Diffing',
  commit: 'Committing',
};

export class Pipeline {
  readonly startedAt = new Date();
  private readonly t0 = performance.now();
  readonly timings: Timings = {};
  /** The stage running, or the one that failed. */
  current: StageName | undefined;
  private readonly onPhase: (phase: RunPhase) => void;

  constructor(onPhase: (phase: RunPhase) => void) {
    this.onPhase = onPhase;
  }

  async stage<T>(name: StageName, run: () => Promise<T> | T): Promise<T> {
    this.current = name;
    const phase = PHASE[name];
    if (phase) this.onPhase(phase);
    const start = performance.now();
    try {
      const result = await run();
      this.current = undefined;
      return result;
    } finally {
      const timing = TIMING[name];
      if (timing) this.timings[timing] = (this.timings[timing] ?? 0) + Math.round(performance.now() - start);
    }
  }

  finish(): { startedAt: Date; timings: Timings } {
    this.timings.totalMs = Math.round(performance.now() - this.t0);
    return { startedAt: this.startedAt, timings: this.timings };
  }
}
