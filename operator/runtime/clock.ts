/** Time as the runtime sees it; tests pass a manual clock so delays are deterministic. */
export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  setTimeout(fn: () => void, delayMs: number): Timer;
  clearTimeout(timer: Timer): void;
}

export interface Timer {
  unref?(): unknown;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, delayMs) => {
    const timer = setTimeout(fn, delayMs);
    // Pending requeues alone must not keep a process alive that has been asked to exit.
    timer.unref();
    return timer;
  },
  clearTimeout: (timer) => clearTimeout(timer as ReturnType<typeof setTimeout>),
};

/** A clock that moves only when told to, firing due timers in order. */
export class ManualClock implements Clock {
  private current = 0;
  private sequence = 0;
  private readonly timers = new Map<Timer, { at: number; order: number; fn: () => void }>();

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, delayMs: number): Timer {
    const timer: Timer = {};
    this.timers.set(timer, { at: this.current + Math.max(0, delayMs), order: this.sequence++, fn });
    return timer;
  }

  clearTimeout(timer: Timer): void {
    this.timers.delete(timer);
  }

  pendingTimers(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      let next: [Timer, { at: number; order: number; fn: () => void }] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at > target) continue;
        if (
          !next ||
          entry[1].at < next[1].at ||
          (entry[1].at === next[1].at && entry[1].order < next[1].order)
        ) {
          next = entry;
        }
      }
      if (!next) break;
      this.timers.delete(next[0]);
      this.current = Math.max(this.current, next[1].at);
      next[1].fn();
    }
    this.current = target;
  }
}
