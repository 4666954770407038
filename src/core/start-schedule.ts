import type { RatePolicy } from "./rate-policy.js";

/**
 * One window's state as Redis holds it: how many starts the open window has
 * counted and when it closes (null when no window is open).
 */
export interface WindowCounter {
  readonly count: number;
  readonly resetAt: number | null;
}

/**
 * The earliest moment at which the `n`-th next start (1-based) may happen,
 * given the policy and its windows' state at `now`, if every start happens at
 * the earliest moment allowed. This is exact for fixed windows that open at
 * their first start (rate-limiter-flexible's semantics); it knows nothing of
 * retries or handler time, so it is the policy's bound, not a guess.
 */
export function nthStartTime(
  policy: RatePolicy,
  counters: readonly WindowCounter[],
  now: number,
  n: number,
): number {
  // A plain loop over numbers (Submit calls this for every queued task, with
  // n up to the backlog cap): no generator, no allocation per start, and all
  // the starts that fit at one moment taken together.
  const windows = policy.length;
  const count = new Float64Array(windows);
  const resetAt = new Float64Array(windows);
  for (let i = 0; i < windows; i++) {
    const counter = counters[i];
    count[i] = counter?.count ?? 0;
    resetAt[i] = counter?.resetAt ?? Number.NaN; // NaN: no window open
  }
  let t = now;
  let left = n;
  for (;;) {
    // Move t forward until every window has room; a closed window counts 0.
    let room = Infinity;
    for (let blocked = true; blocked; ) {
      blocked = false;
      room = Infinity;
      for (let i = 0; i < windows; i++) {
        if (t >= resetAt[i]!) {
          count[i] = 0;
          resetAt[i] = Number.NaN;
        }
        const free = policy[i]!.limit - count[i]!;
        if (free <= 0 && !Number.isNaN(resetAt[i]!)) {
          t = Math.max(t, resetAt[i]!);
          blocked = true;
        }
        room = Math.min(room, free);
      }
    }
    if (room <= 0) room = 1; // a full window with no reset cannot block (never in Redis)
    if (left <= room) return t;
    left -= room;
    for (let i = 0; i < windows; i++) {
      if (Number.isNaN(resetAt[i]!)) resetAt[i] = t + policy[i]!.durationMs;
      count[i] = count[i]! + room;
    }
  }
}

/**
 * The earliest moments of the next starts, in order, without end: the plain
 * statement of the schedule, one start at a time. nthStartTime is the fast
 * form Submit uses; tests check the two agree.
 */
export function* startTimes(
  policy: RatePolicy,
  counters: readonly WindowCounter[],
  now: number,
): Generator<number, never, undefined> {
  const count = policy.map((_, i) => counters[i]?.count ?? 0);
  const resetAt = policy.map((_, i) => counters[i]?.resetAt ?? null);
  let t = now;
  for (;;) {
    // Move t forward until every window has room; a closed window counts 0.
    for (;;) {
      let blockedUntil = t;
      policy.forEach((window, i) => {
        const reset = resetAt[i];
        if (reset !== null && reset !== undefined && t >= reset) {
          count[i] = 0;
          resetAt[i] = null;
        }
        if ((count[i] ?? 0) >= window.limit) {
          blockedUntil = Math.max(blockedUntil, resetAt[i] ?? t);
        }
      });
      if (blockedUntil === t) break;
      t = blockedUntil;
    }
    policy.forEach((window, i) => {
      if (resetAt[i] === null) resetAt[i] = t + window.durationMs;
      count[i] = (count[i] ?? 0) + 1;
    });
    yield t;
  }
}
