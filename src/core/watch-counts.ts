import type { QueueSnapshot } from "./store.js";

/** What happened since a WatchQueue stream began. */
export interface FinishedCounts {
  readonly succeeded: number;
  /** Failed attempts. */
  readonly failed: number;
  readonly dead: number;
  /** Tasks that ended cancelled: while queued or waiting to retry (cancel-n.lua), or running when marked, at its attempt's end. */
  readonly cancelled: number;
  /** Dead letters requeued. */
  readonly requeued: number;
  /** Not started by their start_by. */
  readonly expired: number;
}

/** Every count of FinishedCounts, each a counter of the snapshot that only ever grows (per generation). */
const COUNTS = [
  "succeeded",
  "failed",
  "dead",
  "cancelled",
  "requeued",
  "expired",
] as const satisfies readonly (keyof FinishedCounts & keyof QueueSnapshot)[];

const each = (count: (key: keyof FinishedCounts) => number): FinishedCounts =>
  Object.fromEntries(COUNTS.map((key) => [key, count(key)])) as unknown as FinishedCounts;

const NONE: FinishedCounts = Object.freeze(each(() => 0));

const plus = (a: FinishedCounts, b: FinishedCounts): FinishedCounts => each((key) => a[key] + b[key]);

/** a − b per count, never below 0. */
const since = (a: FinishedCounts, b: FinishedCounts): FinishedCounts => each((key) => Math.max(0, a[key] - b[key]));

/**
 * The counts a WatchQueue stream reports (completed, failed, dead-lettered,
 * cancelled and requeued since it began), from the snapshots it is given.
 *
 * The store keeps no user's counters forever: they live while the user has a
 * task running or waiting to retry and expire a retention after, then start
 * again from zero in a new generation (src/redis/lua/includes/user-stats.lua).
 * So a stream counts per generation: in the one it began in, the counters
 * minus their values at its first snapshot; in a later one, all of them (it
 * began after the stream did); and a generation that ended adds what the
 * stream last saw of it. That is exact when the stream saw each ended
 * generation's last counts, which it does: every change of them publishes a
 * progress event that is followed by a read within the coalescing period,
 * and the counters expire only after the retention (a second at the least,
 * a day by default) without a change.
 */
export class WatchCounts {
  private generation: number | undefined;
  private lastNow = -Infinity;
  /** The counters when this stream first saw the current generation (zero for one it saw begin). */
  private base: FinishedCounts = NONE;
  /** The current generation's counters at the last snapshot. */
  private last: FinishedCounts = NONE;
  /** What ended generations added while this stream watched. */
  private carried: FinishedCounts = NONE;

  /** The counts since the stream began, as of `snapshot`. */
  next(snapshot: QueueSnapshot): FinishedCounts {
    const counts = each((key) => snapshot[key] ?? 0);
    if (this.generation === undefined) {
      this.generation = snapshot.generation;
      this.base = counts;
    } else if (snapshot.generation !== this.generation) {
      // A read that was overtaken by a later one (a new watcher's first
      // read racing a change) may show the generation before: it is not a
      // new one, and what it shows is older than what was counted.
      if (snapshot.now < this.lastNow) return plus(this.carried, since(this.last, this.base));
      this.carried = plus(this.carried, since(this.last, this.base));
      this.generation = snapshot.generation;
      this.base = NONE;
    }
    this.lastNow = Math.max(this.lastNow, snapshot.now);
    this.last = counts;
    return plus(this.carried, since(counts, this.base));
  }
}
