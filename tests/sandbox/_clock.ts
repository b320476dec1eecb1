/** Clocks for tests of builder supervision: nothing here waits on real time passing. */

import type { Timers } from "../../lib/sandbox/mod.ts";

/** A clock the test moves by hand: timers fire only in `advance`. */
export class FakeClock implements Timers {
  now = 0;
  #next = 1;
  readonly #pending = new Map<number, { at: number; callback: () => void }>();

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#pending.set(id, { at: this.now + ms, callback });
    return id;
  }

  clearTimeout(id: unknown): void {
    this.#pending.delete(id as number);
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.#pending].filter(([, t]) =>
        t.at <= end
      ).sort(([, a], [, b]) => a.at - b.at)[0];
      if (!due) break;
      this.#pending.delete(due[0]);
      this.now = due[1].at;
      due[1].callback();
    }
    this.now = end;
  }
}

/**
 * Real timers that start counting only once `start` settles (a builder's first line, say), so
 * that what the builder does before then cannot race them however slow the machine is.
 */
export function timersFrom(start: Promise<unknown>): Timers {
  interface Pending {
    id?: ReturnType<typeof setTimeout>;
    cleared: boolean;
  }
  return {
    setTimeout(callback, ms) {
      const timer: Pending = { cleared: false };
      start.then(() => {
        if (!timer.cleared) timer.id = setTimeout(callback, ms);
      });
      return timer;
    },
    clearTimeout(timer) {
      (timer as Pending).cleared = true;
      clearTimeout((timer as Pending).id);
    },
  };
}
