import type { Clock } from "../../src/core/clock.js";

interface Timer {
  readonly at: number;
  /** Order of creation: timers due at the same moment fire in the order they were set. */
  readonly seq: number;
  readonly callback: () => void;
}

/** A Clock whose time moves only when the test calls advance(). */
export class FakeClock implements Clock {
  private time: number;
  private timers: Timer[] = [];
  private seq = 0;

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(callback: () => void, ms: number): () => void {
    const timer: Timer = { at: this.time + Math.max(0, ms), seq: this.seq++, callback };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way
   * in order (timers set by those callbacks too, if they fall due in time),
   * each with now() at its due moment.
   */
  advance(ms: number): void {
    const until = this.time + Math.max(0, ms);
    for (;;) {
      let due: Timer | undefined;
      for (const timer of this.timers) {
        if (timer.at <= until && (!due || timer.at < due.at || (timer.at === due.at && timer.seq < due.seq))) due = timer;
      }
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.callback();
    }
    this.time = until;
  }
}
